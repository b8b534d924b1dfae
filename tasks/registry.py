"""Every stage that exists, by its public name. A profile can only name these."""

from tasks import (
    compile_report,
    detect_edges,
    detect_objects,
    escalate_cloud,
    escalate_vlm,
    extract_frames,
    field_segmentation,
    filter_scenes,
    match_brands,
    preprocess,
    run_ocr,
)
from tasks.stage import StageSpec

STAGES: dict[str, StageSpec] = {
    module.STAGE.name: module.STAGE
    for module in (extract_frames, filter_scenes, field_segmentation, detect_edges, detect_objects, preprocess,
                   run_ocr, match_brands, escalate_vlm, escalate_cloud, compile_report)
}

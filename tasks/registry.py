"""Every stage that exists, by its public name. A profile can only name these."""

from tasks import compile_report, extract_frames, filter_scenes, match_brands, run_ocr
from tasks.stage import StageSpec

STAGES: dict[str, StageSpec] = {
    module.STAGE.name: module.STAGE
    for module in (extract_frames, filter_scenes, run_ocr, match_brands, compile_report)
}

"""train_detector: the flow that trains and exports the project's default object detector.

    pip install -e '.[train]'          # ultralytics (torch) and onnx
    python -m flows.train_detector --epochs 30 --imgsz 640

Stages (Prefect tasks): render the synthetic dataset (mpr.detector_data) -> add the
train half of the real labelled frames, if present -> train a YOLO model from its
YAML (from scratch, no pretrained weights) -> export ONNX (no NMS: output
(1, 4 + nc, N)) -> evaluate mAP on the synthetic held-back split and the real
held-out half -> write MODEL_CARD.md next to the ONNX file.  The first three are
mpr.detector_training's functions (how real frames are used and split: its docstring).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from datetime import datetime, timezone
from pathlib import Path

from mpr.settings import apply_offline_defaults

apply_offline_defaults()  # before Prefect reads its settings

from prefect import flow, get_run_logger, task  # noqa: E402

from mpr import detector_training as dt  # noqa: E402
from mpr.detector_data import CLASSES  # noqa: E402

ONNX_NAME = "mpr-det.onnx"

# The training steps are plain functions (mpr.detector_training, also runnable without
# Prefect on a bare GPU host); here they are Prefect tasks.
render_dataset = task(dt.render_dataset, name="render-dataset", persist_result=False)
add_real_split = task(dt.add_real_split, name="add-real-split", persist_result=False)
train = task(dt.train_yolo, name="train", persist_result=False)


@task(name="export-onnx", persist_result=False)
def export_onnx(weights: str, imgsz: int, out_path: Path, opset: int) -> dict:
    dt.require_ultralytics()
    from ultralytics import YOLO

    try:
        import onnxslim  # noqa: F401
        simplify = True
    except ImportError:
        simplify = False
    exported = YOLO(weights).export(format="onnx", imgsz=imgsz, opset=opset, simplify=simplify,
                                    nms=False, dynamic=False, device="cpu")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(exported, out_path)
    return {"path": str(out_path), "bytes": out_path.stat().st_size, "simplify": simplify, "opset": opset}


@task(name="evaluate", persist_result=False)
def evaluate(weights: str, data_yaml: str, imgsz: int) -> dict:
    """mAP50 and mAP50-95 overall and per class with labels in the set."""
    dt.require_ultralytics()
    from ultralytics import YOLO

    m = YOLO(weights).val(data=data_yaml, imgsz=imgsz, batch=8, device=dt.device(), plots=False,
                          split="val", workers=0, verbose=False, save_json=False)
    per_class = {}
    for i, c in enumerate(m.box.ap_class_index):
        p, r, ap50, ap = m.box.class_result(i)
        per_class[CLASSES[int(c)]] = {"precision": float(p), "recall": float(r),
                                      "mAP50": float(ap50), "mAP50-95": float(ap)}
    counts = dict.fromkeys(CLASSES, 0)
    for lbl in (Path(data_yaml).parent / "labels" / "val").glob("*.txt"):
        for line in lbl.read_text().splitlines():
            counts[CLASSES[int(line.split()[0])]] += 1
    images = len(list((Path(data_yaml).parent / "labels" / "val").glob("*.txt")))
    return {"mAP50": float(m.box.map50), "mAP50-95": float(m.box.map), "per_class": per_class,
            "instances": counts, "images": images}


# ---------------------------------------------------------------- model card


def _metrics_table(result: dict) -> str:
    rows = ["| class | instances | precision | recall | mAP50 | mAP50-95 |", "|---|---|---|---|---|---|"]
    for name in CLASSES:
        c = result["per_class"].get(name)
        if c:
            rows.append(f"| {name} | {result['instances'][name]} | {c['precision']:.3f} | {c['recall']:.3f} "
                        f"| {c['mAP50']:.3f} | {c['mAP50-95']:.3f} |")
    rows.append(f"| **all** | {sum(result['instances'].values())} | | | **{result['mAP50']:.3f}** "
                f"| **{result['mAP50-95']:.3f}** |")
    return "\n".join(rows)


def model_card(info: dict) -> str:
    t, d, real, ev, onnx = info["train"], info["data"], info["real"], info["eval"], info["onnx"]
    a = t["args"]
    lines = [
        "# mpr-det: the MPR default object detector",
        "",
        f"`{ONNX_NAME}` finds the regions of a soccer broadcast frame that the pipeline reads with OCR.",
        "Trained by this project from scratch (no pretrained weights) on synthetic frames rendered by",
        "`mpr/detector_data.py`, plus half of a small real labelled set.  Reproduced by `flows/train_detector.py`.",
        "",
        "## Classes",
        "",
        "| id | name | what |",
        "|---|---|---|",
        "| 0 | board | a perimeter advertising board / LED board segment |",
        "| 1 | overlay | broadcast graphics: score bug, corner bug, lower third, channel logo panel |",
        "| 2 | logo | a brand mark or brand word: text or emblem on a board, shirt, stand tarp or overlay |",
        "",
        "## Model",
        "",
        f"- Architecture: ultralytics YOLO from `{info['model']}` (built from the YAML, random init), "
        f"{info.get('params', '?')} parameters.",
        f"- Input: 1x3x{a['imgsz']}x{a['imgsz']} RGB, 0..1, letterboxed (ultralytics preprocessing).",
        f"- Output: `output0` (1, {4 + len(CLASSES)}, N): cx, cy, w, h in input pixels, then one score per class; "
        "no NMS inside (apply it yourself).",
        f"- ONNX opset {onnx['opset']}, simplified with onnxslim: {onnx['simplify']}; "
        f"{onnx['bytes'] / 1e6:.1f} MB.  Metadata (`names`, `imgsz`, `stride`, ...) as written by ultralytics.",
        "",
        "## Data",
        "",
        f"- Synthetic (generator `mpr/detector_data.py`, seed {info['seed']}): {d['images']['train']} train and "
        f"{d['images']['val']} held-back images; scenes {d['scenes']}; train+val boxes {d['boxes']}.",
    ]
    if real:
        lines += [
            f"- Real: the labelled foocus frames (Norwegian league broadcast, 1280x720; labels mark only Coop and "
            f"Altibox, both mapped to `logo`).  {len(real['train']) + len(real['heldout'])} labelled images, "
            f"sorted by name: the {len(real['train'])} at even positions are in training (each linked "
            f"{real['train_copies'] // max(1, len(real['train']))}x), the {len(real['heldout'])} at odd positions "
            "are held out.  The footage is not in the repository; unlabelled foocus frames are not used.",
        ]
    else:
        lines.append("- Real: none (the real labelled frames were not found).")
    lines += [
        "",
        "## Training",
        "",
        f"- {t['epochs_done']} epochs "
        + (f"(as many as fit in the time budget of {a['time']} h), " if a.get("time") else "")
        + f"batch {a['batch']} (one optimizer step per batch), optimizer {t.get('optimizer') or 'ultralytics auto'}, imgsz {a['imgsz']}, "
        f"mosaic on (off for the last {a['close_mosaic']} epochs), no horizontal flips (text is never mirrored), "
        "ultralytics default augmentation otherwise.",
        (f"- Time: {t['seconds'] / 60:.1f} min" if t.get("seconds") else "- Time: not recorded")
        + f" on {t['hardware']} (torch {t['torch']}, ultralytics {info['ultralytics']}).",
        f"- Trained on {info['date']}.",
        "",
        "Reproduce (from the repository root, in an environment with `pip install -e '.[train]'`):",
        "",
        "```",
        *([t["command"], "# then export, evaluate and write this card:"] if t.get("command") else []),
        info["command"],
        "```",
        "",
        "## Evaluation",
        "",
        "Measured by the flow with `ultralytics` `val` (conf 0.001, NMS IoU 0.7; COCO-style mAP) on the "
        f"trained PyTorch weights `{Path(t['weights']).name}` (the ONNX file is their export), at imgsz {a['imgsz']}.",
        "",
    ]
    for key, title in (("synthetic", "Synthetic held-back split"),
                       ("real_heldout", "Real: foocus held-out half (not used in training)"),
                       ("real_all", "Real: all labelled foocus frames (**includes the training half**)")):
        if key in ev:
            lines += [f"### {title} ({ev[key]['images']} images)", "", _metrics_table(ev[key]), ""]
    lines += [
        "On the real frames only Coop and Altibox marks are labelled (some Altibox ones are missing), so a "
        "correct `logo` box on another brand (DNB, OBOS, Fjordkraft, OsloTaxi, ...) counts as a false positive: "
        "real-frame precision and mAP are lower bounds.  `board` and `overlay` are not labelled there.",
        "",
        "## Known limitations",
        "",
        f"- Small model trained from scratch ({t['epochs_done']} epochs, {(t.get('seconds') or 0) / 60:.0f} min on "
        f"{'a GPU' if t['device'] != 'cpu' else 'a CPU'}): treat it as a region proposer for OCR, not a "
        "finished detector.  The gap between the synthetic and the real numbers above is the domain gap: "
        "on real frames it misses many logos and fires on clutter.",
        "- The synthetic scenes are simple (flat boards, stick-like players, crowd texture); real stadium "
        "structure, stand banners, pitch-side mats and real shirts look different.",
        "- The real evaluation set is tiny (11-12 frames, one league, one broadcaster).",
        "- `board` boxes follow board segments of the synthetic row; on real continuous LED bands the "
        "segmentation is ambiguous.",
        "",
    ]
    return "\n".join(lines)


@flow(name="train-detector", persist_result=False)
def train_detector(out_dir: str = "models/detector", n_train: int = 1000, n_val: int = 150,
                   epochs: int = 30, imgsz: int = 640, model: str = dt.DEFAULT_MODEL, batch: int = 8,
                   seed: int = 0, real_labels: str | None = str(dt.REAL_LABELS), real_oversample: int = 5,
                   hours: float | None = None, work_dir: str = str(dt.WORK_DIR), opset: int = 12,
                   weights: str | None = None, workers: int = 2, command: str | None = None) -> dict:
    """Render data, train (unless ``weights`` is given), export ONNX, evaluate, write the model card."""
    ul = dt.require_ultralytics()
    logger = get_run_logger()
    work, out = Path(work_dir), Path(out_dir)
    data = render_dataset(work, n_train, n_val, seed, workers)
    real = add_real_split(work, Path(real_labels) if real_labels else None, real_oversample)
    data_yaml = work / "dataset" / "data.yaml"
    if weights:
        trained = dt.trained_info(weights)
    else:
        trained = train(data_yaml, work, model, epochs, imgsz, batch, seed, hours, workers)
    onnx = export_onnx(trained["weights"], imgsz, out / ONNX_NAME, opset)
    ev = {"synthetic": evaluate(trained["weights"], str(data_yaml), imgsz)}
    for name, s in (real.get("sets") or {}).items():
        ev[name] = evaluate(trained["weights"], s["yaml"], imgsz)
    from ultralytics import YOLO

    n_params = sum(p.numel() for p in YOLO(trained["weights"]).model.parameters())
    info = {"train": trained, "data": data, "real": real, "eval": ev, "onnx": onnx, "model": model,
            "seed": seed, "params": f"{n_params / 1e6:.2f} M", "ultralytics": ul.__version__,
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
            "command": command or "python -m flows.train_detector " + " ".join(sys.argv[1:])}
    (out / "MODEL_CARD.md").write_text(model_card(info))
    (work / "last_run.json").write_text(json.dumps(info, indent=1, default=str))
    logger.info("wrote %s and %s", out / ONNX_NAME, out / "MODEL_CARD.md")
    return info


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m flows.train_detector", description=__doc__.splitlines()[0])
    ap.add_argument("--out-dir", default="models/detector")
    dt.add_train_arguments(ap)
    ap.add_argument("--opset", type=int, default=12)
    ap.add_argument("--weights", default=None, help="skip training: export and evaluate these weights")
    args = ap.parse_args(argv)
    dt.require_ultralytics()
    train_detector(out_dir=args.out_dir, n_train=args.n_train, n_val=args.n_val, epochs=args.epochs,
                   imgsz=args.imgsz, model=args.model, batch=args.batch, seed=args.seed,
                   real_labels=args.real_labels or None, real_oversample=args.real_oversample,
                   hours=args.hours, work_dir=args.work_dir, opset=args.opset, weights=args.weights,
                   workers=args.workers,
                   command="python -m flows.train_detector " + " ".join(argv if argv is not None else sys.argv[1:]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

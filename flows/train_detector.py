"""train_detector: the flow that trains and exports the project's default object detector.

    pip install -e '.[train]'          # ultralytics (torch) and onnx
    python -m flows.train_detector --epochs 30 --imgsz 640

Stages (Prefect tasks): render the synthetic dataset (mpr.detector_data) -> add the
train half of the real labelled frames, if present -> train a YOLO model from its
YAML (from scratch, no pretrained weights) -> export ONNX (no NMS: output
(1, 4 + nc, N)) -> evaluate mAP on the synthetic held-back split and the real
held-out half -> write MODEL_CARD.md next to the ONNX file.

Real frames (footage belongs to its league) are read in place and linked into the
work directory, never copied into the repository.  Their labels only mark two
brands (Coop, Altibox); both map to class ``logo``.  The 23 labelled images are
split by sorted name: even positions train, odd positions are held out.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from mpr.settings import apply_offline_defaults

apply_offline_defaults()  # before Prefect reads its settings
os.environ.setdefault("YOLO_OFFLINE", "1")  # ultralytics: no update checks or downloads

from prefect import flow, get_run_logger, task  # noqa: E402

from mpr.detector_data import CLASSES, LOGO, build_dataset, write_data_yaml, yolo_lines  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
REAL_DEV = ROOT.parent / "shared" / "data" / "real-dev" / "foocus"
REAL_LABELS = REAL_DEV / "labels_foocus-test_2023-02-10-12-16-05.csv"
WORK_DIR = ROOT / ".mpr-train"
ONNX_NAME = "mpr-det.onnx"


def _require_ultralytics():
    try:
        import ultralytics  # noqa: F401
    except ImportError:
        raise SystemExit("train_detector needs ultralytics (and torch): pip install -e '.[train]'") from None
    return ultralytics


# ---------------------------------------------------------------- data


def read_real_labels(labels_csv: Path) -> dict[str, list[tuple]]:
    """image name -> [(cls, x0, y0, x1, y1, w, h)], every label mapped to ``logo``."""
    out: dict[str, list[tuple]] = {}
    with open(labels_csv, newline="") as f:
        for r in csv.DictReader(f):
            x, y, w, h = (float(r[k]) for k in ("bbox_x", "bbox_y", "bbox_width", "bbox_height"))
            out.setdefault(r["image_name"], []).append(
                (LOGO, x, y, x + w, y + h, int(r["image_width"]), int(r["image_height"])))
    return out


def split_real(names) -> tuple[list[str], list[str]]:
    """Sorted names: even positions train, odd positions held out."""
    names = sorted(names)
    return names[0::2], names[1::2]


def _link(src: Path, dst: Path) -> None:
    if dst.is_symlink() or dst.exists():
        dst.unlink()
    dst.symlink_to(src.resolve())


def _write_real(labels: dict, names: list[str], images_dir: Path, img_out: Path, lbl_out: Path,
                copies: int = 1) -> int:
    img_out.mkdir(parents=True, exist_ok=True)
    lbl_out.mkdir(parents=True, exist_ok=True)
    n = 0
    for name in names:
        src = images_dir / name
        if not src.is_file():
            continue
        rows = labels[name]
        w, h = rows[0][5], rows[0][6]
        text = "".join(line + "\n" for line in yolo_lines([r[:5] for r in rows], w, h))
        for k in range(copies):
            stem = f"real_{Path(name).stem}" + (f"_r{k}" if copies > 1 else "")
            _link(src, img_out / f"{stem}{src.suffix}")
            (lbl_out / f"{stem}.txt").write_text(text)
            n += 1
    return n


@task(name="render-dataset", persist_result=False)
def render_dataset(work_dir: Path, n_train: int, n_val: int, seed: int, workers: int) -> dict:
    """The synthetic dataset; reused when a previous render had the same parameters."""
    logger = get_run_logger()
    root = work_dir / "dataset"
    stats_path = root / "stats.json"
    params = {"n_train": n_train, "n_val": n_val, "seed": seed}
    if stats_path.is_file() and json.loads(stats_path.read_text()).get("params") == params:
        logger.info("reusing the synthetic dataset in %s", root)
        return json.loads(stats_path.read_text())
    shutil.rmtree(root, ignore_errors=True)
    t0 = time.time()
    stats = build_dataset(root, n_train, n_val, seed, workers)
    logger.info("rendered %d + %d synthetic images in %.0f s: %s", n_train, n_val, time.time() - t0, stats["boxes"])
    return stats


@task(name="add-real-split", persist_result=False)
def add_real_split(work_dir: Path, real_labels: Path | None, oversample: int) -> dict:
    """Link the real train half into the dataset (oversampled); build held-out and all-23 eval sets."""
    logger = get_run_logger()
    root = work_dir / "dataset"
    for old in (root / "images" / "train").glob("real_*"):
        old.unlink()
    for old in (root / "labels" / "train").glob("real_*"):
        old.unlink()
    if real_labels is None or not Path(real_labels).is_file():
        logger.warning("real labels not found (%s): training on synthetic data only", real_labels)
        return {}
    real_labels = Path(real_labels)
    images_dir = real_labels.parent / "foocus_dataset_images"
    labels = read_real_labels(real_labels)
    train, held = split_real(labels)
    n_train = _write_real(labels, train, images_dir, root / "images" / "train", root / "labels" / "train", oversample)
    out = {"train": train, "heldout": held, "train_copies": n_train, "sets": {}}
    for set_name, names in (("real_heldout", held), ("real_all", sorted(labels))):
        set_root = work_dir / set_name
        shutil.rmtree(set_root, ignore_errors=True)
        _write_real(labels, names, images_dir, set_root / "images" / "val", set_root / "labels" / "val")
        out["sets"][set_name] = {"yaml": str(write_data_yaml(set_root, train="images/val")),
                                 "images": len(names),
                                 "boxes": sum(len(labels[n]) for n in names)}
    logger.info("real frames: %d train (x%d), %d held out", len(train), oversample, len(held))
    return out


# ---------------------------------------------------------------- training


def _device() -> str | int:
    import torch

    return 0 if torch.cuda.is_available() else "cpu"


@task(name="train", persist_result=False)
def train(data_yaml: Path, work_dir: Path, model: str, epochs: int, imgsz: int, batch: int,
          seed: int, hours: float | None, workers: int) -> dict:
    _require_ultralytics()
    import torch
    from ultralytics import YOLO

    device = _device()
    # nbs=batch: one optimizer step per batch (few steps otherwise in a short CPU run);
    # no flips: broadcast text is never mirrored; val only after the last epoch.
    args = dict(data=str(data_yaml), epochs=epochs, imgsz=imgsz, batch=batch, nbs=batch, device=device,
                workers=min(workers, 2), seed=seed, deterministic=False, project=str(work_dir / "runs"),
                name="train", exist_ok=True, plots=False, amp=False, val=False, pretrained=False,
                warmup_epochs=1, fliplr=0.0, mosaic=1.0, close_mosaic=min(3, max(1, epochs // 10)),
                cache="ram", patience=0, verbose=True)
    if hours:
        args["time"] = hours
    t0 = time.time()
    yolo = YOLO(model)
    yolo.train(**args)
    seconds = time.time() - t0
    best = work_dir / "runs" / "train" / "weights" / "best.pt"
    last = best.with_name("last.pt")
    weights = best if best.is_file() else last
    hardware = (torch.cuda.get_device_name(0) if device == 0
                else f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    return {"weights": str(weights), "seconds": seconds, "device": str(device), "hardware": hardware,
            "epochs_done": _epochs_done(weights),
            "args": {k: v for k, v in args.items() if k not in ("project",)},
            "torch": torch.__version__}


def _trained_info(weights: str) -> dict:
    """What train() returned for these weights (train_info.json next to them), or what the checkpoint says."""
    info_path = Path(weights).with_name("train_info.json")
    if info_path.is_file():
        return {**json.loads(info_path.read_text()), "weights": weights}
    import torch

    ckpt = torch.load(weights, map_location="cpu", weights_only=False)
    args = dict(ckpt.get("train_args") or {})
    return {"weights": weights, "seconds": None, "device": "?", "hardware": "unknown", "args": args,
            "epochs_done": _epochs_done(weights), "torch": torch.__version__}


def _epochs_done(weights: str | Path) -> int | None:
    """Completed epochs: the rows of results.csv in the run directory (weights/../results.csv)."""
    results = Path(weights).parent.parent / "results.csv"
    if not results.is_file():
        return None
    return max(0, len(results.read_text().strip().splitlines()) - 1)


@task(name="export-onnx", persist_result=False)
def export_onnx(weights: str, imgsz: int, out_path: Path, opset: int) -> dict:
    _require_ultralytics()
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
    _require_ultralytics()
    from ultralytics import YOLO

    m = YOLO(weights).val(data=data_yaml, imgsz=imgsz, batch=8, device=_device(), plots=False,
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
        + f"batch {a['batch']} (one optimizer step per batch), AdamW (ultralytics 'auto'), imgsz {a['imgsz']}, "
        f"mosaic on (off for the last {a['close_mosaic']} epochs), no horizontal flips (text is never mirrored), "
        "ultralytics default augmentation otherwise.",
        (f"- Time: {t['seconds'] / 60:.1f} min" if t.get("seconds") else "- Time: not recorded")
        + f" on {t['hardware']} (torch {t['torch']}, ultralytics {info['ultralytics']}).",
        f"- Trained on {info['date']}.",
        "",
        "Reproduce (from the repository root, in an environment with `pip install -e '.[train]'`):",
        "",
        "```",
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
        "- Small model trained briefly from scratch on CPU: treat it as a region proposer for OCR, not a "
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
                   epochs: int = 30, imgsz: int = 640, model: str = "models/detector/mpr-det.yaml", batch: int = 8,
                   seed: int = 0, real_labels: str | None = str(REAL_LABELS), real_oversample: int = 5,
                   hours: float | None = None, work_dir: str = str(WORK_DIR), opset: int = 12,
                   weights: str | None = None, workers: int = 2, command: str | None = None) -> dict:
    """Render data, train (unless ``weights`` is given), export ONNX, evaluate, write the model card."""
    ul = _require_ultralytics()
    logger = get_run_logger()
    work, out = Path(work_dir), Path(out_dir)
    data = render_dataset(work, n_train, n_val, seed, workers)
    real = add_real_split(work, Path(real_labels) if real_labels else None, real_oversample)
    data_yaml = work / "dataset" / "data.yaml"
    if weights:
        trained = _trained_info(weights)
    else:
        trained = train(data_yaml, work, model, epochs, imgsz, batch, seed, hours, workers)
        Path(trained["weights"]).with_name("train_info.json").write_text(json.dumps(trained, indent=1))
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
    ap.add_argument("--n-train", type=int, default=1000, help="synthetic training images")
    ap.add_argument("--n-val", type=int, default=150, help="synthetic held-back images")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--imgsz", type=int, default=640)
    ap.add_argument("--batch", type=int, default=8, help="also the nominal batch (one optimizer step per batch)")
    ap.add_argument("--model", default="models/detector/mpr-det.yaml",
                    help="ultralytics model YAML, trained from scratch (e.g. yolov8n.yaml)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--real-labels", default=str(REAL_LABELS),
                    help="foocus labels CSV (images in foocus_dataset_images next to it); '' for none")
    ap.add_argument("--real-oversample", type=int, default=5)
    ap.add_argument("--hours", type=float, default=None, help="cap the training time (ultralytics time=)")
    ap.add_argument("--work-dir", default=str(WORK_DIR), help="dataset and runs (not committed)")
    ap.add_argument("--opset", type=int, default=12)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--weights", default=None, help="skip training: export and evaluate these weights")
    args = ap.parse_args(argv)
    _require_ultralytics()
    train_detector(out_dir=args.out_dir, n_train=args.n_train, n_val=args.n_val, epochs=args.epochs,
                   imgsz=args.imgsz, model=args.model, batch=args.batch, seed=args.seed,
                   real_labels=args.real_labels or None, real_oversample=args.real_oversample,
                   hours=args.hours, work_dir=args.work_dir, opset=args.opset, weights=args.weights,
                   workers=args.workers,
                   command="python -m flows.train_detector " + " ".join(argv if argv is not None else sys.argv[1:]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

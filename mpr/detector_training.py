"""Training the project's detector, as plain functions (no Prefect): data, real split, YOLO training.

``flows/train_detector.py`` runs these as Prefect tasks and adds ONNX export, evaluation and
the model card.  Run alone, this module is the training half for a bare GPU host that has
torch and ultralytics but not the project's services (Prefect included)::

    python -m mpr.detector_training --work-dir /tmp/det --n-train 6000 --hours 0.1 --batch 32
    # then, where the project is installed: export, evaluate and write the model card
    python -m flows.train_detector --work-dir /tmp/det --weights /tmp/det/runs/train/weights/last.pt

Real frames (footage belongs to its league) are read in place and linked into the
work directory, never copied into the repository.  Their labels only mark two
brands (Coop, Altibox); both map to class ``logo``.  The 23 labelled images are
split by sorted name: even positions train, odd positions are held out.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import platform
import shutil
import sys
import time
from pathlib import Path

from mpr.detector_data import LOGO, build_dataset, write_data_yaml, yolo_lines

os.environ.setdefault("YOLO_OFFLINE", "1")  # ultralytics: no update checks or downloads

ROOT = Path(__file__).resolve().parents[1]
REAL_DEV = ROOT.parent / "shared" / "data" / "real-dev" / "foocus"
REAL_LABELS = REAL_DEV / "labels_foocus-test_2023-02-10-12-16-05.csv"
WORK_DIR = ROOT / ".mpr-train"
DEFAULT_MODEL = "models/detector/mpr-det.yaml"
log = logging.getLogger("mpr.detector_training")


def require_ultralytics():
    try:
        import ultralytics
    except ImportError:
        raise SystemExit("training the detector needs ultralytics (and torch): pip install -e '.[train]'") from None
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


def render_dataset(work_dir: Path, n_train: int, n_val: int, seed: int, workers: int) -> dict:
    """The synthetic dataset; reused when a previous render had the same parameters."""
    root = work_dir / "dataset"
    stats_path = root / "stats.json"
    params = {"n_train": n_train, "n_val": n_val, "seed": seed}
    if stats_path.is_file() and json.loads(stats_path.read_text()).get("params") == params:
        log.info("reusing the synthetic dataset in %s", root)
        return json.loads(stats_path.read_text())
    shutil.rmtree(root, ignore_errors=True)
    t0 = time.time()
    stats = build_dataset(root, n_train, n_val, seed, workers)
    log.info("rendered %d + %d synthetic images in %.0f s: %s", n_train, n_val, time.time() - t0, stats["boxes"])
    return stats


def add_real_split(work_dir: Path, real_labels: Path | None, oversample: int) -> dict:
    """Link the real train half into the dataset (oversampled); build held-out and all-23 eval sets."""
    root = work_dir / "dataset"
    for sub in ("images", "labels"):
        for old in (root / sub / "train").glob("real_*"):
            old.unlink()
    if real_labels is None or not Path(real_labels).is_file():
        log.warning("real labels not found (%s): training on synthetic data only", real_labels)
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
    log.info("real frames: %d train (x%d), %d held out", len(train), oversample, len(held))
    return out


# ---------------------------------------------------------------- training


def device() -> str | int:
    import torch

    return 0 if torch.cuda.is_available() else "cpu"


def train_yolo(data_yaml: Path, work_dir: Path, model: str, epochs: int, imgsz: int, batch: int,
               seed: int, hours: float | None, workers: int, command: str | None = None) -> dict:
    """Train from the model YAML (random init) or a .pt; returns what the model card needs, also
    written to train_info.json next to the weights (with `command`, the training command line,
    when it ran apart from the flow)."""
    require_ultralytics()
    import torch
    from ultralytics import YOLO

    dev = device()
    # nbs=batch: one optimizer step per batch (few steps otherwise in a short CPU run);
    # no flips: broadcast text is never mirrored; val only after the last epoch.  AMP off:
    # its check loads reference weights from the internet, and this model is too small
    # for half precision to matter.  Data loading is the bottleneck: a CPU run gets 2
    # workers (its cores train), a GPU run as many as asked.
    args = dict(data=str(data_yaml), epochs=epochs, imgsz=imgsz, batch=batch, nbs=batch, device=dev,
                workers=min(workers, 2) if dev == "cpu" else workers, seed=seed, deterministic=False,
                project=str(work_dir / "runs"), name="train", exist_ok=True, plots=False, amp=False,
                val=False, pretrained=_start_weights(model), warmup_epochs=1, fliplr=0.0, mosaic=1.0,
                close_mosaic=min(3, max(1, epochs // 10)), cache="ram", patience=0,
                verbose=True)
    if hours:
        args["time"] = hours
    t0 = time.time()
    yolo = YOLO(model)
    yolo.train(**args)
    seconds = time.time() - t0
    opt = yolo.trainer.optimizer  # what ultralytics' optimizer='auto' chose
    optimizer = f"{type(opt).__name__} (lr {opt.defaults.get('lr')}, ultralytics 'auto')"
    best = work_dir / "runs" / "train" / "weights" / "best.pt"
    weights = best if best.is_file() else best.with_name("last.pt")
    hardware = (torch.cuda.get_device_name(0) if dev == 0
                else f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    info = {"weights": str(weights), "seconds": seconds, "device": str(dev), "hardware": hardware,
            "epochs_done": epochs_done(weights), "optimizer": optimizer,
            "args": {k: v for k, v in args.items() if k != "project"},
            "torch": torch.__version__, **({"command": command} if command else {})}
    weights.with_name("train_info.json").write_text(json.dumps(info, indent=1))
    return info


def _start_weights(model: str) -> str | bool:
    """A .pt model continues from its weights; a YAML starts from random ones.  (ultralytics'
    pretrained=False would build a .pt's architecture and drop its weights.)"""
    return str(model) if str(model).endswith(".pt") else False


def epochs_done(weights: str | Path) -> int | None:
    """Completed epochs: the rows of results.csv in the run directory (weights/../results.csv)."""
    results = Path(weights).parent.parent / "results.csv"
    if not results.is_file():
        return None
    return max(0, len(results.read_text().strip().splitlines()) - 1)


def trained_info(weights: str) -> dict:
    """What train_yolo() recorded for these weights (train_info.json next to them), or what the checkpoint says."""
    info_path = Path(weights).with_name("train_info.json")
    if info_path.is_file():
        return {**json.loads(info_path.read_text()), "weights": weights}
    import torch

    ckpt = torch.load(weights, map_location="cpu", weights_only=False)
    return {"weights": weights, "seconds": None, "device": "?", "hardware": "unknown",
            "args": dict(ckpt.get("train_args") or {}), "epochs_done": epochs_done(weights),
            "torch": torch.__version__}


def add_train_arguments(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--n-train", type=int, default=1000, help="synthetic training images")
    ap.add_argument("--n-val", type=int, default=150, help="synthetic held-back images")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--imgsz", type=int, default=640)
    ap.add_argument("--batch", type=int, default=8, help="also the nominal batch (one optimizer step per batch)")
    ap.add_argument("--model", default=DEFAULT_MODEL,
                    help="ultralytics model YAML, trained from scratch (e.g. yolov8n.yaml), or a .pt to continue from")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--real-labels", default=str(REAL_LABELS),
                    help="foocus labels CSV (images in foocus_dataset_images next to it); '' for none")
    ap.add_argument("--real-oversample", type=int, default=5)
    ap.add_argument("--hours", type=float, default=None, help="cap the training time (ultralytics time=)")
    ap.add_argument("--work-dir", default=str(WORK_DIR), help="dataset and runs (not committed)")
    ap.add_argument("--workers", type=int, default=2, help="rendering processes and, on a GPU, data loaders")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mpr.detector_training",
                                 description="Render the data and train the detector, without Prefect "
                                             "(then: python -m flows.train_detector --weights ...)")
    add_train_arguments(ap)
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    require_ultralytics()
    work = Path(a.work_dir)
    data = render_dataset(work, a.n_train, a.n_val, a.seed, a.workers)
    real = add_real_split(work, Path(a.real_labels) if a.real_labels else None, a.real_oversample)
    (work / "data_info.json").write_text(json.dumps({"data": data, "real": real}, indent=1))
    info = train_yolo(work / "dataset" / "data.yaml", work, a.model, a.epochs, a.imgsz, a.batch, a.seed,
                      a.hours, a.workers,
                      "python -m mpr.detector_training " + " ".join(argv if argv is not None else sys.argv[1:]))
    log.info("trained %s epochs in %.0f s: %s", info["epochs_done"], info["seconds"], info["weights"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Bad input to `mpr`: one clear stderr line, exit 2, no traceback, nothing written."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from tests.conftest import run_mpr, write
from tests.media import level_video


@pytest.fixture
def good(tmp_path):
    image = tmp_path / "still.jpg"
    cv2.imwrite(str(image), np.full((72, 128, 3), 90, np.uint8))
    brands = write(tmp_path / "brands.yaml", "brands:\n  - name: Nordlys\n")
    return {"image": image, "brands": brands}


def header_only(path):
    """A real MP4 cut right after its index: it opens, but holds no frame."""
    data = level_video(path.with_name("full.mp4"), seconds=2).read_bytes()
    path.write_bytes(data[: data.find(b"mdat") + 16])
    return path


def huge_png(path):
    """A PNG whose header claims 9000 x 9000 pixels (243 MB decoded, 81 MP), and no pixel data."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", 9000, 9000, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b""))
    return path


CASES = {
    "missing source": (lambda d, g: ["detect", d / "nope.mp4", "--brands", g["brands"]],
                       "source {d}/nope.mp4: no such file or folder"),
    "empty file": (lambda d, g: ["detect", write(d / "empty.mp4", ""), "--brands", g["brands"]],
                   "file is empty (0 bytes)"),
    "not a video": (lambda d, g: ["detect", write(d / "fake.mp4", "hello\n" * 100), "--brands", g["brands"]],
                    "not a video OpenCV can decode"),
    "zero frames": (lambda d, g: ["detect", header_only(d / "zero.mp4"), "--brands", g["brands"]],
                    "video has zero decodable frames"),
    "wrong extension": (lambda d, g: ["detect", write(d / "notes.txt", "hi"), "--brands", g["brands"]],
                        "unsupported file type '.txt'"),
    "empty folder": (lambda d, g: ["detect", (d / "empty").mkdir() or d / "empty", "--brands", g["brands"]],
                     "folder has no images"),
    "missing brands": (lambda d, g: ["detect", g["image"], "--brands", d / "none.yaml"], "no such file"),
    "brands bad yaml": (lambda d, g: ["detect", g["image"], "--brands", write(d / "b.yaml", "brands: [\n")],
                        "invalid YAML (line"),
    "brands no name": (lambda d, g: ["detect", g["image"], "--brands", write(d / "b.yaml", "brands:\n  - aliases: [x]\n")],
                       "brands.0.name: Field required"),
    "brands empty": (lambda d, g: ["detect", g["image"], "--brands", write(d / "b.yaml", "brands: []\n")],
                     "brands: List should have at least 1 item"),
    "brands not a list": (lambda d, g: ["detect", g["image"], "--brands", write(d / "b.yaml", "- 3\n- 4\n")],
                          "brands.0: Input should be a valid dictionary"),
    "unknown profile": (lambda d, g: ["detect", g["image"], "--brands", g["brands"], "--profile", "nope"],
                        "profile nope: not found"),
    "bad override value": (lambda d, g: ["detect", g["image"], "--brands", g["brands"], "--set", "match_brands.min_score=abc"],
                           "profile soccer_broadcast: stage match_brands: key min_score:"),
    "unknown override key": (lambda d, g: ["detect", g["image"], "--brands", g["brands"], "--set", "run_ocr.speed=9"],
                             "stage run_ocr: key speed: unknown key"),
    "bad --set": (lambda d, g: ["detect", g["image"], "--brands", g["brands"], "--set", "nonsense"],
                  "--set nonsense: expected STAGE.KEY=VALUE"),
    "hostile fps": (lambda d, g: ["detect", g["image"], "--brands", g["brands"], "--set", "extract_frames.fps=100000"],
                    "key fps: Input should be less than or equal to 60"),
    "enormous image": (lambda d, g: ["detect", huge_png(d / "huge.png"), "--brands", g["brands"]],
                       "image is 9000x9000 pixels, more than the 67 MP limit"),
    "no arguments": (lambda d, g: ["detect"], "the following arguments are required: source, --brands"),
}


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_line_and_exit_2(case, tmp_path, good, data_dir):
    args, expected = CASES[case]
    out = tmp_path / "out"
    argv = args(tmp_path, good)
    result = run_mpr(*argv, *(["--out", out] if len(argv) > 1 else []))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("mpr: error: ") and expected.format(d=tmp_path) in lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    assert not out.exists() and not data_dir.exists()


def test_a_failing_stage_exits_1_names_the_stage_and_writes_no_report(tmp_path, good, data_dir):
    blocker = write(tmp_path / "blocker", "a file where the artifact folder should be")
    out = tmp_path / "out"
    result = run_mpr("detect", good["image"], "--brands", good["brands"], "--out", out,
                     env={"MPR_ARTIFACTS": str(blocker / "store")})
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("mpr: error: stage extract_frames failed: ")
    assert "Traceback" not in result.stderr and "run_ocr[0] not run (upstream failed)" in result.stderr
    assert not (out / "report.json").exists()

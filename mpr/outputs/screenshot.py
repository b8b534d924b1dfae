"""A PNG screenshot of report.html (or any local HTML file) with headless Chromium.

    python -m mpr.outputs.screenshot report.html report.png [--width 1280 --height 2400]

Chromium is found on PATH (`chromium`, `chromium-browser` or `google-chrome`; Debian:
`apt-get install chromium`). Each run gets a throwaway profile directory, so runs never
share state or lock each other out.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
TIMEOUT_S = 120


def chromium() -> str | None:
    """Path of the first Chromium-family browser on PATH, or None."""
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


def screenshot(html_path: str | Path, png_path: str | Path, width: int = 1280, height: int = 2400) -> Path:
    """Render `html_path` at width x height CSS pixels into `png_path`; RuntimeError on failure."""
    browser = chromium()
    if browser is None:
        raise RuntimeError(f"no Chromium on PATH (looked for {', '.join(BROWSERS)})")
    page, out = Path(html_path).resolve(), Path(png_path).resolve()
    if not page.is_file():
        raise FileNotFoundError(page)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="mpr-chromium-") as profile:
        cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               "--disable-dev-shm-usage", "--no-first-run", "--force-device-scale-factor=1",
               f"--user-data-dir={profile}", f"--screenshot={out}", f"--window-size={width},{height}", page.as_uri()]
        try:
            proc = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError(f"{browser} took more than {TIMEOUT_S} s: {_tail(exc.stderr)}") from exc
    if proc.returncode != 0 or not out.is_file():
        raise RuntimeError(f"{browser} failed (exit {proc.returncode}): {_tail(proc.stderr)}")
    return out


def _tail(stderr: str | bytes | None, lines: int = 15) -> str:
    text = stderr.decode(errors="replace") if isinstance(stderr, bytes) else stderr or ""
    return "\n".join(text.strip().splitlines()[-lines:]) or "(no stderr)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mpr.outputs.screenshot", description=__doc__.splitlines()[0])
    parser.add_argument("html", type=Path, help="the HTML file (report.html)")
    parser.add_argument("png", type=Path, help="the PNG to write")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=2400)
    args = parser.parse_args(argv)
    if chromium() is None:
        print(f"error: no Chromium on PATH (looked for {', '.join(BROWSERS)})", file=sys.stderr)
        return 2
    if not args.html.is_file():
        print(f"error: {args.html} does not exist", file=sys.stderr)
        return 2
    try:
        print(screenshot(args.html, args.png, args.width, args.height))
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

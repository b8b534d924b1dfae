"""Optional analyst inputs: time ranges to ignore and a rate card, turned into compile_report settings.

`--ignore 10:00-12:30` (repeatable; also a file with one range per line, `#` comments) and
`--rate-card card.yaml` (currency, spot_30s or cpm + audience, placement_rates) end up as
ordinary compile_report overrides, validated like `--set` and part of its cache key.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from mpr.errors import InputError

TIME = re.compile(r"^(?:(\d+):)?(?:(\d+):)?(\d+(?:\.\d+)?)$")
RATE_CARD_KEYS = {"currency", "spot_30s", "cpm", "audience", "placement_rates"}
MAX_FILE_BYTES = 1 << 20


def parse_time(text: str) -> float:
    """Seconds from `SS[.s]`, `MM:SS[.s]` or `HH:MM:SS[.s]`."""
    match = TIME.match(text.strip())
    if not match:
        raise InputError(f"--ignore: {text!r} is not a time (SS, MM:SS or HH:MM:SS)")
    a, b, seconds = match.groups()
    hours, minutes = (a, b) if b is not None else (None, a)
    return int(hours or 0) * 3600 + int(minutes or 0) * 60 + float(seconds)


def parse_ranges(items: list[str]) -> list[list[float]]:
    """`START-END` ranges, or files listing them, into sorted [start, end] pairs."""
    ranges = []
    for item in items:
        path = Path(item)
        lines = _read_small(path).splitlines() if path.is_file() else [item]
        for line in (ln.split("#", 1)[0].strip() for ln in lines):
            if line:
                ranges.append(_range(line))
    return sorted(ranges)


def _range(text: str) -> list[float]:
    start, sep, end = text.replace(" ", "").partition("-")
    if not sep:
        raise InputError(f"--ignore: {text!r} is not a range START-END")
    a, b = parse_time(start), parse_time(end)
    if b < a:
        raise InputError(f"--ignore: {text!r} ends before it starts")
    return [a, b]


def load_rate_card(path: str) -> dict:
    """A rate card YAML -> compile_report settings."""
    try:
        card = yaml.safe_load(_read_small(Path(path)))
    except yaml.YAMLError as exc:
        raise InputError(f"--rate-card {path}: not YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(card, dict) or not card:
        raise InputError(f"--rate-card {path}: expected a mapping with {', '.join(sorted(RATE_CARD_KEYS))}")
    unknown = set(card) - RATE_CARD_KEYS
    if unknown:
        raise InputError(f"--rate-card {path}: unknown key {sorted(unknown)[0]!r} "
                         f"(known: {', '.join(sorted(RATE_CARD_KEYS))})")
    return card


def _read_small(path: Path) -> str:
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise InputError(f"{path}: larger than {MAX_FILE_BYTES} bytes")
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read ({exc.__class__.__name__})") from None


def analyst_overrides(overrides: dict, ignore: list[str], rate_card: str | None) -> dict:
    """`overrides` with the ignore ranges and rate card merged into compile_report's settings."""
    extra = {}
    if ignore:
        extra["ignore"] = parse_ranges(ignore)
    if rate_card:
        extra.update(load_rate_card(rate_card))
    if not extra:
        return overrides
    return {**overrides, "compile_report": {**overrides.get("compile_report", {}), **extra}}

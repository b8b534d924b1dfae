"""report.html: self-contained (no external URL), escaped, plots inline as SVG, tables, screenshot."""

from __future__ import annotations

import html
import random
import re

import pytest

from mpr.outputs.html import MAX_EXPOSURE_ROWS, render_html
from mpr.outputs.screenshot import chromium, screenshot
from mpr.records import BrandExposure, Exposure, Report, Segment, SourceSummary, StageRun

HOSTILE = "<script>alert(1)</script>"
PLACEMENTS = ("perimeter_board", "overlay", "shirt", "other")
RATES = {"perimeter_board": 120.0, "overlay": 200.0, "shirt": 80.0, "other": 50.0}
ZONES = ("bottom-centre", "centre", "top-left", "middle-right", "bottom-left")
NAMESPACES = {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}


def _exposure(rng: random.Random, id_: int, brand: str, start: float, placements: tuple[str, ...]) -> Exposure:
    duration = round(rng.uniform(1.0, 9.0), 1)
    placement = placements[id_ % len(placements)]
    share = rng.choice([rng.uniform(0.001, 0.01), rng.uniform(0.01, 0.08)])
    clarity, clutter = rng.uniform(0.4, 0.95), rng.choice([0.0, 0.0, 1.0, 2.0])
    quality = clarity * min(1.0, share * 20) / (1 + clutter)
    return Exposure(id=id_, brand=brand, start=start, end=start + duration - 0.5, duration_s=duration,
                    shot=int(start // 20), detections=int(duration * 2), placement=placement, share_mean=share,
                    share_max=share * 1.4, zone=rng.choice(ZONES), central=0.2, position=0.7, size=min(1, share * 20),
                    sharpness=0.8, contrast=0.7, confidence=0.9, clarity=clarity, clutter=clutter,
                    share_of_voice=1 / (1 + clutter), quality=quality,
                    media_value=duration * quality * RATES[placement])


def _brand(rng: random.Random, name: str, starts: list[float], placements: tuple[str, ...], first_id: int
           ) -> BrandExposure:
    exposures = [_exposure(rng, first_id + i, name, t, placements) for i, t in enumerate(starts)]
    seconds = sum(e.duration_s for e in exposures)
    segments = [Segment(start=e.start, end=e.end, confidence=0.9, detections=e.detections, exposure_s=e.duration_s)
                for e in exposures]
    return BrandExposure(brand=name, exposure_s=seconds, detections=sum(e.detections for e in exposures),
                         segments=segments, exposures=exposures, exposure_count=len(exposures),
                         quality=sum(e.quality * e.duration_s for e in exposures) / seconds,
                         media_value=sum(e.media_value for e in exposures))


def make_report(extra_exposures: int = 0) -> Report:
    """A 5-minute match clip: three brands on boards, overlays and shirts, shots, a replay left out."""
    rng = random.Random(7)
    brands = [
        _brand(rng, "Emirates", [3.0, 21.5, 48.0, 77.0, 130.0, 166.5, 201.0, 240.0, 271.0],
               ("perimeter_board", "shirt"), 1),
        _brand(rng, "Heineken & Co", [10.0, 55.0, 92.5, 150.0, 222.0, 260.0], ("perimeter_board", "overlay"), 20),
        _brand(rng, HOSTILE, [35.0, 180.0, 285.0], ("overlay", "other"), 40),
    ]
    if extra_exposures:
        brands.append(_brand(rng, "Flood", [0.5 * i for i in range(extra_exposures)], ("other",), 100))
    total = sum(b.exposure_s for b in brands)
    brands = [b.model_copy(update={"share_of_voice": b.exposure_s / total}) for b in brands]
    ranking = [b.brand for b in sorted(brands, key=lambda b: -b.media_value)]
    summary = SourceSummary(exposure_s=total, on_screen_s=total * 0.8, exposures=sum(b.exposure_count for b in brands),
                            media_value=sum(b.media_value for b in brands), currency="EUR", ranking=ranking)
    stages = [StageRun(name=name, state=state, seconds=secs, items_in=600, items_out=out, worker="local")
              for name, state, secs, out in [("extract_frames", "completed", 4.21, 600),
                                             ("filter_scenes", "cached", 0.0, 571),
                                             ("read_text", "completed", 38.7, 1840),
                                             ("escalate_cloud", "skipped", 0.0, 0),
                                             ("compile_report", "completed", 0.92, 18)]]
    return Report(source="samples/match <final> & replay.mp4", profile="football", duration_s=300.0,
                  frames_analyzed=600, frames_kept=571, brands=brands, summary=summary,
                  shots=[0.0, 20.0, 40.0, 61.0, 95.0, 128.0, 160.0, 199.0, 238.0, 270.0],
                  ignored=[(110.0, 126.0)], frame_size=(1280, 720), sample_interval_s=0.5, unresolved=12,
                  warnings=["read_text: 3 frames had no text detector output"], stages=stages,
                  run_id="run-42", created_at="2025-05-01T12:00:00Z", fingerprint="ab12cd34")


@pytest.fixture(scope="module")
def page() -> str:
    return render_html(make_report(), video="annotated.mp4")


def test_plots_are_inline_svg(page):
    assert page.startswith("<!DOCTYPE html>")
    assert page.count("<svg") == 3
    assert "<?xml" not in page and "<!DOCTYPE svg" not in page
    assert "<script" not in page  # no JavaScript at all (and the hostile name stays text)
    ids = re.findall(r'\bid="([^"]+)"', page)
    assert len(ids) == len(set(ids)), "element ids repeat across the inline SVGs"


def test_no_external_urls(page):
    urls = set(re.findall(r"https?://[^\s\"'<>)]*", page))
    assert urls <= NAMESPACES, urls - NAMESPACES
    assert re.search(r"(src|href)=\"(?!#)", page.replace('src="annotated.mp4"', "")) is None


def test_hostile_brand_is_escaped(page):
    assert HOSTILE not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "samples/match &lt;final&gt; &amp; replay.mp4" in page
    assert "Heineken &amp; Co" in page and "Heineken & Co" not in page


def test_quotes_in_brand_names_stay_text():
    report = make_report()
    odd = '<b>&"x\''
    report.brands[0] = report.brands[0].model_copy(update={"brand": odd})
    report.summary.ranking[report.summary.ranking.index("Emirates")] = odd
    page = render_html(report)
    assert odd not in page and "<b>" not in page
    assert "&lt;b&gt;&amp;&quot;x&#x27;" in page  # HTML tables
    assert "&lt;b&gt;&amp;" in page.split("<svg", 1)[1]  # matplotlib's own escaping inside the SVG


def test_tables_show_brands_and_numbers(page):
    report = make_report()
    emirates = report.brand("Emirates")
    for text in ["Emirates", f"{emirates.exposure_s:,.1f}", f"{emirates.media_value:,.2f} EUR",
                 f"{emirates.quality:.2f}", f"{emirates.share_of_voice * 100:.1f}",
                 f"{report.summary.media_value:,.2f} EUR", "300.0 s (5:00)", "600 analysed, 571 kept",
                 "football", "perimeter board", "read_text", "38.70", "state-cached",
                 "read_text: 3 frames had no text detector output",
                 '<video controls preload="metadata" src="annotated.mp4">', "Exposure timeline", "Share of screen",
                 "Brand ranking"]:
        assert text in page, text
    first = min((e for b in report.brands for e in b.exposures), key=lambda e: e.start)
    assert f'<td>{html.escape(first.brand)}</td><td class="num">{first.start:.1f}</td>' in page
    assert f"{first.share_mean * 100:.2f}" in page
    assert "more exposures are in report.json" not in page


def test_exposure_table_truncates():
    page = render_html(make_report(extra_exposures=MAX_EXPOSURE_ROWS))
    body = page.split("<h2>Exposures", 1)[1].split("</section>", 1)[0]
    assert body.count("<tr>") == MAX_EXPOSURE_ROWS + 1  # header + rows
    assert "18 more exposures are in report.json." in body
    assert "Exposures (518)" in page


def test_empty_report():
    report = make_report().model_copy(update={"brands": [], "summary": SourceSummary(), "warnings": []})
    page = render_html(report)
    assert "No brand was found" in page
    assert "<svg" not in page and "<h2>Brands</h2>" not in page and "<video" not in page
    assert "<h2>Stages</h2>" in page


def test_screenshot(tmp_path):
    if chromium() is None:
        pytest.skip("no Chromium on PATH (apt-get install chromium)")
    import cv2

    html_path = tmp_path / "report.html"
    html_path.write_text(render_html(make_report()), encoding="utf-8")
    png = screenshot(html_path, tmp_path / "report.png")
    img = cv2.imread(str(png))
    assert img is not None and img.shape[1] == 1280 and img.shape[0] == 2400
    assert cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).std() > 10
    plots = cv2.cvtColor(img[250:1300], cv2.COLOR_BGR2HSV)
    coloured = (plots[..., 1] > 120) & (plots[..., 2] > 80)
    assert coloured.mean() > 0.01, "the plot area has no coloured bars"

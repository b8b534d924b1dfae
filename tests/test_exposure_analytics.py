"""Exposure analytics on hand-made detections: tracking semantics and the documented formulas."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from mpr.analytics import ExposureConfig, analyse, shot_starts
from mpr.analytics.exposures import ValueConfig
from mpr.analytics.inputs import analyst_overrides, parse_ranges, parse_time
from mpr.analytics.measures import contrast, placement_from_pitch, sharpness, zone
from mpr.errors import InputError
from mpr.records import Detection, Frame

W, H = 1280, 720


def hit(t, brand="Acme", box=(100, 100, 300, 150), **extra) -> Detection:
    values = {"share": (box[2] - box[0]) * (box[3] - box[1]) / (W * H), "zone": "centre", "sharpness": 1.0,
              "contrast": 1.0, "placement": "perimeter_board", "confidence": 1.0, **extra}
    return Detection(t=float(t), brand=brand, box=box, **values)


def run(detections, shots=(0.0,), interval=1.0, limit=100.0, **config):
    return analyse(detections, list(shots), interval, limit, ExposureConfig(**config))


def spans(analysis, brand="Acme"):
    return [(e.start, e.end, e.duration_s) for e in analysis.exposures.get(brand, [])]


def test_a_board_seen_for_six_seconds_is_one_exposure_even_while_the_camera_pans():
    moving = [hit(t, box=(100 + 60 * t, 100, 300 + 60 * t, 150)) for t in range(6)]
    assert spans(run(moving)) == [(0.0, 5.0, 6.0)]


def test_a_fast_pan_that_loses_the_tracker_is_stitched_into_one_exposure():
    jumps = [hit(t, box=(100 + 300 * t, 100, 200 + 300 * t, 130)) for t in range(4)]  # 3 box widths per sample
    assert spans(run(jumps)) == [(0.0, 3.0, 4.0)]


def test_a_gap_within_the_tolerance_keeps_the_exposure_and_a_longer_one_splits_it():
    gap2 = [hit(t) for t in (0, 1, 2, 5, 6)]  # samples 3 and 4 missed: 2 s
    assert spans(run(gap2, track_gap_s=2.0)) == [(0.0, 6.0, 7.0)]
    assert spans(run(gap2, track_gap_s=1.0)) == [(0.0, 2.0, 3.0), (5.0, 6.0, 2.0)]


def test_a_shot_change_ends_the_exposure():
    assert spans(run([hit(t) for t in range(6)], shots=(0.0, 3.0))) == [(0.0, 2.0, 3.0), (3.0, 5.0, 3.0)]


def test_two_placements_of_one_brand_at_once_are_two_exposures():
    board = [hit(t, box=(100, 100, 300, 150)) for t in range(4)]
    overlay = [hit(t, box=(900, 600, 1200, 680), placement="overlay") for t in range(1, 3)]
    analysis = run(board + overlay)
    assert sorted(spans(analysis)) == [(0.0, 3.0, 4.0), (1.0, 2.0, 2.0)]
    assert sorted(e.placement for e in analysis.exposures["Acme"]) == ["overlay", "perimeter_board"]


def test_the_same_words_read_twice_in_one_frame_are_one_placement():
    band = [hit(t, box=(100, 100, 300, 150)) for t in range(3)]
    frame_read = [hit(t, box=(110, 105, 290, 148)) for t in range(3)]
    analysis = run(band + frame_read)
    (exposure,) = analysis.exposures["Acme"]
    assert exposure.detections == 6
    assert {d.exposure for d in analysis.detections} == {exposure.id}


def test_ignored_ranges_drop_detections_and_split_exposures():
    frames = [Frame(index=t, t=float(t), key=f"{t}", width=W, height=H) for t in range(10)]
    config = ExposureConfig(ignore=[(3.0, 5.0)])
    shots = shot_starts(frames, config.ignore, stills=False)
    assert shots == [0.0, 6.0]
    analysis = analyse([hit(t) for t in range(10)], shots, 1.0, 10.0, config)
    assert spans(analysis) == [(0.0, 2.0, 3.0), (6.0, 9.0, 4.0)]


def test_still_images_are_each_their_own_shot():
    frames = [Frame(index=i, t=float(i), key=f"{i}", width=W, height=H) for i in range(3)]
    assert shot_starts(frames, [], stills=True) == [0.0, 1.0, 2.0]


def test_exposure_durations_are_clipped_to_the_readable_source():
    assert spans(run([hit(t) for t in range(3)], limit=2.5)) == [(0.0, 2.0, 2.5)]


def test_quality_and_media_value_follow_the_documented_formulas():
    full = ExposureConfig(full_size_share=0.02, clutter_weight=0.25, spot_30s=300.0)
    box = (0, 0, 256, 72)  # 2% of 1280x720: size 1
    acme = [hit(t, box=box, zone="top-left", sharpness=0.8, contrast=0.6, confidence=0.7) for t in range(3)]
    other = [hit(t, brand="Other", box=(800, 500, 900, 520)) for t in range(3)]
    exposure = analyse(acme + other, [0.0], 1.0, 100.0, full).exposures["Acme"][0]
    clarity = (0.8 + 0.6 + 0.7) / 3
    quality = clarity * 1.0 * 0.7 / (1 + 0.25 * 1)
    assert exposure.size == pytest.approx(1.0)
    assert exposure.position == pytest.approx(0.7)
    assert exposure.clutter == pytest.approx(1.0) and exposure.share_of_voice == pytest.approx(0.5)
    assert exposure.clarity == pytest.approx(clarity, abs=1e-4)
    assert exposure.quality == pytest.approx(quality, abs=1e-4)
    assert exposure.media_value == pytest.approx(3.0 * quality * 300.0 / 30, rel=1e-3)
    small = analyse([hit(0, box=(0, 0, 64, 72))], [0.0], 1.0, 100.0, full).exposures["Acme"][0]
    assert small.size == pytest.approx(0.5, abs=1e-3)  # a quarter of full size: sqrt(1/4)


def test_rate_cards_price_by_placement_and_cpm_sets_the_spot_price():
    card = ValueConfig(spot_30s=300.0, placement_rates={"overlay": 600.0})
    assert card.rate_per_s("overlay") == 20.0 and card.rate_per_s("shirt") == 10.0
    assert ValueConfig(cpm=20.0, audience=1_000_000, spot_30s=1.0).rate_per_s("other") == pytest.approx(20000 / 30)


def test_measures_zone_sharpness_contrast():
    assert zone(0.5, 0.5) == "centre" and zone(0.01, 0.99) == "bottom-left" and zone(1.0, 0.0) == "top-right"
    text = np.full((40, 160), 255, np.uint8)
    cv2.putText(text, "ACME", (5, 32), cv2.FONT_HERSHEY_SIMPLEX, 1.2, 0, 3)
    blurred = cv2.GaussianBlur(text, (0, 0), 4)
    assert sharpness(text) > 0.8 > sharpness(blurred)
    assert contrast(text) > 0.9 and contrast(np.full((40, 160), 128, np.uint8)) == 0


def test_placement_from_the_pitch_around_the_text():
    mask = np.zeros((180, 320), np.uint8)
    mask[60:, :] = 255  # pitch below y=60 (in 320-wide mask pixels; the frame is 1280 wide: x4)
    assert placement_from_pitch(mask, (400, 200, 600, 236), 1280) == "perimeter_board"  # just above the pitch
    assert placement_from_pitch(mask, (600, 500, 680, 530), 1280) == "shirt"  # on the pitch
    assert placement_from_pitch(mask, (600, 20, 700, 60), 1280) == "other"  # in the stands


def test_analyst_inputs(tmp_path):
    assert parse_time("90") == 90 and parse_time("1:30") == 90 and parse_time("1:00:01.5") == 3601.5
    listing = tmp_path / "replays.txt"
    listing.write_text("# replays\n1:00-1:10\n\n2:00 - 2:05  # penalty\n")
    assert parse_ranges(["5-6", str(listing)]) == [[5.0, 6.0], [60.0, 70.0], [120.0, 125.0]]
    for bad in ("5", "a-b", "9-3"):
        with pytest.raises(InputError):
            parse_ranges([bad])
    card = tmp_path / "card.yaml"
    card.write_text("currency: EUR\nspot_30s: 1000\nplacement_rates: {overlay: 2000}\n")
    merged = analyst_overrides({"compile_report": {"max_gap_s": 3}}, ["1-2"], str(card))
    assert merged["compile_report"] == {"max_gap_s": 3, "ignore": [[1.0, 2.0]], "currency": "EUR", "spot_30s": 1000,
                                        "placement_rates": {"overlay": 2000}}
    card.write_text("price: 3\n")
    with pytest.raises(InputError, match="unknown key 'price'"):
        analyst_overrides({}, [], str(card))



def test_pixel_measures_are_remembered_per_frame_and_box(tmp_path):
    """A second measuring of the same boxes (a replay with another match_brands config) reads the
    memo, not the frame; a new box in that frame needs the frame again."""
    from mpr.analytics.measures import measure_detections
    from mpr.store import ArtifactStore

    store = ArtifactStore(str(tmp_path / "store"))
    image = np.full((360, 640, 3), (40, 140, 40), np.uint8)  # grass
    image[:100] = 90  # stands and boards above it
    cv2.putText(image, "NORDLYS", (60, 80), cv2.FONT_HERSHEY_DUPLEX, 1.5, (255, 255, 255), 3)
    key = store.put_image("frames/extract_frames-ab/000000.jpg", image)
    frames = {0.0: Frame(index=0, t=0.0, key=key, width=640, height=360)}
    board = Detection(t=0.0, brand="Nordlys", confidence=0.9, box=(50, 40, 260, 95))
    first = measure_detections([board], frames, store)[0]
    assert first.sharpness and first.contrast and first.placement == "perimeter_board"

    (tmp_path / "store" / key).unlink()  # the frame is gone: only the memo can answer now
    again = measure_detections([board.model_copy(update={"brand": "Kiwi"})], frames, store)[0]
    assert (again.share, again.zone, again.placement, again.sharpness, again.contrast) == \
        (first.share, first.zone, first.placement, first.sharpness, first.contrast)
    other = measure_detections([board.model_copy(update={"box": (300, 200, 400, 240)})], frames, store)[0]
    assert other.sharpness is None and other.share > 0  # not measured before: needs the missing frame

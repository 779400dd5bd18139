"""edge.detect.motion on generated scenes (and on real video when the test data is there)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from edge.detect.motion import (
    MotionDetector,
    MotionResult,
    MotionSettings,
    measure_motion_ms,
    synthetic_scene,
)

W, H = 320, 240
FRAME_US = 200_000  # 5 fps
Rgb = np.ndarray[Any, np.dtype[np.uint8]]
TESTDATA = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "livecam" / "testdata"


def noisy(picture: Rgb, rng: np.random.Generator, sigma: float = 3.0) -> Rgb:
    noise = rng.normal(0, sigma, picture.shape[:2])[:, :, None]
    return np.asarray(np.clip(picture.astype(np.float32) + noise, 0, 255), dtype=np.uint8)


def run(
    make: Callable[[int], Rgb],
    frames: int,
    detector: MotionDetector | None = None,
    excluded: np.ndarray[Any, np.dtype[np.bool_]] | None = None,
) -> list[MotionResult]:
    detector = detector or MotionDetector()
    return [detector.update(make(i), i * FRAME_US, excluded) for i in range(frames)]


@pytest.fixture
def scene() -> Rgb:
    return synthetic_scene(W, H, seed=3)


def test_a_moving_rectangle_is_motion_and_boxed(scene: Rgb) -> None:
    rng = np.random.default_rng(0)

    def frame(i: int) -> Rgb:
        picture = scene.copy()
        if i >= 10:
            x = 40 + (i - 10) * 6
            picture[100:160, x : x + 40] = 230
        return noisy(picture, rng)

    results = run(frame, 30)
    assert not any(r.active for r in results[:10]), "nothing moves in the first 10 frames"
    first = next(i for i, r in enumerate(results) if r.active)
    assert first <= 12, "motion starts within the debounce window"
    assert results[first].started
    assert all(r.active for r in results[first:])
    last = results[-1]
    assert last.boxes
    x0, y0, x1, y1 = last.box or (0, 0, 0, 0)
    x_now = (40 + 19 * 6) / W
    # The box covers where the rectangle is now (the place it left may show too).
    assert x0 <= x_now + 0.02
    assert x1 >= x_now + 40 / W - 0.02
    assert y1 >= 95 / H
    assert y0 <= 105 / H
    assert abs(y0 - 100 / H) < 0.05
    assert abs(y1 - 160 / H) < 0.05
    assert 0.01 < last.fraction < 0.2


def test_motion_stops_after_the_quiet_time(scene: Rgb) -> None:
    settings = MotionSettings(quiet_s=2.0)

    def frame(i: int) -> Rgb:
        picture = scene.copy()
        if 5 <= i < 15:
            picture[50:100, 20 + i * 8 : 60 + i * 8] = 240
        return picture

    results = run(frame, 40, MotionDetector(settings))
    active = [i for i, r in enumerate(results) if r.active]
    stopped = [i for i, r in enumerate(results) if r.stopped]
    assert active[0] <= 7
    # Last moving picture at 15 (the rectangle vanishing is a change too); 2 s = 10 frames.
    assert stopped == [active[-1] + 1]
    assert 24 <= stopped[0] <= 27


def test_a_single_glitch_does_not_start_motion(scene: Rgb) -> None:
    def frame(i: int) -> Rgb:
        picture = scene.copy()
        if i in (10, 20):  # isolated one-picture glitches
            picture[60:140, 60:160] = 255
        return picture

    results = run(frame, 30)
    assert any(r.moving for r in results), "the glitches are seen"
    assert not any(r.active for r in results), "but never debounce into motion"


@pytest.mark.parametrize("sigma", [4.0, 8.0])
def test_sensor_noise_is_not_motion(scene: Rgb, sigma: float) -> None:
    rng = np.random.default_rng(1)
    results = run(lambda i: noisy(scene, rng, sigma), 50)
    assert not any(r.moving for r in results)


def test_a_lighting_ramp_is_not_motion(scene: Rgb) -> None:
    rng = np.random.default_rng(2)

    def frame(i: int) -> Rgb:  # dusk: 60 % darker over 10 seconds
        gain = 1.0 - 0.6 * i / 50
        return noisy(np.clip(scene * gain, 0, 255).astype(np.uint8), rng)

    assert not any(r.moving for r in run(frame, 50))


@pytest.mark.parametrize("gain", [0.5, 1.6])
def test_an_exposure_step_is_not_motion(scene: Rgb, gain: float) -> None:
    rng = np.random.default_rng(3)

    def frame(i: int) -> Rgb:
        picture = scene if i < 10 else np.clip(scene * gain, 0, 255).astype(np.uint8)
        return noisy(picture, rng)

    results = run(frame, 30)
    assert not any(r.moving for r in results)


def test_a_lamp_lighting_part_of_the_scene_is_not_motion(scene: Rgb) -> None:
    yy, xx = np.mgrid[0:H, 0:W]
    lamp = (80 * np.exp(-((xx - 60) ** 2 + (yy - 60) ** 2) / 2e4))[:, :, None]

    def frame(i: int) -> Rgb:
        return scene if i < 10 else np.clip(scene + lamp, 0, 255).astype(np.uint8)

    assert not any(r.moving for r in run(frame, 20))


def test_a_whole_new_picture_is_a_lighting_change(scene: Rgb) -> None:
    # The IR cut filter switches: a different picture of the same place.
    rng = np.random.default_rng(9)
    blocks = np.kron(rng.integers(0, 256, (H // 20, W // 20)), np.ones((20, 20)))
    night = np.repeat(blocks[:, :, None], 3, axis=2).astype(np.uint8)

    def frame(i: int) -> Rgb:
        return scene if i < 10 else night

    detector = MotionDetector()
    results = run(frame, 20, detector)
    assert results[10].lighting
    assert detector.lighting_changes == 1
    assert not any(r.moving for r in results), "the background starts over from it"


def flicker(scene: Rgb) -> Callable[[int], Rgb]:
    def frame(i: int) -> Rgb:
        picture = scene.copy()
        if i % 2:
            picture[20:80, 220:300] = 250  # a flickering light
        return picture

    return frame


def test_a_flickering_light_is_motion_unless_masked(scene: Rgb) -> None:
    assert any(r.active for r in run(flicker(scene), 20)), "unmasked, it is motion"
    excluded = np.zeros((H, W), dtype=bool)
    excluded[10:90, 210:310] = True
    masked = run(flicker(scene), 20, excluded=excluded)
    assert not any(r.moving for r in masked)
    assert all(r.fraction == 0 for r in masked)


def test_tick_ends_motion_when_pictures_stop(scene: Rgb) -> None:
    detector = MotionDetector(MotionSettings(quiet_s=1.0))

    def frame(i: int) -> Rgb:
        picture = scene.copy()
        picture[100:150, 10 + i * 10 : 50 + i * 10] = 230
        return picture

    results = run(frame, 8, detector)
    assert detector.active
    assert results[-1].active
    assert not detector.tick(8 * FRAME_US)
    assert detector.tick(7 * FRAME_US + 1_000_000)
    assert not detector.active


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"threshold": 0}, "threshold"),
        ({"min_area": 0.9}, "min_area"),
        ({"start_frames": 5, "window_frames": 3}, "start_frames"),
        ({"quiet_s": 0}, "quiet_s"),
    ],
)
def test_bad_settings_are_named(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MotionSettings(**kwargs)


def test_a_mask_of_the_wrong_size_is_refused(scene: Rgb) -> None:
    with pytest.raises(ValueError, match="mask shape"):
        MotionDetector().update(scene, 0, np.zeros((10, 10), dtype=bool))


def test_it_is_cheap() -> None:
    p50, p95 = measure_motion_ms(frames=120)
    assert p50 < 10, f"{p50:.2f} ms per 320x240 picture"
    assert p95 >= p50


# --- real video ------------------------------------------------------------------------


def find_vtest() -> Path | None:
    found = sorted(TESTDATA.rglob("vtest.avi")) if TESTDATA.exists() else []
    return found[0] if found else None


def video_frames(path: Path, count: int) -> Iterator[tuple[Rgb, int]]:
    """Up to ``count`` pictures at about 5 fps, 320x240, with their media time in µs."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        step = max(1, round(float(stream.average_rate or 5) / 5))
        made = 0
        for i, frame in enumerate(container.decode(stream)):
            if made >= count:
                return
            if i % step:
                continue
            rgb = frame.reformat(width=320, height=240, format="rgb24").to_ndarray()
            made += 1
            yield np.asarray(rgb, dtype=np.uint8), round((frame.time or 0.0) * 1e6)


def test_pedestrians_in_real_video_are_motion() -> None:
    path = find_vtest()
    if path is None:
        pytest.skip(f"vtest.avi not under {TESTDATA}: run scripts/setup-testdata.sh")
    detector = MotionDetector()
    results = [detector.update(rgb, t) for rgb, t in video_frames(path, 200)]
    assert len(results) >= 200
    active = sum(r.active for r in results[5:]) / len(results[5:])
    assert active > 0.9, f"people walk through the whole clip; active {active:.0%}"
    boxes = [b for r in results if r.moving for b in r.boxes]
    assert boxes
    assert all(0 <= b[0] < b[2] <= 1 and 0 <= b[1] < b[3] <= 1 for b in boxes)
    # Walking people are tall and narrow, not the whole picture.
    assert np.median([b[2] - b[0] for b in boxes]) < 0.3
    # The same clip, frozen on one picture, is still.
    still = next(video_frames(path, 1))[0]
    frozen = MotionDetector()
    assert not any(frozen.update(still, i * FRAME_US).moving for i in range(20))

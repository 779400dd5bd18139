"""edge.analysis + edge.jpeg: JPEGs only while wanted, throttled, scaled; from pictures or
decoded H.264; several outputs of one stage at their own rates and sizes."""

from __future__ import annotations

import io
import itertools
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from edge.analysis import AnalysisStage, FrameThrottle, scaled_size
from edge.detect.zones import ZoneState
from edge.h264 import AccessUnitReader
from edge.jpeg import JpegTap, PictureFilter
from edge.sources.base import CapturedFrame, Picture, SensorClock
from edge.sources.demux import annexb_packets, open_h264
from edge.sources.picamera2 import LoresTap, default_lores_size, lores_picture
from edge.sources.synthetic import SyntheticSource
from scripts.media import make_h264_file

FRAME_US = 33_333  # 30 fps


def wait_for(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


class Jpegs:
    """Collects the tap's output; ``wait(n)`` blocks until n JPEGs arrived."""

    def __init__(self) -> None:
        self.items: list[tuple[bytes, int]] = []
        self._cond = threading.Condition()

    def __call__(self, jpeg: bytes, capture_us: int) -> None:
        with self._cond:
            self.items.append((jpeg, capture_us))
            self._cond.notify_all()

    def wait(self, count: int, timeout: float = 20.0) -> list[tuple[bytes, int]]:
        with self._cond:
            assert self._cond.wait_for(lambda: len(self.items) >= count, timeout), (
                f"{len(self.items)} of {count} JPEGs"
            )
            return list(self.items)

    def images(self) -> list[Image.Image]:
        return [Image.open(io.BytesIO(jpeg)) for jpeg, _ in self.items]


def gray_picture(width: int, height: int, capture_us: int, luma: int = 128) -> Picture:
    planes = np.full((height * 3 // 2, width), 128, np.uint8)
    planes[:height] = luma
    return Picture(planes, width, height, capture_us)


def file_frames(path: Path) -> list[CapturedFrame]:
    container, stream = open_h264(str(path), name="t")
    reader = AccessUnitReader(name="t")
    frames: list[CapturedFrame] = []
    try:
        for packet in annexb_packets(container, stream):
            au = reader.push_access_unit(packet.data)
            if au is not None:
                index = len(frames)
                frames.append(CapturedFrame(au=au, capture_us=index * FRAME_US, index=index))
    finally:
        container.close()
    return frames


@pytest.fixture
def jpegs() -> Jpegs:
    return Jpegs()


def make_tap(
    output: Callable[[bytes, int], None],
    *,
    decode: bool,
    picture_filter: PictureFilter | None = None,
) -> tuple[AnalysisStage, JpegTap]:
    """A stage with only a JPEG tap on it, as the camera runner builds it."""
    stage = AnalysisStage("cam", decode=decode)
    return stage, JpegTap(stage, output, picture_filter=picture_filter)


# --- throttle and scaling --------------------------------------------------------------


@pytest.mark.parametrize(
    ("source_fps", "want_fps", "expected"),
    [(30, 5, 50), (15, 5, 50), (5, 5, 50), (10, 5, 50), (30, 1, 10), (60, 30, 300)],
)
def test_throttle_keeps_the_average_rate(source_fps: int, want_fps: int, expected: int) -> None:
    throttle = FrameThrottle(want_fps)
    rng = np.random.default_rng(1)
    taken = 0
    for i in range(source_fps * 10):  # ten seconds, with ±2 ms capture jitter
        t = int(i * 1e6 / source_fps + rng.integers(-2000, 2000))
        taken += throttle.take(t)
    assert abs(taken - expected) <= 1


def test_throttle_never_exceeds_the_rate_of_an_uneven_source() -> None:
    throttle = FrameThrottle(5)
    taken = sum(throttle.take(i * 125_000) for i in range(80))  # 8 fps for 10 s
    assert 40 <= taken <= 50


def test_throttle_after_a_gap_does_not_burst() -> None:
    throttle = FrameThrottle(5)
    assert throttle.take(0)
    assert throttle.take(1_000_000)  # the source stalled for a second
    assert not throttle.take(1_033_333)  # and does not make up for it in a burst
    assert not throttle.take(1_100_000)
    assert throttle.take(1_200_000)


@pytest.mark.parametrize(
    ("size", "max_width", "expected"),
    [
        ((1920, 1080), 640, (640, 360)),
        ((1280, 720), 640, (640, 360)),
        ((640, 480), 640, (640, 480)),
        ((320, 240), 640, (320, 240)),
        ((1000, 563), 333, (332, 186)),
    ],
)
def test_scaled_size_keeps_aspect_and_even_sizes(
    size: tuple[int, int], max_width: int, expected: tuple[int, int]
) -> None:
    assert scaled_size(*size, max_width) == expected


# --- pictures (synthetic, lores) -------------------------------------------------------


def test_nothing_is_made_until_wanted(jpegs: Jpegs) -> None:
    stage, tap = make_tap(jpegs, decode=False)
    stage.start()
    try:
        assert not stage.wants_picture(0)
        for i in range(30):
            stage.on_picture(gray_picture(320, 240, i * FRAME_US))
        assert stage.stats.taken == 0
        tap.set_wanted(True, fps=5, max_width=640)
        assert stage.wants_picture(30 * FRAME_US)
        stage.on_picture(gray_picture(320, 240, 30 * FRAME_US))
        jpegs.wait(1)
    finally:
        stage.close()
    assert tap.stats.encoded == 1


def test_pictures_are_throttled_scaled_and_filtered(jpegs: Jpegs) -> None:
    def black_out_left_half(rgb: np.ndarray[Any, np.dtype[np.uint8]]) -> Any:
        out = rgb.copy()
        out[:, : rgb.shape[1] // 2] = 0
        return out

    stage, tap = make_tap(jpegs, decode=False, picture_filter=black_out_left_half)
    tap.set_wanted(True, fps=5, max_width=640)
    stage.start()
    try:
        asked = 0
        for i in range(60):  # two seconds of a 30 fps camera
            t = i * FRAME_US
            if stage.wants_picture(t):
                asked += 1
                stage.on_picture(gray_picture(1280, 720, t, luma=200))
                # Wait for each so none is replaced while the worker is busy.
                jpegs.wait(stage.stats.taken)
    finally:
        stage.close()
    # At 0 s, then one per 200 ms slot (a quarter slot early at most) up to 1.97 s.
    assert asked == 11
    assert tap.stats.encoded == 11
    assert stage.stats.dropped == 0
    times = [t for _, t in jpegs.items]
    assert times == sorted(times)
    assert min(b - a for a, b in itertools.pairwise(times)) >= 5 * FRAME_US - 1
    for image in jpegs.images():
        assert (image.format, image.size) == ("JPEG", (640, 360))
        gray = np.asarray(image.convert("L"), dtype=int)
        assert gray[:, :300].mean() < 10, "the filter ran before encoding"
        assert gray[:, 340:].mean() > 150


def test_a_busy_worker_drops_pictures_instead_of_blocking(jpegs: Jpegs) -> None:
    release = threading.Event()

    def slow_output(jpeg: bytes, capture_us: int) -> None:
        release.wait(10)
        jpegs(jpeg, capture_us)

    stage, tap = make_tap(slow_output, decode=False)
    tap.set_wanted(True, fps=30)
    stage.start()
    try:
        stage.on_picture(gray_picture(320, 240, 0))
        wait_for(lambda: stage._slot is None)  # the worker took it and is stuck in the output
        started = time.monotonic()
        for i in range(1, 40):
            stage.on_picture(gray_picture(320, 240, i * FRAME_US))
        assert time.monotonic() - started < 0.5, "the source thread was held up"
        release.set()
        jpegs.wait(2)
    finally:
        release.set()
        stage.close()
    # One in the output, one waiting at the end: everything else was replaced.
    assert stage.stats.taken == 40
    assert stage.stats.dropped == 38
    assert [t for _, t in jpegs.items] == [0, 39 * FRAME_US]


def test_synthetic_source_hands_its_rendered_pictures(jpegs: Jpegs) -> None:
    source = SyntheticSource(name="synth", width=640, height=360, fps=30)
    stage, tap = make_tap(jpegs, decode=False)
    source.set_picture_sink(stage)
    tap.set_wanted(True, fps=10, max_width=320)
    stage.start()
    stop = threading.Event()
    thread = threading.Thread(target=source.run, args=(lambda f: None, stop), daemon=True)
    thread.start()
    try:
        jpegs.wait(5)
    finally:
        stop.set()
        thread.join(10)
        stage.close()
    images = jpegs.images()
    assert {im.size for im in images} == {(320, 180)}
    lumas = [np.asarray(im.convert("L"), dtype=int) for im in images]
    assert np.abs(lumas[0] - lumas[-1]).mean() > 2, "the picture moves"
    assert stage.stats.decoders_opened == 0


def test_lores_buffers_with_stride_padding_become_pictures() -> None:
    width, height, stride = 320, 240, 384
    y = np.arange(height * stride, dtype=np.uint32).reshape(height, stride) % 200
    u = np.full((height // 2, stride // 2), 90, np.uint8)
    v = np.full((height // 2, stride // 2), 170, np.uint8)
    flat = np.concatenate([y.astype(np.uint8).ravel(), u.ravel(), v.ravel()])
    buffer = flat.reshape(height * 3 // 2, stride)  # as picamera2's make_array returns it
    config = {"size": (width, height), "format": "YUV420", "stride": stride}
    picture = lores_picture(buffer, config, 123)
    assert (picture.width, picture.height, picture.format) == (width, height, "yuv420p")
    assert np.array_equal(picture.data[:height], y[:, :width].astype(np.uint8))
    chroma = picture.data[height:].ravel()
    assert set(chroma[: width * height // 4]) == {90}
    assert set(chroma[width * height // 4 :]) == {170}
    swapped = lores_picture(buffer, {**config, "format": "YVU420"}, 123)
    assert set(swapped.data[height:].ravel()[: width * height // 4]) == {170}

    bgr = np.zeros((height, width * 3 + 64), np.uint8)
    bgr[:, 0 : width * 3 : 3] = 255  # picamera2's RGB888 is B, G, R in memory
    rgb = lores_picture(bgr, {"size": (width, height), "format": "RGB888", "stride": 0}, 1)
    assert rgb.format == "rgb24"
    assert rgb.data[0, 0].tolist() == [0, 0, 255]
    with pytest.raises(ValueError, match="not one of"):
        lores_picture(bgr, {"size": (width, height), "format": "XRGB8888"}, 1)


class SensorTime(SensorClock):
    """Capture time = sensor time (the requests below are replayed faster than real time)."""

    def capture_us(self, sensor_us: int, arrival_us: int | None = None) -> int:
        return sensor_us


class FakeRequest:
    def __init__(self, sensor_ns: int, array: np.ndarray[Any, np.dtype[np.uint8]]) -> None:
        self.sensor_ns = sensor_ns
        self.array = array
        self.arrays_made = 0

    def get_metadata(self) -> dict[str, int]:
        return {"SensorTimestamp": self.sensor_ns}

    def make_array(self, name: str) -> np.ndarray[Any, np.dtype[np.uint8]]:
        assert name == "lores"
        self.arrays_made += 1
        return self.array


def test_lores_tap_copies_a_buffer_only_when_the_sink_wants_one(jpegs: Jpegs) -> None:
    width, height = default_lores_size(1920, 1080)
    assert (width, height) == (640, 360)
    config = {"size": (width, height), "format": "YUV420", "stride": width}
    buffer = np.full((height * 3 // 2, width), 100, np.uint8)
    lores = LoresTap("pi", config)
    lores.clock = SensorTime()
    stage, tap = make_tap(jpegs, decode=False)
    requests = [FakeRequest(i * FRAME_US * 1000, buffer) for i in range(30)]
    for request in requests[:10]:
        lores.on_request(request)  # no sink yet
    lores.sink = stage
    for request in requests[10:20]:
        lores.on_request(request)  # a sink that wants nothing
    assert sum(r.arrays_made for r in requests) == 0
    tap.set_wanted(True, fps=5)
    stage.start()
    try:
        for request in requests[20:]:
            lores.on_request(request)
            jpegs.wait(stage.stats.taken)
    finally:
        stage.close()
    assert sum(r.arrays_made for r in requests) == 2  # 10 frames at 30 fps → 2 at 5 fps
    assert {im.size for im in jpegs.images()} == {(640, 360)}


class Pictures:
    """A plain stage output that records what it got."""

    def __init__(self) -> None:
        self.items: list[tuple[tuple[int, ...], int, bool]] = []

    def __call__(self, rgb: np.ndarray[Any, np.dtype[np.uint8]], capture_us: int) -> None:
        self.items.append((rgb.shape, capture_us, bool(rgb.flags.writeable)))


def test_outputs_get_their_own_rate_and_size_from_one_picture_supply(jpegs: Jpegs) -> None:
    stage, tap = make_tap(jpegs, decode=False)
    analysis = Pictures()
    out = stage.add_output("events", analysis, fps=2, max_width=320)
    tap.set_wanted(True, fps=5, max_width=640)
    out.set(True)
    outputs = (out, tap.pictures)
    stage.start()
    try:
        for i in range(90):  # three seconds of a 30 fps camera
            t = i * FRAME_US
            if stage.wants_picture(t):
                stage.on_picture(gray_picture(1280, 720, t))
                # Let the worker finish this picture so none is replaced.
                wait_for(lambda: all(o.stats.delivered == o.stats.taken for o in outputs))
    finally:
        stage.close()
    # Each on its own grid: 0 s, then every 200 ms / 500 ms (a quarter slot early at most).
    assert len(jpegs.items) == 16
    assert len(analysis.items) == 7
    assert stage.stats.dropped == 0
    times = {t for _, t in jpegs.items} | {t for _, t, _ in analysis.items}
    assert stage.stats.taken == len(times) < 16 + 7, "a picture both want is made once"
    assert {im.size for im in jpegs.images()} == {(640, 360)}
    assert {shape for shape, _, _ in analysis.items} == {(180, 320, 3)}
    assert not any(writable for _, _, writable in analysis.items), "shared pictures are read-only"
    # Switching one off leaves the other running.
    out.set(False)
    assert stage.wanted
    assert tap.wanted
    tap.set_wanted(False)
    assert not stage.wanted


def test_privacy_masks_are_black_in_every_jpeg(jpegs: Jpegs, tmp_path: Path) -> None:
    zones = ZoneState("cam", tmp_path / "zones.json")
    right_half = [[0.5, 0], [1, 0], [1, 1], [0.5, 1]]
    assert zones.update(
        {"type": "zones", "zones": [{"id": "m", "kind": "mask", "points": right_half}]}
    )
    stage, tap = make_tap(jpegs, decode=False, picture_filter=zones.apply_masks)
    tap.set_wanted(True, fps=30, max_width=640)
    stage.start()
    try:
        stage.on_picture(gray_picture(640, 360, 0, luma=220))
        jpegs.wait(1)
        assert zones.update({"type": "zones", "zones": []})  # the mask is removed
        stage.on_picture(gray_picture(640, 360, 10 * FRAME_US, luma=220))
        jpegs.wait(2)
    finally:
        stage.close()
    masked, unmasked = (np.asarray(im.convert("L"), dtype=int) for im in jpegs.images())
    assert masked[:, 330:].max() < 12, "the masked half is black in the JPEG bytes"
    assert masked[:, :310].min() > 200
    assert unmasked.min() > 200, "without the mask the picture is whole again"


def test_the_decoder_serves_any_output_and_closes_when_none_is_left(
    jpegs: Jpegs, clip_frames: list[CapturedFrame]
) -> None:
    stage, _ = make_tap(jpegs, decode=True)  # a JPEG tap nobody wants
    analysis = Pictures()
    out = stage.add_output("events", analysis, fps=5, max_width=320)
    stage.start()
    try:
        out.set(True)  # detection only: nobody watches
        for frame in clip_frames[:60]:
            stage.on_frame(frame)
        wait_for(lambda: stage.stats.decoded == 60)
        assert stage.decoding
        wait_for(lambda: len(analysis.items) == 11)
        assert not jpegs.items, "no JPEG while nobody wants one"
        out.set(False)
        wait_for(lambda: not stage.decoding)
    finally:
        stage.close()
    assert {shape for shape, _, _ in analysis.items} == {(180, 320, 3)}
    # 5 fps of 2 s, on the capture-time grid (a quarter slot early at most).
    times = [t for _, t, _ in analysis.items]
    assert times == sorted(times)
    assert min(b - a for a, b in itertools.pairwise(times)) >= 150_000 - FRAME_US


# --- decoding H.264 (sources without pictures) -----------------------------------------


@pytest.fixture(scope="module")
def clip_frames(tmp_path_factory: pytest.TempPathFactory) -> list[CapturedFrame]:
    path = tmp_path_factory.mktemp("jpeg") / "clip.mp4"
    make_h264_file(path, width=960, height=540, fps=30, seconds=3, gop=30)
    return file_frames(path)


def test_decoding_starts_at_a_keyframe_and_stops_when_unwanted(
    jpegs: Jpegs, clip_frames: list[CapturedFrame]
) -> None:
    assert [f.index for f in clip_frames if f.au.keyframe] == [0, 30, 60]
    stage, tap = make_tap(jpegs, decode=True)
    stage.start()
    try:
        for frame in clip_frames[:5]:
            stage.on_frame(frame)  # not wanted: not even queued
        assert not stage._access_units
        tap.set_wanted(True, fps=5, max_width=640)
        for frame in clip_frames[12:45]:  # joins mid-GOP
            stage.on_frame(frame)
        wait_for(lambda: stage.stats.decoded + stage.stats.skipped_to_keyframe == 33)
        assert stage.stats.skipped_to_keyframe == 18, "frames 12..29 wait for the IDR at 30"
        assert stage.stats.decoded == 15
        assert stage.stats.decoders_opened == 1
        assert stage.decoding
        got = jpegs.wait(3)
        assert [t for _, t in got] == [30 * FRAME_US, 35 * FRAME_US, 41 * FRAME_US]

        tap.set_wanted(False)
        wait_for(lambda: not stage.decoding)
        for frame in clip_frames[45:]:
            stage.on_frame(frame)
        assert stage.stats.decoded == 15, "no decoding while unwanted"

        # Wanted again: a new decoder, from the next keyframe on.
        tap.set_wanted(True)
        for frame in clip_frames[45:75]:
            stage.on_frame(frame)
        wait_for(lambda: stage.stats.decoded == 30)
        assert stage.stats.decoders_opened == 2
        assert stage.stats.skipped_to_keyframe == 18 + 15
    finally:
        stage.close()
    assert not stage.decoding
    images = jpegs.images()
    assert {im.size for im in images} == {(640, 360)}
    first, last = (np.asarray(im.convert("L"), dtype=int) for im in (images[0], images[-1]))
    assert np.abs(first - last).mean() > 2


def test_a_decoder_that_falls_behind_restarts_at_a_keyframe(
    jpegs: Jpegs, clip_frames: list[CapturedFrame]
) -> None:
    stage, tap = make_tap(jpegs, decode=True)
    tap.set_wanted(True)
    # The worker is not running: the queue overflows at its bound, and what is left
    # (frames 61..65) cannot be decoded without the keyframe that was dropped.
    for frame in clip_frames[1 : AnalysisStage.MAX_PENDING_ACCESS_UNITS + 6]:
        stage.on_frame(frame)
    assert stage.stats.overflows == 1
    assert len(stage._access_units) == 5
    stage.start()
    try:
        wait_for(lambda: not stage._access_units and stage.stats.skipped_to_keyframe == 5)
    finally:
        stage.close()
    assert stage.stats.decoded == 0

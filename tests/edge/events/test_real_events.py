"""The event pipeline with the real object detector on real video (pedestrians, vtest.avi):
people walking become one "person" event with a snapshot; masked out, they make none.
Skipped, with the command that fixes it, when the model or the video is not set up."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from PIL import Image

from edge.detect import load_detector
from edge.detect.models import ModelMissing
from edge.detect.types import ObjectDetector
from edge.detect.zones import ZoneState
from edge.events.outbox import Outbox
from edge.events.pipeline import DetectSettings, EventPipeline
from edge.sources.base import wall_us
from tests.edge.detect.test_motion import find_vtest

Rgb = np.ndarray[Any, np.dtype[np.uint8]]


@pytest.fixture(scope="module")
def detector() -> ObjectDetector:
    try:
        return load_detector()
    except (ModelMissing, ImportError) as exc:
        pytest.skip(f"no object detector: {exc}")


@pytest.fixture(scope="module")
def video() -> Path:
    path = find_vtest()
    if path is None:
        pytest.skip("vtest.avi is not set up: run scripts/setup-testdata.sh")
    return path


def pictures(path: Path, seconds: float) -> Iterator[tuple[Rgb, int]]:
    """5 analysis pictures per second at 320 px, with media time in µs."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        step = max(1, round(float(stream.average_rate or 5) / 5))
        for i, frame in enumerate(container.decode(stream)):
            when = frame.time or 0.0
            if when > seconds:
                return
            if i % step == 0:
                picture = frame.reformat(width=320, height=240, format="rgb24").to_ndarray()
                rgb: Rgb = np.asarray(picture, dtype=np.uint8)
                rgb.setflags(write=False)
                yield rgb, round(when * 1e6)


class VideoClock:
    """The pipeline's clock follows the video (replayed as fast as the detector allows)."""

    def __init__(self) -> None:
        self.now_us = wall_us()

    def __call__(self) -> int:
        return self.now_us


def make_pipeline(
    outbox: Outbox, detector: ObjectDetector, zones: ZoneState | None = None
) -> tuple[EventPipeline, VideoClock]:
    clock = VideoClock()
    zones = zones or ZoneState("vtest")
    return EventPipeline("vtest", DetectSettings(), zones, outbox, detector, clock=clock), clock


def run(pipeline: EventPipeline, clock: VideoClock, video: Path, seconds: float) -> None:
    t0 = clock.now_us
    pipeline.start()
    try:
        for rgb, media_us in pictures(video, seconds):
            done = pipeline.stats.frames + 1
            clock.now_us = t0 + media_us
            pipeline.offer(rgb, t0 + media_us)
            deadline = time.monotonic() + 30
            while not (pipeline.stats.frames >= done and pipeline.idle):
                assert time.monotonic() < deadline, "the pipeline is stuck"
                time.sleep(0.005)
    finally:
        pipeline.close()


def events(outbox: Outbox) -> list[tuple[dict[str, Any], bytes | None]]:
    out = []
    while (row := outbox.oldest()) is not None:
        out.append((row.body, row.snapshot))
        outbox.delete(row.id)
    return out


def test_pedestrians_make_a_person_event(
    detector: ObjectDetector, video: Path, tmp_path: Path
) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    pipeline, clock = make_pipeline(outbox, detector)
    run(pipeline, clock, video, seconds=12)
    assert pipeline.stats.detections_run >= 8, "about once a second while people walk"
    messages = events(outbox)
    outbox.close()
    person = [(body, jpeg) for body, jpeg in messages if body["label"] == "person"]
    assert person, f"labels seen: {sorted({b['label'] for b, _ in messages})}"
    start, snapshot = person[0]
    assert (start["phase"], start["object"], start["seq"]) == ("start", "person", 0)
    assert start["score"] >= 0.4
    x0, y0, x1, y1 = start["box"]
    assert 0 <= x0 < x1 <= 1
    assert 0 <= y0 < y1 <= 1
    assert (y1 - y0) > (x1 - x0), "a standing person is taller than wide"
    assert snapshot is not None
    assert Image.open(io.BytesIO(snapshot)).size == (320, 240)
    assert person[-1][0]["phase"] == "end", "closed at shutdown"
    assert len({body["event_id"] for body, _ in person}) == 1, "one event while they walk"
    motion = {body["event_id"] for body, _ in messages if body["label"] == "motion"}
    assert len(motion) == 1, "people walk all the time: one motion event, no flapping"
    assert "vehicle" not in {b["label"] for b, _ in messages}, "the parked cars do not move"


def test_a_mask_over_the_whole_scene_hides_everyone(
    detector: ObjectDetector, video: Path, tmp_path: Path
) -> None:
    zones = ZoneState("vtest")
    everything = [[0, 0], [1, 0], [1, 1], [0, 1]]
    assert zones.update({"zones": [{"id": "m", "kind": "mask", "points": everything}]})
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    pipeline, clock = make_pipeline(outbox, detector, zones)
    run(pipeline, clock, video, seconds=6)
    assert not events(outbox), "nothing visible, nothing moves, no event"
    outbox.close()

"""edge.events.pipeline: analysis pictures → masks → motion → fake detector → tracker → outbox."""

from __future__ import annotations

import functools
import io
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from edge.detect.motion import MotionSettings, synthetic_scene
from edge.detect.types import Detection
from edge.detect.zones import ZoneState
from edge.events.message import EventMessage
from edge.events.outbox import Outbox
from edge.events.pipeline import DetectSettings, EventPipeline
from edge.events.tracker import TrackerSettings
from edge.sources.base import wall_us

Rgb = np.ndarray[Any, np.dtype[np.uint8]]
W, H = 320, 240
FRAME_US = 200_000


class BrightThingDetector:
    """Reports a "person" where the picture has bright pixels (the test's rectangle)."""

    def __init__(self) -> None:
        self.inputs: list[Rgb] = []
        self.lock = threading.Lock()

    def detect(self, rgb: Rgb) -> list[Detection]:
        with self.lock:
            self.inputs.append(rgb.copy())
        ys, xs = np.nonzero(rgb[:, :, 0] > 200)
        if not len(xs):
            return []
        box = (xs.min() / W, ys.min() / H, (xs.max() + 1) / W, (ys.max() + 1) / H)
        return [Detection("person", "person", 0.8, box)]


def wait_for(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


def drain(outbox: Outbox) -> list[dict[str, Any]]:
    bodies = []
    while (row := outbox.oldest()) is not None:
        bodies.append({**row.body, "has_snapshot": row.snapshot is not None, "jpeg": row.snapshot})
        outbox.delete(row.id)
    return bodies


class Rig:
    def __init__(self, tmp_path: Path, detector: BrightThingDetector | None) -> None:
        self.zones = ZoneState("cam", tmp_path / "zones.json")
        self.outbox = Outbox(tmp_path / "outbox.sqlite3")
        self.enqueued = 0
        settings = DetectSettings(
            interval_s=1.0,
            motion=MotionSettings(quiet_s=1.0),
            tracker=TrackerSettings(end_after_s=2.0, update_interval_s=1.0),
        )
        self.pipeline = EventPipeline(
            "cam", settings, self.zones, self.outbox, detector, on_enqueued=self._count
        )
        self.scene = synthetic_scene(W, H, seed=5)
        self.t0 = wall_us()
        self.index = 0

    def _count(self) -> None:
        self.enqueued += 1

    def feed(self, rect_x: int | None = None, frames: int = 1, step: int = 8) -> None:
        for _ in range(frames):
            picture = self.scene.copy()
            if rect_x is not None:
                x = rect_x + self.index * step
                picture[80:200, x % (W - 40) : x % (W - 40) + 40] = 250
            picture.setflags(write=False)
            done = self.pipeline.stats.frames + 1
            self.pipeline.offer(picture, self.t0 + self.index * FRAME_US)
            self.index += 1
            wait_for(functools.partial(self.processed, done))

    def processed(self, frames: int) -> bool:
        """The pipeline has looked at ``frames`` pictures and is done with them."""
        return self.pipeline.stats.frames >= frames and self.pipeline.idle


@pytest.fixture
def rig(tmp_path: Path) -> Any:
    detector = BrightThingDetector()
    r = Rig(tmp_path, detector)
    r.pipeline.start()
    yield r, detector
    r.pipeline.close()
    r.outbox.close()


def test_a_person_walking_through_makes_one_event_with_snapshots(rig: Any) -> None:
    r, detector = rig
    r.feed(None, frames=10)
    assert not detector.inputs, "no motion, no detection"
    assert not drain(r.outbox)
    r.feed(rect_x=20, frames=25)  # 5 s of someone walking
    assert 4 <= len(detector.inputs) <= 6, "about once a second while motion lasts"
    assert r.pipeline.motion_active
    health = r.pipeline.health()
    assert health["motion"] is True
    assert health["motion_ms"] > 0
    assert health["detect_ms"] is not None
    assert health["events_active"] == ["motion", "person"]
    r.feed(None, frames=30)  # gone: motion stops after 1 s, the event ends 2 s later
    assert not r.pipeline.motion_active
    calls = len(detector.inputs)
    r.feed(None, frames=5)
    assert len(detector.inputs) == calls, "no detection without motion"
    messages = drain(r.outbox)
    person = [m for m in messages if m["label"] == "person"]
    motion = [m for m in messages if m["label"] == "motion"]
    assert person[0]["phase"] == "start"
    assert person[-1]["phase"] == "end"
    assert [m["seq"] for m in person] == list(range(len(person)))
    assert len({m["event_id"] for m in person}) == 1
    assert person[0]["has_snapshot"]
    assert person[0]["object"] == "person"
    assert motion[0]["phase"] == "start"
    assert motion[-1]["phase"] == "end"
    assert r.enqueued >= 1
    start = Image.open(io.BytesIO(person[0]["jpeg"]))
    assert start.size == (W, H)


def test_masked_areas_are_black_for_the_detector_and_in_snapshots(rig: Any) -> None:
    r, detector = rig
    # Mask the left half: the flickering thing there is neither motion nor a person.
    r.zones.update(
        {"zones": [{"id": "m", "kind": "mask", "points": [[0, 0], [0.5, 0], [0.5, 1], [0, 1]]}]}
    )
    r.feed(None, frames=5)
    for i in range(10):
        picture = r.scene.copy()
        if i % 2:
            picture[20:60, 20:60] = 255  # a flickering lamp, masked
        picture[100:200, 200 + i * 8 : 240 + i * 8] = 250  # someone on the right
        picture.setflags(write=False)
        r.pipeline.offer(picture, r.t0 + r.index * FRAME_US)
        r.index += 1
        wait_for(lambda: r.pipeline.idle)
    assert detector.inputs
    for seen in detector.inputs:
        assert seen[:, : W // 2 - 1].max() == 0, "the detector never sees the masked half"
    person = [m for m in drain(r.outbox) if m["label"] == "person"]
    start = person[0]
    assert start["phase"] == "start"
    pixels = np.asarray(Image.open(io.BytesIO(start["jpeg"])).convert("L"), dtype=int)
    assert pixels[:, : W // 2 - 2].max() < 16, "the snapshot is masked"
    assert start["box"][0] >= 0.6, "the box is the person on the right"


def test_close_ends_open_events_and_a_restart_ends_what_a_crash_left(tmp_path: Path) -> None:
    detector = BrightThingDetector()
    r = Rig(tmp_path, detector)
    r.pipeline.start()
    r.feed(rect_x=0, frames=10)
    r.pipeline.close()
    phases = [(m["label"], m["phase"]) for m in drain(r.outbox)]
    assert ("person", "end") in phases
    assert ("motion", "end") in phases

    # A crash: messages written, the process gone before it could end the event.
    r.outbox.enqueue(
        [
            EventMessage(
                "crashed", 0, "start", "pet", "dog", 0.9, (0.1, 0.1, 0.2, 0.2), (), r.t0, r.t0
            )
        ]
    )
    again = EventPipeline("cam", DetectSettings(), r.zones, r.outbox, None)
    again.start()
    again.close()
    (start, end) = drain(r.outbox)
    assert (start["key"], end["key"], end["phase"]) == ("crashed:0", "crashed:1", "end")
    r.outbox.close()


def test_without_a_detector_motion_events_still_come(tmp_path: Path) -> None:
    r = Rig(tmp_path, None)
    r.pipeline.start()
    try:
        r.feed(None, frames=5)
        r.feed(rect_x=0, frames=10)
        assert r.pipeline.health()["detector"] == "off"
        r.feed(None, frames=20)
    finally:
        r.pipeline.close()
    labels = [(m["label"], m["phase"]) for m in drain(r.outbox)]
    assert labels[0] == ("motion", "start")
    assert labels[-1] == ("motion", "end")
    assert {label for label, _ in labels} == {"motion"}
    r.outbox.close()

"""The edge's event pipeline replayed offline, as fast as it goes, on a clock that
follows the pictures: false object events in a scene with nothing in it, and the CPU
that motion + detection cost per second of 5 fps analysis."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.photos import RgbArray
from edge.detect.types import ObjectDetector
from edge.detect.zones import ZoneState
from edge.events.outbox import Outbox
from edge.events.pipeline import DetectSettings, EventPipeline
from edge.sources.base import wall_us
from scripts.media import empty_yard as yard_picture

FPS = 5.0


@dataclass
class Replay:
    """What one replay produced."""

    media_s: float
    cpu_s: float
    frames: int
    detections_run: int
    events: dict[str, int]  # label → events started
    motion_ms_p50: float | None
    detect_ms_p50: float | None

    @property
    def cpu_percent(self) -> float:
        """CPU of the pipeline as a share of one core, at real-time picture rate."""
        return 100.0 * self.cpu_s / self.media_s


def replay(
    detector: ObjectDetector | None, pictures: Iterable[RgbArray], settings: DetectSettings
) -> Replay:
    """Feeds every picture (at 5 fps media time) through a fresh pipeline and outbox."""
    with tempfile.TemporaryDirectory() as tmp:
        outbox = Outbox(Path(tmp) / "outbox.sqlite3")
        now = [wall_us()]
        pipeline = EventPipeline(
            "bench", settings, ZoneState("bench"), outbox, detector, clock=lambda: now[0]
        )
        step_us = round(1e6 / FPS)
        frames = 0
        cpu0 = time.process_time()
        pipeline.start()
        try:
            for rgb in pictures:
                now[0] += step_us
                pipeline.offer(rgb, now[0])
                frames += 1
                deadline = time.monotonic() + 60
                while not (pipeline.stats.frames >= frames and pipeline.idle):
                    if time.monotonic() > deadline:
                        raise RuntimeError("the event pipeline is stuck")
                    time.sleep(0.001)
        finally:
            pipeline.close()
        cpu = time.process_time() - cpu0
        health = pipeline.health()
        started: dict[str, int] = {}
        while (row := outbox.oldest()) is not None:
            if row.body["phase"] == "start":
                started[row.body["label"]] = started.get(row.body["label"], 0) + 1
            outbox.delete(row.id)
        outbox.close()
    return Replay(
        media_s=frames / FPS,
        cpu_s=cpu,
        frames=frames,
        detections_run=pipeline.stats.detections_run,
        events=started,
        motion_ms_p50=health.get("motion_ms"),
        detect_ms_p50=health.get("detect_ms"),
    )


def empty_yard_pictures(
    minutes: float, width: int = 320, height: int = 240, seed: int = 3
) -> Iterator[RgbArray]:
    """A fixed camera on a yard with nothing in it: sensor noise, clouds passing (slow
    brightness swings of ±15 %), an auto-exposure step every 2 minutes, and a bush whose
    leaves flicker in the wind."""
    rng = np.random.default_rng(seed)
    yard = yard_picture(width, height)
    bush = (
        slice(int(height * 0.55), int(height * 0.8)),
        slice(int(width * 0.05), int(width * 0.2)),
    )
    frames = round(minutes * 60 * FPS)
    for i in range(frames):
        t = i / FPS
        light = 1.0 + 0.15 * np.sin(2 * np.pi * t / 45.0) + 0.05 * np.sin(2 * np.pi * t / 7.0)
        exposure = 1.0 + 0.12 * ((int(t) // 120) % 2)
        picture: np.ndarray[Any, Any] = yard * light * exposure
        picture[bush] += rng.normal(
            0, 12, size=(bush[0].stop - bush[0].start, bush[1].stop - bush[1].start, 1)
        )
        picture += rng.normal(0, 3.0, size=(height, width, 1))
        yield np.clip(picture, 0, 255).astype(np.uint8)


def video_pictures(path: Path, seconds: float, width: int = 320) -> list[RgbArray]:
    """5 fps analysis pictures of a video file, decoded up front (not counted as CPU)."""
    import av

    out: list[RgbArray] = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        step = max(1, round(float(stream.average_rate or FPS) / FPS))
        for i, frame in enumerate(container.decode(stream)):
            if (frame.time or 0.0) > seconds:
                break
            if i % step == 0:
                height = round(frame.height * width / frame.width / 2) * 2
                rgb = frame.reformat(width=width, height=height, format="rgb24").to_ndarray()
                out.append(np.asarray(rgb, dtype=np.uint8))
    return out

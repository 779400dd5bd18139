"""One camera's event pipeline: analysis pictures → masks → motion → objects → tracker → outbox.

Two threads, so neither the camera nor the analysis stage ever waits for a model:

* the motion thread takes the newest analysis picture (a one-slot hand-off: when it is
  busy, older pictures are dropped), blacks out privacy masks, runs motion, feeds the
  tracker, and while motion is active hands the picture to the detector every
  ``interval_s``; it also ends quiet events once a second when no pictures come;
* the detector thread runs the ObjectDetector on the newest picture it was handed and
  feeds the detections to the tracker.

Whatever the tracker says is written to the outbox (durably) before the next picture is
looked at; the delivery task is then woken.
"""

from __future__ import annotations

import collections
import logging
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edge.detect.motion import MotionDetector, MotionResult, MotionSettings
from edge.detect.types import Box, ObjectDetector
from edge.detect.zones import ZoneState
from edge.events.message import EventMessage
from edge.events.outbox import Outbox
from edge.events.tracker import EventTracker, TrackerSettings
from edge.sources.base import wall_us

log = logging.getLogger("edge.events")

RgbArray = np.ndarray[Any, np.dtype[np.uint8]]


@dataclass(frozen=True, slots=True)
class DetectSettings:
    """``[camera.detect]`` of the edge config."""

    enabled: bool = True
    fps: float = 5.0  # analysis pictures per second
    width: int = 320  # analysis picture width (also the event snapshots' width)
    interval_s: float = 1.0  # object detection at most this often while motion is active
    motion: MotionSettings = field(default_factory=MotionSettings)
    tracker: TrackerSettings = field(default_factory=TrackerSettings)
    model: str | None = None  # a model file instead of the detector's default


@dataclass
class PipelineStats:
    """Counters since start and recent timings (the heartbeat reads them)."""

    frames: int = 0  # analysis pictures looked at
    dropped: int = 0  # replaced by a newer one while the motion thread was busy
    detections_run: int = 0
    detect_errors: int = 0
    enqueue_errors: int = 0
    messages: int = 0  # event messages written to the outbox
    motion_ms: collections.deque[float] = field(
        default_factory=lambda: collections.deque(maxlen=100)
    )
    detect_ms: collections.deque[float] = field(
        default_factory=lambda: collections.deque(maxlen=50)
    )


def _median(values: collections.deque[float]) -> float | None:
    return round(statistics.median(values), 2) if values else None


class EventPipeline:
    """Motion, detection and event tracking for one camera."""

    #: Without pictures, quiet events are still ended this often.
    TICK_S = 1.0

    def __init__(
        self,
        camera_id: str,
        settings: DetectSettings,
        zones: ZoneState,
        outbox: Outbox,
        detector: ObjectDetector | None,
        *,
        on_enqueued: Callable[[], None] | None = None,
        on_messages: Callable[[list[EventMessage]], None] | None = None,
        detector_lock: threading.Lock | None = None,
        tracker: EventTracker | None = None,
        clock: Callable[[], int] = wall_us,
    ) -> None:
        self.camera_id = camera_id
        self.settings = settings
        self.zones = zones
        self.outbox = outbox
        self.detector = detector
        self.stats = PipelineStats()
        self.motion = MotionDetector(settings.motion)
        self.tracker = tracker or EventTracker(
            camera_id, settings.tracker, lambda: self.zones.current
        )
        self.motion_active = False
        # Wall-clock µs, the clock of capture times; replaying a file faster or slower than
        # real time needs the file's clock instead.
        self._clock = clock
        self._on_enqueued = on_enqueued or (lambda: None)
        # Whoever else follows the events (the clip cutter), after they are on disk.
        self._on_messages = on_messages or (lambda _messages: None)
        # Cameras sharing one model take turns: a Pi has no spare cores for two at once.
        self._detector_lock = detector_lock or threading.Lock()
        self._tracker_lock = threading.Lock()
        self._cond = threading.Condition()
        self._slot: tuple[RgbArray, int] | None = None
        self._detect_slot: tuple[RgbArray, int, tuple[Box, ...]] | None = None
        self._moving: tuple[Box, ...] = ()  # changed regions of the last moving picture
        self._last_detect_us: int | None = None
        self._lighting_count = 0
        self._lighting_logged_us: int | None = None
        self._detecting = False
        self._analysing = False
        self._closed = False
        self._threads: list[threading.Thread] = []

    # -- the analysis stage's output (its worker thread) ---------------------------------

    def offer(self, rgb: RgbArray, capture_us: int) -> None:
        """The newest analysis picture; returns at once."""
        with self._cond:
            if self._slot is not None:
                self.stats.dropped += 1
            self._slot = (rgb, capture_us)
            self._cond.notify_all()

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """End what a crashed previous run left open, then start the threads."""
        if self._threads:
            return
        self._closed = False
        try:
            orphans = self.outbox.close_orphans(self._clock())
        except Exception:
            log.exception("cannot end the last run's open events camera=%s", self.camera_id)
            orphans = 0
        if orphans:
            self._on_enqueued()
        self._threads = [
            threading.Thread(target=self._motion_loop, daemon=True, name=f"motion-{self.camera_id}")
        ]
        if self.detector is not None:
            self._threads.append(
                threading.Thread(
                    target=self._detect_loop, daemon=True, name=f"detect-{self.camera_id}"
                )
            )
        for thread in self._threads:
            thread.start()

    def close(self, timeout: float = 10.0) -> None:
        """Stop the threads and end every active event (written to the outbox)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout)
        self._threads = []
        with self._tracker_lock:
            self._emit(self.tracker.end_all(self._clock()))

    @property
    def idle(self) -> bool:
        """Nothing waiting or being worked on (tests wait for this between pictures)."""
        with self._cond:
            return (
                self._slot is None
                and self._detect_slot is None
                and not self._detecting
                and not self._analysing
            )

    # -- heartbeat -----------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """Heartbeat fields: motion state, recent timings (median ms), detector."""
        return {
            "motion": self.motion_active,
            "motion_ms": _median(self.stats.motion_ms),
            "detect_ms": _median(self.stats.detect_ms),
            "detector": "off" if self.detector is None else type(self.detector).__name__,
            "events_active": self.tracker.active_labels,
            "analysis_frames": self.stats.frames,
        }

    # -- threads -------------------------------------------------------------------------

    def _emit(self, messages: list[EventMessage]) -> None:
        """Write ``messages`` to the outbox (the caller holds the tracker lock)."""
        if not messages:
            return
        try:
            self.outbox.enqueue(messages)
        except Exception:
            # The disk is full or broken: say so loudly, keep the camera going.
            self.stats.enqueue_errors += 1
            log.exception(
                "event messages lost camera=%s count=%d keys=%s",
                self.camera_id,
                len(messages),
                ",".join(m.key for m in messages),
            )
            return
        self.stats.messages += len(messages)
        self._on_enqueued()
        try:
            self._on_messages(messages)
        except Exception:
            log.exception("event follower failed camera=%s", self.camera_id)

    def _motion_loop(self) -> None:
        while True:
            with self._cond:
                if not self._closed and self._slot is None:
                    self._cond.wait(self.TICK_S)
                if self._closed:
                    return
                slot, self._slot = self._slot, None
                self._analysing = slot is not None
            try:
                if slot is None:
                    self._tick()
                else:
                    self._analyse(*slot)
            except Exception:
                log.exception("motion analysis failed camera=%s", self.camera_id)
            finally:
                with self._cond:
                    self._analysing = False

    def _tick(self) -> None:
        now = self._clock()
        ended = self.motion.tick(now)
        if ended:
            self.motion_active = False
        with self._tracker_lock:
            if ended:
                self._emit(self.tracker.on_motion(MotionResult(False, False, 0.0), _BLANK, now))
            else:
                self._emit(self.tracker.tick(now))

    def _analyse(self, rgb: RgbArray, capture_us: int) -> None:
        zones = self.zones.current
        excluded = zones.mask_raster(rgb.shape[1], rgb.shape[0])
        masked = zones.apply_masks(rgb)
        started = time.perf_counter()
        result = self.motion.update(rgb, capture_us, excluded)
        self.stats.motion_ms.append((time.perf_counter() - started) * 1000)
        self.stats.frames += 1
        if result.lighting:
            self._log_lighting(capture_us)
        if result.started or result.stopped:
            log.info(
                "motion %s camera=%s share=%.3f",
                "started" if result.started else "stopped",
                self.camera_id,
                result.fraction,
            )
        self.motion_active = result.active
        if result.moving:
            self._moving = result.boxes
        with self._tracker_lock:
            self._emit(self.tracker.on_motion(result, masked, capture_us))
        if self.detector is None or not result.active:
            return
        last = self._last_detect_us
        if last is None or capture_us - last >= self.settings.interval_s * 1e6 or capture_us < last:
            self._last_detect_us = capture_us
            with self._cond:
                self._detect_slot = (masked, capture_us, self._moving)
                self._cond.notify_all()

    #: Lighting changes are logged at most this often (a flickering scene is one line).
    LIGHTING_LOG_S = 300.0

    def _log_lighting(self, capture_us: int) -> None:
        self._lighting_count += 1
        last = self._lighting_logged_us
        if last is None or capture_us - last >= self.LIGHTING_LOG_S * 1e6:
            self._lighting_logged_us = capture_us
            log.info(
                "lighting change camera=%s count=%d action='motion background restarted; "
                "if this repeats, the picture flickers or the exposure hunts'",
                self.camera_id,
                self._lighting_count,
            )

    def _detect_loop(self) -> None:
        detector = self.detector
        assert detector is not None
        while True:
            with self._cond:
                while not self._closed and self._detect_slot is None:
                    self._cond.wait()
                if self._closed:
                    return
                slot, self._detect_slot = self._detect_slot, None
                self._detecting = slot is not None
            if slot is None:
                continue
            try:
                self._detect(detector, *slot)
            finally:
                with self._cond:
                    self._detecting = False

    def _detect(
        self, detector: ObjectDetector, rgb: RgbArray, capture_us: int, moving: tuple[Box, ...]
    ) -> None:
        try:
            with self._detector_lock:
                started = time.perf_counter()
                detections = detector.detect(rgb)
                self.stats.detect_ms.append((time.perf_counter() - started) * 1000)
            self.stats.detections_run += 1
        except Exception:
            self.stats.detect_errors += 1
            if self.stats.detect_errors == 1 or self.stats.detect_errors % 100 == 0:
                log.exception(
                    "object detection failed camera=%s errors=%d",
                    self.camera_id,
                    self.stats.detect_errors,
                )
            return
        with self._tracker_lock:
            self._emit(self.tracker.on_detections(detections, rgb, capture_us, moving))


#: A stand-in picture for tracker calls without one (no message there needs a snapshot).
_BLANK: RgbArray = np.zeros((2, 2, 3), np.uint8)

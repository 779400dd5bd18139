"""The analysis stage: one camera's uncompressed pictures, for whoever needs them now.

Consumers ("outputs") ask for RGB pictures at their own rate and width: the JPEG maker
while the server wants JPEGs (MJPEG, snapshots; e.g. 5 fps, ≤ 640 px), the event
pipeline while detection is enabled (motion and objects; e.g. 5 fps, 320 px). The stage
obtains each picture once, from one of two places:

* a source that has pictures for free (``PictureSource``: the synthetic renderer, a Pi
  camera's lores stream) calls ``wants_picture`` / ``on_picture``;
* every other source (RTSP, file, rpicam, V4L2) only has H.264, so ``on_frame`` feeds
  its access units to a PyAV decoder, starting at the next keyframe. The decoder exists
  only while some output is active: decoding 1080p30 in software is most of a Pi's CPU.

While no output is active the source thread pays one boolean check per frame. While one
is, the source thread only appends to a queue or fills a one-slot hand-off (a newer
picture replaces a waiting one), so a slow consumer drops pictures and never holds up
the camera. A worker thread decodes, lets through at most each output's rate, scales
to each output's width (once per distinct size) and calls the outputs in turn.

Delivered arrays are read-only and shared between outputs of the same size; an output
that needs to draw on one copies it first.
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import av
import numpy as np

from edge.sources.base import CapturedFrame, Picture

log = logging.getLogger("edge.analysis")

RgbArray = np.ndarray[Any, np.dtype[np.uint8]]
#: Receives an RGB picture (h, w, 3, read-only) and its capture time (µs since the epoch).
PictureCallback = Callable[[RgbArray, int], None]

MIN_FPS, MAX_FPS = 0.1, 30.0
MIN_WIDTH, MAX_WIDTH = 64, 3840


def scaled_size(width: int, height: int, max_width: int) -> tuple[int, int]:
    """``width``×``height`` shrunk to at most ``max_width`` wide, same aspect, even sizes."""
    if width <= max_width:
        return width, height
    w = max(2, max_width // 2 * 2)
    h = max(2, round(height * w / width / 2) * 2)
    return w, h


class FrameThrottle:
    """Lets through at most ``fps`` pictures per second of capture time, on a fixed grid.

    The grid (not "one interval after the last one") keeps the average rate exact when
    the source rate is not a multiple of ``fps``; a quarter interval of slack absorbs
    capture-time jitter, so a source running at exactly ``fps`` loses no picture.
    """

    def __init__(self, fps: float) -> None:
        self.interval_us = 1e6 / fps
        self.slack_us = self.interval_us / 4
        self._next_us: float | None = None

    def due(self, capture_us: int) -> bool:
        """Would a picture taken at ``capture_us`` be let through?"""
        return self._next_us is None or capture_us >= self._next_us - self.slack_us

    def take(self, capture_us: int) -> bool:
        """Let a picture through if it is due, and schedule the next one."""
        if not self.due(capture_us):
            return False
        if self._next_us is None or capture_us > self._next_us + self.slack_us:
            self._next_us = capture_us + self.interval_us  # late (or first): re-anchor
        else:
            self._next_us += self.interval_us
        return True


@dataclass
class StageStats:
    """Counters since start (read by tests and the heartbeat)."""

    taken: int = 0  # pictures let through for at least one output
    dropped: int = 0  # taken, but replaced by a newer picture before the worker got to it
    decoded: int = 0  # access units fed to the decoder
    decoders_opened: int = 0
    skipped_to_keyframe: int = 0  # access units dropped because the decoder needs an IDR
    overflows: int = 0  # decoder queue full: dropped, restarted at the next keyframe
    errors: int = 0


@dataclass
class OutputStats:
    """Per-output counters."""

    taken: int = 0  # pictures the throttle let through for this output
    delivered: int = 0  # handed to the callback
    errors: int = 0  # the callback raised


class PictureOutput:
    """One consumer of a stage's pictures: on or off, at its own rate and width."""

    def __init__(
        self,
        stage: AnalysisStage,
        name: str,
        deliver: PictureCallback,
        *,
        fps: float,
        max_width: int,
    ) -> None:
        self.stage = stage
        self.name = name
        self.stats = OutputStats()
        self._deliver = deliver
        self._active = False
        self.fps = _clamp_fps(fps)
        self.max_width = _clamp_width(max_width)
        self._throttle = FrameThrottle(self.fps)

    @property
    def active(self) -> bool:
        """Whether this output gets pictures."""
        return self._active

    def set(self, active: bool, fps: float | None = None, max_width: int | None = None) -> bool:
        """Switch on or off and/or change rate and width; True when ``active`` changed."""
        return self.stage._configure(self, active, fps, max_width)

    def deliver(self, rgb: RgbArray, capture_us: int) -> None:
        """Hand a picture to the callback (worker thread); errors are counted and logged."""
        try:
            self._deliver(rgb, capture_us)
            self.stats.delivered += 1
        except Exception:
            self.stats.errors += 1
            if self.stats.errors == 1 or self.stats.errors % 100 == 0:
                log.exception(
                    "picture output failed camera=%s output=%s errors=%d",
                    self.stage.name,
                    self.name,
                    self.stats.errors,
                )


def _clamp_fps(fps: float) -> float:
    return min(MAX_FPS, max(MIN_FPS, float(fps)))


def _clamp_width(width: int) -> int:
    return min(MAX_WIDTH, max(MIN_WIDTH, int(width)))


class AnalysisStage:
    """One camera's picture supply; idle until one of its outputs is active."""

    #: Access units queued for the decoder before it is declared behind (2 s at 30 fps).
    MAX_PENDING_ACCESS_UNITS = 60

    def __init__(self, name: str, *, decode: bool) -> None:
        self.name = name
        self.decode = decode
        self.stats = StageStats()
        self._outputs: list[PictureOutput] = []
        self._wanted = False
        self._cond = threading.Condition()
        self._slot: tuple[Picture, list[PictureOutput]] | None = None
        self._access_units: collections.deque[CapturedFrame] = collections.deque()
        self._resync = False
        self._decoder: Any = None
        self._closed = False
        self._thread: threading.Thread | None = None

    # -- configuration (any thread) ------------------------------------------------------

    def add_output(
        self, name: str, deliver: PictureCallback, *, fps: float, max_width: int
    ) -> PictureOutput:
        """A new (inactive) output; switch it on with ``output.set(True)``."""
        output = PictureOutput(self, name, deliver, fps=fps, max_width=max_width)
        with self._cond:
            self._outputs.append(output)
        return output

    @property
    def wanted(self) -> bool:
        """Whether any output is active."""
        return self._wanted

    @property
    def decoding(self) -> bool:
        """Whether an H.264 decoder is open right now."""
        return self._decoder is not None

    def _configure(
        self, output: PictureOutput, active: bool, fps: float | None, max_width: int | None
    ) -> bool:
        with self._cond:
            if fps is not None:
                fps = _clamp_fps(fps)
                if fps != output.fps:
                    output.fps = fps
                    output._throttle = FrameThrottle(fps)
            if max_width is not None:
                output.max_width = _clamp_width(max_width)
            if active == output._active:
                return False
            output._active = active
            output._throttle = FrameThrottle(output.fps)
            self._wanted = any(o._active for o in self._outputs)
            if not self._wanted:
                self._slot = None
                self._access_units.clear()
            self._cond.notify()
        return True

    def start(self) -> None:
        """Start the worker thread (idle until an output is active)."""
        if self._thread is None:
            self._closed = False
            self._thread = threading.Thread(
                target=self._work, daemon=True, name=f"analysis-{self.name}"
            )
            self._thread.start()

    def close(self, timeout: float = 5.0) -> None:
        """Stop the worker thread and drop the decoder."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    # -- source thread -------------------------------------------------------------------

    def on_frame(self, frame: CapturedFrame) -> None:
        """An access unit from the source (used only when decoding)."""
        if not self._wanted or not self.decode:
            return
        with self._cond:
            if not self._wanted:
                return
            if len(self._access_units) >= self.MAX_PENDING_ACCESS_UNITS:
                # The decoder cannot keep up: start again at the next keyframe.
                self._access_units.clear()
                self._resync = True
                self.stats.overflows += 1
            self._access_units.append(frame)
            self._cond.notify()

    def wants_picture(self, capture_us: int) -> bool:
        """For picture sources: would a picture taken at ``capture_us`` be used?"""
        return self._wanted and any(
            o._active and o._throttle.due(capture_us) for o in self._outputs
        )

    def on_picture(self, picture: Picture) -> None:
        """A raw picture from the source; returns at once."""
        if not self._wanted:
            return
        with self._cond:
            takers = self._take(picture.capture_us)
            if not takers:
                return
            if self._slot is not None:
                # The worker is behind: the newer picture serves the older one's outputs too.
                self.stats.dropped += 1
                takers += [o for o in self._slot[1] if o not in takers]
            self._slot = (picture, takers)
            self._cond.notify()

    def _take(self, capture_us: int) -> list[PictureOutput]:
        """Outputs whose throttle lets a picture at ``capture_us`` through (holds the lock)."""
        takers = [o for o in self._outputs if o._active and o._throttle.take(capture_us)]
        if takers:
            self.stats.taken += 1
            for output in takers:
                output.stats.taken += 1
        return takers

    # -- worker thread -------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            with self._cond:
                while not (
                    self._closed
                    or self._slot is not None
                    or self._access_units
                    or (self._decoder is not None and not self._wanted)
                ):
                    self._cond.wait()
                if self._closed:
                    break
                slot, self._slot = self._slot, None
                units = list(self._access_units)
                self._access_units.clear()
                resync, self._resync = self._resync, False
                wanted = self._wanted
            if not wanted or resync:
                self._drop_decoder("not wanted" if not wanted else "fell behind")
                if not wanted:
                    continue
            try:
                if slot is not None:
                    picture, takers = slot
                    frame = av.VideoFrame.from_ndarray(picture.data, format=picture.format)
                    self._deliver(frame, takers, picture.capture_us)
                if units:
                    self._decode(units)
            except Exception:
                self.stats.errors += 1
                if self.stats.errors == 1 or self.stats.errors % 100 == 0:
                    log.exception(
                        "analysis failed camera=%s errors=%d", self.name, self.stats.errors
                    )
        self._drop_decoder("closed")

    def _drop_decoder(self, why: str) -> None:
        if self._decoder is not None:
            self._decoder = None
            log.info("h264 decoder closed camera=%s why=%s", self.name, why)

    def _open_decoder(self) -> Any:
        decoder = av.CodecContext.create("h264", "r")
        # Output each picture as soon as its access unit is in (cameras send no B-frames).
        decoder.flags = int(decoder.flags | av.codec.context.Flags.low_delay)
        self.stats.decoders_opened += 1
        log.info("h264 decoder opened camera=%s", self.name)
        return decoder

    def _decode(self, units: list[CapturedFrame]) -> None:
        for frame in units:
            if not self._wanted:
                return
            if self._decoder is None:
                if not frame.au.keyframe:
                    self.stats.skipped_to_keyframe += 1
                    continue
                self._decoder = self._open_decoder()
            packet = av.Packet(frame.au.data)
            packet.pts = frame.capture_us  # comes back on the decoded picture
            try:
                pictures = self._decoder.decode(packet)
            except av.error.FFmpegError as exc:
                # A damaged access unit: the references are gone, restart at a keyframe.
                self.stats.errors += 1
                log.warning("h264 decode failed camera=%s error=%s", self.name, exc)
                self._decoder = None
                continue
            self.stats.decoded += 1
            for decoded in pictures:
                capture_us = frame.capture_us if decoded.pts is None else int(decoded.pts)
                with self._cond:
                    takers = self._take(capture_us)
                if takers:
                    self._deliver(decoded, takers, capture_us)

    def _deliver(self, frame: av.VideoFrame, takers: list[PictureOutput], capture_us: int) -> None:
        """Scale ``frame`` once per distinct output size and hand it to each output."""
        scaled: dict[tuple[int, int], RgbArray] = {}
        for output in takers:
            if not output._active:
                continue  # switched off while the picture waited
            size = scaled_size(frame.width, frame.height, output.max_width)
            rgb = scaled.get(size)
            if rgb is None:
                rgb = np.asarray(
                    frame.reformat(
                        width=size[0], height=size[1], format="rgb24", interpolation="AREA"
                    ).to_ndarray(),
                    dtype=np.uint8,
                )
                rgb.setflags(write=False)
                scaled[size] = rgb
            output.deliver(rgb, capture_us)

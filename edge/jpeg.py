"""JPEGs of a camera's pictures, made only while the server wants them (MJPEG, snapshots).

Pictures come from one of two places:

* a source that has them for free (``PictureSource``: the synthetic renderer, a Pi
  camera's lores stream) calls ``wants_picture`` / ``on_picture``;
* every other source (RTSP, file, rpicam, V4L2) only has H.264, so ``on_frame`` feeds
  its access units to a PyAV decoder, starting at the next keyframe. The decoder exists
  only while JPEGs are wanted: decoding 1080p30 in software is most of a Pi's CPU.

While nobody wants JPEGs the source thread pays one boolean check per frame. While
somebody does, the source thread only appends to a queue; a worker thread decodes,
throttles to the requested rate, scales to at most ``max_width`` (keeping the aspect
ratio), runs the picture filter and encodes. Pictures go through a one-slot hand-off
(a newer one replaces a waiting one), so a slow encoder drops pictures instead of
holding up the camera.
"""

from __future__ import annotations

import collections
import io
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import av
import numpy as np
from PIL import Image

from edge.sources.base import CapturedFrame, Picture

log = logging.getLogger("edge.jpeg")

RgbArray = np.ndarray[Any, np.dtype[np.uint8]]
#: Applied to every RGB picture (shape (h, w, 3)) right before JPEG encoding, e.g. to
#: black out privacy masks; returns the picture to encode (may be the same array).
PictureFilter = Callable[[RgbArray], RgbArray]
#: Receives each JPEG and the capture time (µs since the epoch) of its picture.
JpegOutput = Callable[[bytes, int], None]

DEFAULT_FPS = 5.0
DEFAULT_MAX_WIDTH = 640
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
class JpegStats:
    """Counters since start (read by tests and the heartbeat)."""

    taken: int = 0  # pictures let through by the throttle
    encoded: int = 0  # JPEGs handed to the output
    dropped: int = 0  # taken, but replaced by a newer picture before the worker got to it
    decoded: int = 0  # access units fed to the decoder
    decoders_opened: int = 0
    skipped_to_keyframe: int = 0  # access units dropped because the decoder needs an IDR
    overflows: int = 0  # decoder queue full: dropped, restarted at the next keyframe
    errors: int = 0


class JpegTap:
    """One camera's JPEG maker: idle until ``set_wanted(True)``, then ``fps`` JPEGs/s."""

    #: Access units queued for the decoder before it is declared behind (2 s at 30 fps).
    MAX_PENDING_ACCESS_UNITS = 60

    def __init__(
        self,
        name: str,
        output: JpegOutput,
        *,
        decode: bool,
        quality: int = 75,
        picture_filter: PictureFilter | None = None,
    ) -> None:
        self.name = name
        self.decode = decode
        self.quality = quality
        self.picture_filter = picture_filter
        self.stats = JpegStats()
        self._output = output
        self._wanted = False
        self.fps = DEFAULT_FPS
        self.max_width = DEFAULT_MAX_WIDTH
        self._throttle = FrameThrottle(self.fps)
        self._cond = threading.Condition()
        self._slot: Picture | None = None
        self._access_units: collections.deque[CapturedFrame] = collections.deque()
        self._resync = False
        self._decoder: Any = None
        self._closed = False
        self._thread: threading.Thread | None = None

    # -- control (any thread) ------------------------------------------------------------

    @property
    def wanted(self) -> bool:
        """Whether JPEGs are being made."""
        return self._wanted

    @property
    def decoding(self) -> bool:
        """Whether an H.264 decoder is open right now."""
        return self._decoder is not None

    def set_wanted(
        self, want: bool, fps: float | None = None, max_width: int | None = None
    ) -> None:
        """Start or stop making JPEGs, at ``fps`` and at most ``max_width`` pixels wide."""
        with self._cond:
            if fps is not None:
                fps = min(MAX_FPS, max(MIN_FPS, float(fps)))
                if fps != self.fps:
                    self.fps = fps
                    self._throttle = FrameThrottle(fps)
            if max_width is not None:
                self.max_width = min(MAX_WIDTH, max(MIN_WIDTH, int(max_width)))
            if want == self._wanted:
                return
            self._wanted = want
            self._throttle = FrameThrottle(self.fps)
            if not want:
                self._slot = None
                self._access_units.clear()
            self._cond.notify()
        log.info(
            "jpeg %s camera=%s fps=%g max_width=%d source=%s",
            "wanted" if want else "not wanted",
            self.name,
            self.fps,
            self.max_width,
            "decoder" if self.decode else "pictures",
        )

    def start(self) -> None:
        """Start the worker thread (idle until JPEGs are wanted)."""
        if self._thread is None:
            self._closed = False
            self._thread = threading.Thread(
                target=self._work, daemon=True, name=f"jpeg-{self.name}"
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
        return self._wanted and self._throttle.due(capture_us)

    def on_picture(self, picture: Picture) -> None:
        """A raw picture from the source; returns at once."""
        if not self._wanted:
            return
        with self._cond:
            if not self._wanted or not self._throttle.take(picture.capture_us):
                return
            self.stats.taken += 1
            if self._slot is not None:
                self.stats.dropped += 1
            self._slot = picture
            self._cond.notify()

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
                picture, self._slot = self._slot, None
                units = list(self._access_units)
                self._access_units.clear()
                resync, self._resync = self._resync, False
                wanted = self._wanted
            if not wanted or resync:
                self._drop_decoder("not wanted" if not wanted else "fell behind")
                if not wanted:
                    continue
            try:
                if picture is not None:
                    self._encode_picture(picture)
                if units:
                    self._decode(units)
            except Exception:
                self.stats.errors += 1
                if self.stats.errors == 1 or self.stats.errors % 100 == 0:
                    log.exception("jpeg failed camera=%s errors=%d", self.name, self.stats.errors)
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
                    take = self._throttle.take(capture_us)
                if take:
                    self.stats.taken += 1
                    self._encode(decoded, capture_us)

    def _encode_picture(self, picture: Picture) -> None:
        frame = av.VideoFrame.from_ndarray(picture.data, format=picture.format)
        self._encode(frame, picture.capture_us)

    def _encode(self, frame: av.VideoFrame, capture_us: int) -> None:
        width, height = scaled_size(frame.width, frame.height, self.max_width)
        rgb: RgbArray = np.asarray(
            frame.reformat(
                width=width, height=height, format="rgb24", interpolation="AREA"
            ).to_ndarray(),
            dtype=np.uint8,
        )
        if self.picture_filter is not None:
            rgb = self.picture_filter(rgb)
        out = io.BytesIO()
        Image.fromarray(rgb).save(out, format="JPEG", quality=self.quality)
        self.stats.encoded += 1
        self._output(out.getvalue(), capture_us)

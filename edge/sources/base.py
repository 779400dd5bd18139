"""The interface every camera source implements, and the small helpers they share.

A source runs in its own thread (camera APIs, pipes and demuxers block) and hands each
complete H.264 access unit to a sink together with the wall-clock time the picture was
taken. The sink must be cheap: the publisher copies the bytes into LiveKit and returns.

Some sources also have the raw picture for free (the synthetic source renders it, a Pi
camera's ISP makes a small "lores" copy): those implement `PictureSource` and hand a
`Picture` to a `PictureSink` when it asks for one, so analysis (MJPEG, motion) needs no
decoder. Every other source leaves the sink to decode the access units itself.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from edge.h264 import AccessUnit


class SourceError(RuntimeError):
    """A source failed; the camera runner logs it and restarts the source after a backoff."""


class FatalSourceError(SourceError):
    """A source can never work as configured (wrong codec, missing program): no retry loop
    hammering it, the runner retries slowly and the message tells the operator the fix."""


@dataclass(frozen=True, slots=True)
class EncoderSettings:
    """What livecam asks of an encoder it drives (synthetic, rpicam-vid, picamera2)."""

    width: int = 1280
    height: int = 720
    fps: int = 30
    bitrate_kbps: int = 2500
    gop_s: float = 1.0

    def __post_init__(self) -> None:
        # H.264 4:2:0 needs even sizes; hardware encoders refuse anything smaller than 64.
        if self.width % 2 or self.height % 2 or self.width < 64 or self.height < 64:
            raise ValueError(f"size must be even and ≥ 64×64, got {self.width}×{self.height}")
        if not 1 <= self.fps <= 120:
            raise ValueError(f"fps must be 1..120, got {self.fps}")
        if not 50 <= self.bitrate_kbps <= 50_000:
            raise ValueError(f"bitrate_kbps must be 50..50000, got {self.bitrate_kbps}")
        if not 0.1 <= self.gop_s <= 10:
            raise ValueError(f"gop_s must be 0.1..10 seconds, got {self.gop_s}")

    @property
    def gop(self) -> int:
        """Frames from one IDR to the next: bounds a new viewer's wait when no IDR can be forced."""
        return max(1, round(self.gop_s * self.fps))


@dataclass(frozen=True, slots=True)
class CapturedFrame:
    """One access unit as it left the camera."""

    au: AccessUnit
    capture_us: int  # wall clock, microseconds since the epoch, when the picture was taken
    index: int  # per-source frame counter, from 0


FrameSink = Callable[[CapturedFrame], None]

PictureFormat = Literal["yuv420p", "rgb24"]


@dataclass(frozen=True, slots=True)
class Picture:
    """One uncompressed picture for analysis, owned by whoever receives it.

    ``yuv420p``: planar I420 in one array of shape (height * 3 // 2, width) — the Y plane,
    then U and V (each quarter size) laid out row after row, as PyAV and libcamera use it.
    ``rgb24``: shape (height, width, 3).
    """

    data: np.ndarray[Any, np.dtype[np.uint8]]
    width: int
    height: int
    capture_us: int  # wall clock, µs since the epoch, like CapturedFrame.capture_us
    format: PictureFormat = "yuv420p"

    def __post_init__(self) -> None:
        expected = (
            (self.height * 3 // 2, self.width)
            if self.format == "yuv420p"
            else (self.height, self.width, 3)
        )
        if self.data.shape != expected or self.data.dtype != np.uint8:
            raise ValueError(
                f"{self.format} picture of {self.width}x{self.height} must be a uint8 array "
                f"of shape {expected}, got {self.data.dtype} {self.data.shape}"
            )


class PictureSink(Protocol):
    """Takes raw pictures from a source; asked first, so unwanted pictures cost nothing."""

    def wants_picture(self, capture_us: int) -> bool:
        """Cheap (called per frame on the source thread): would a picture taken at
        ``capture_us`` be used? Sources skip making (copying) the picture when not."""
        ...

    def on_picture(self, picture: Picture) -> None:
        """Take a picture; must return at once (the source thread is waiting)."""
        ...


@runtime_checkable
class PictureSource(Protocol):
    """A source that can hand out its raw pictures without decoding anything."""

    def set_picture_sink(self, sink: PictureSink | None) -> None:
        """Send pictures to ``sink`` from now on (None: stop)."""
        ...


class Source(Protocol):
    """A camera: yields H.264 access units, never re-encoded by livecam."""

    kind: str
    #: True when request_keyframe() makes the next frame an IDR (encoder we control).
    can_force_keyframe: bool

    def run(self, sink: FrameSink, stop: threading.Event) -> None:
        """Produce frames into ``sink`` until ``stop`` is set; raise SourceError on failure."""
        ...

    def request_keyframe(self) -> None:
        """Ask for an IDR as soon as possible (a new viewer or packet loss); may be a no-op."""
        ...


def wall_us() -> int:
    """Wall-clock microseconds since the epoch (the frame metadata clock)."""
    return time.time_ns() // 1000


class Pacer:
    """Releases frames in real time from media timestamps, like `ffmpeg -re`.

    Files have no clock of their own; without pacing the publisher would push a whole
    file in a second. Sleeping on ``stop`` keeps shutdown immediate.
    """

    def __init__(self, stop: threading.Event) -> None:
        self._stop = stop
        self._origin: float | None = None

    def wait_until(self, media_s: float) -> bool:
        """Block until ``media_s`` seconds after the first call; False if stopped."""
        now = time.monotonic()
        if self._origin is None:
            self._origin = now - media_s
        delay = self._origin + media_s - now
        if delay < -1.0:
            # Far behind (the process was starved): re-anchor instead of bursting frames.
            self._origin = now - media_s
            delay = 0.0
        if delay > 0:
            return not self._stop.wait(delay)
        return not self._stop.is_set()

    def restart(self) -> None:
        """Start a new timeline (a looped file starts again at media time 0)."""
        self._origin = None


class SensorClock:
    """Maps a camera's own timestamps (µs, arbitrary origin) to wall-clock capture time.

    The offset is the smallest (arrival − sensor time) seen so far: the frame that reached
    us fastest bounds the pipeline delay from below, so capture times are never later
    than the truth by more than that fastest frame's encode time, and they do not drift
    when one frame is delayed.
    """

    def __init__(self) -> None:
        self._offset: int | None = None

    def capture_us(self, sensor_us: int, arrival_us: int | None = None) -> int:
        """The wall-clock capture time of a frame stamped ``sensor_us`` by the camera."""
        arrival = wall_us() if arrival_us is None else arrival_us
        offset = arrival - sensor_us
        if self._offset is None or offset < self._offset:
            self._offset = offset
        return sensor_us + self._offset

"""Access units into a fragmented MP4, codec copy: the camera's own bytes, never re-encoded.

PyAV's MP4 muxer (FFmpeg's movenc) does the work: ``frag_keyframe+empty_moov+
default_base_moof`` writes the header (ftyp, an empty moov with the avcC) up front and
then one fragment (moof + mdat) per GOP, each complete on its own, so a file cut anywhere
plays up to its last whole fragment. The muxer converts the Annex-B access units to
length-prefixed samples; the SPS/PPS for the avcC come from the first keyframe.

Timestamps are the frames' capture times (wall clock µs) on a 90 kHz time base, from 0
at the first frame, forced to increase. Each frame is held until the next one arrives,
so its duration is exact and a segment ends where the next one starts.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fractions
import logging
from typing import Any

import av

from edge.h264 import SpsInfo
from edge.record.files import SyncedFile
from edge.sources.base import CapturedFrame

log = logging.getLogger("edge.record")

TIME_BASE = fractions.Fraction(1, 90_000)
#: Fragmented MP4, one fragment per GOP, every fragment carrying its own start time.
FRAGMENTED = {
    "movflags": "frag_keyframe+empty_moov+default_base_moof",
    # Hand each fragment to the file as soon as the muxer makes it (not when its 32 KiB
    # I/O buffer happens to fill), so the fsync policy covers whole fragments.
    "flush_packets": "1",
}
DEFAULT_FRAME_US = 33_333  # a frame's duration when nothing better is known (30 fps)


def _ticks(us: int) -> int:
    return (us * 9 + 50) // 100  # µs → 90 kHz, rounded


class Fmp4Writer:
    """One fragmented MP4 file being written; starts with a keyframe.

    Not thread-safe: one worker thread owns it. Errors from the muxer or the file are
    raised from ``write``/``close``; ``file.error`` tells a full disk from the rest.
    """

    def __init__(self, file: SyncedFile, first: CapturedFrame) -> None:
        if not first.au.keyframe:
            raise ValueError("a fragmented MP4 must start with a keyframe")
        self.file = file
        self.sps: SpsInfo = first.au.sps
        self.width = first.au.width
        self.height = first.au.height
        self.first_us = first.capture_us
        self.last_us = first.capture_us  # capture time (forced increasing) of the newest frame
        self.frames = 0  # frames handed to the muxer
        self.fragments = 0  # fragments written to the file
        self.frames_flushed = 0  # frames inside those fragments
        self._frame_us = DEFAULT_FRAME_US
        if first.au.sps.fps:
            self._frame_us = max(1000, round(1e6 / first.au.sps.fps))
        self._held: tuple[CapturedFrame, int] | None = None  # (frame, pts) waiting for its end
        self._container: Any = av.open(file, "w", format="mp4", options=dict(FRAGMENTED))
        when = dt.datetime.fromtimestamp(first.capture_us / 1e6, tz=dt.UTC)
        self._container.metadata["creation_time"] = when.isoformat()
        self._stream = self._container.add_mux_stream(
            "h264", width=first.au.width, height=first.au.height
        )
        self._stream.time_base = TIME_BASE
        self._closed = False
        self.write(first)

    @property
    def end_us(self) -> int:
        """Where the file's media ends: the newest frame's capture time plus its duration."""
        return self.last_us + self._frame_us

    @property
    def frame_us(self) -> int:
        """The newest frame interval (the duration given to the last frame)."""
        return self._frame_us

    @property
    def bytes(self) -> int:
        """Bytes in the file so far."""
        return self.file.written

    def write(self, frame: CapturedFrame) -> None:
        """Add the next access unit (in decode order); writes the previous one. An empty
        access unit is skipped (the muxer would take it for end of stream)."""
        if self._closed:  # PyAV would crash muxing into a closed container
            raise ValueError("write after close")
        if not frame.au.data:
            return
        t = frame.capture_us
        if self._held is not None:
            if t <= self.last_us:  # the clock stepped back or stood still
                t = self.last_us + self._frame_us
            else:
                self._frame_us = t - self.last_us
            pts = _ticks(t - self.first_us)
            held, held_pts = self._held
            self._mux(held, held_pts, pts - held_pts)
        else:
            pts = 0
        self.last_us = t
        self._held = (frame, pts)
        self.frames += 1

    def _mux(self, frame: CapturedFrame, pts: int, duration: int) -> None:
        packet = av.Packet(frame.au.data)
        packet.stream = self._stream
        packet.time_base = TIME_BASE
        packet.pts = packet.dts = pts
        packet.duration = max(1, duration)
        packet.is_keyframe = frame.au.keyframe
        before = self.file.written
        self._container.mux(packet)
        if frame.au.keyframe and pts > 0 and self.file.written != before:
            # The muxer wrote the GOP that this keyframe ended.
            self.fragments += 1
            self.frames_flushed = self.frames - 1
        if self.file.sync_due():
            self.file.sync()

    def close(self, next_us: int | None = None) -> None:
        """Write the last frame and the trailer, fsync and close the file. ``next_us``:
        capture time of the frame that follows (the next segment's first), where the last
        frame ends; otherwise it lasts as long as the one before it."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._held is not None:
                held, pts = self._held
                self._held = None
                if next_us is not None and 0 < next_us - self.last_us <= 10 * self._frame_us:
                    self._frame_us = next_us - self.last_us
                end = _ticks(self.last_us + self._frame_us - self.first_us)
                self._mux(held, pts, end - pts)
            self._container.close()
            self.fragments += 1
            self.frames_flushed = self.frames
            self.file.sync()
        finally:
            self.file.close()

    def abandon(self) -> None:
        """Close after an error, without caring whether the trailer gets out (the file is
        repaired afterwards: see ``edge.record.repair``)."""
        if self._closed:
            return
        self._closed = True
        self._held = None
        with contextlib.suppress(Exception):
            self._container.close()
        with contextlib.suppress(OSError):
            self.file.sync()
        self.file.close()

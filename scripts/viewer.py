"""A real LiveKit subscriber: joins a camera room, decodes every frame, measures it.

Used by the integration tests and the benchmarks (never by the product): it records
per-frame arrival time, glass-to-glass latency from the edge's capture timestamp
(``FrameMetadata.user_timestamp``), resolution, the source frame id, and a small luma
thumbnail to prove the picture changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from livekit import rtc


@dataclass(frozen=True, slots=True)
class ReceivedFrame:
    """One decoded frame as the subscriber saw it."""

    arrival_us: int
    width: int
    height: int
    capture_us: int | None
    frame_id: int | None
    thumb: np.ndarray[Any, np.dtype[np.uint8]]  # luma, every 16th pixel

    @property
    def latency_ms(self) -> float | None:
        """Capture at the edge → decoded here, in ms (same host clock in tests)."""
        return None if self.capture_us is None else (self.arrival_us - self.capture_us) / 1000


@dataclass
class Viewer:
    """One subscriber connection to one camera room."""

    url: str
    token: str
    keep_luma_ids: set[int] = field(default_factory=set)
    frames: list[ReceivedFrame] = field(default_factory=list)
    luma: dict[int, np.ndarray[Any, np.dtype[np.uint8]]] = field(default_factory=dict)
    mime_type: str | None = None
    publisher_identity: str | None = None
    connected_at: float | None = None
    first_frame_at: float | None = None
    disconnected: bool = False
    room: rtc.Room = field(default_factory=rtc.Room)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _new_frame: asyncio.Event = field(default_factory=asyncio.Event)
    _track: rtc.RemoteVideoTrack | None = None

    async def connect(self, timeout: float = 20.0) -> None:
        """Join and subscribe to the first video track published in the room."""

        @self.room.on("track_subscribed")
        def _subscribed(
            track: rtc.Track, pub: rtc.RemoteTrackPublication, participant: rtc.RemoteParticipant
        ) -> None:
            if isinstance(track, rtc.RemoteVideoTrack):
                self.mime_type = pub.mime_type
                self.publisher_identity = participant.identity
                self._track = track
                self._tasks.append(asyncio.create_task(self._read(track)))

        @self.room.on("disconnected")
        def _gone(*_: Any) -> None:
            self.disconnected = True

        self.connected_at = time.monotonic()
        await asyncio.wait_for(self.room.connect(self.url, self.token), timeout)

    async def _read(self, track: rtc.RemoteVideoTrack) -> None:
        stream = rtc.VideoStream(track, format=rtc.VideoBufferType.I420)
        try:
            async for event in stream:
                now_us = time.time_ns() // 1000
                frame = event.frame
                w, h = frame.width, frame.height
                y = np.frombuffer(frame.data, dtype=np.uint8, count=w * h).reshape(h, w)
                meta = event.metadata
                capture = meta.user_timestamp if meta is not None and meta.user_timestamp else None
                frame_id = meta.frame_id if meta is not None and meta.HasField("frame_id") else None
                if self.first_frame_at is None:
                    self.first_frame_at = time.monotonic()
                if frame_id is not None and frame_id in self.keep_luma_ids:
                    self.luma[frame_id] = y.copy()
                self.frames.append(
                    ReceivedFrame(now_us, w, h, capture, frame_id, y[::16, ::16].copy())
                )
                self._new_frame.set()
        finally:
            await stream.aclose()

    async def wait_frames(self, count: int, timeout: float) -> list[ReceivedFrame]:
        """Wait until ``count`` more frames arrived; TimeoutError otherwise."""
        target = len(self.frames) + count
        deadline = time.monotonic() + timeout
        while len(self.frames) < target:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"got {len(self.frames) - target + count}/{count} frames")
            self._new_frame.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._new_frame.wait(), left)
        return self.frames[target - count : target]

    async def inbound_stats(self) -> Any:
        """The inbound-rtp stats (frames, keyframes, bytes) of the subscribed track, or None."""
        if self._track is None:
            return None
        for s in await self._track.get_stats():
            if s.WhichOneof("stats") == "inbound_rtp":
                return s.inbound_rtp.inbound
        return None

    async def close(self) -> None:
        """Leave the room and stop reading."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.room.disconnect(), 5.0)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def percentile(values: list[float], p: float) -> float:
    """The p-th percentile (0..100) by nearest rank; nan for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]

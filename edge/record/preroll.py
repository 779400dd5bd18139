"""The pre-roll buffer: the last seconds of access units, in whole GOPs.

A clip has to start on a keyframe, so the buffer keeps whole GOPs: every GOP from the
newest one that began at least ``keep_s`` ago up to the frame just received. It never
holds more than ``max_bytes``: the oldest GOPs go first, and a single GOP bigger than
that (a camera with a very long GOP at a high bitrate) is dropped whole, the buffer
starting again at the next keyframe. Appending is O(1) amortised: it runs on the source
thread.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field

from edge.sources.base import CapturedFrame


@dataclass
class Gop:
    """A keyframe and the frames that depend on it."""

    frames: list[CapturedFrame] = field(default_factory=list)
    bytes: int = 0

    @property
    def start_us(self) -> int:
        """Capture time of the keyframe."""
        return self.frames[0].capture_us


class GopBuffer:
    """Recent whole GOPs; not thread-safe (the clip cutter holds a lock around it)."""

    def __init__(self, keep_s: float, max_bytes: int) -> None:
        self.keep_us = round(keep_s * 1e6)
        self.max_bytes = max_bytes
        self.bytes = 0
        self.dropped_gops = 0  # GOPs dropped to stay within max_bytes
        self._gops: collections.deque[Gop] = collections.deque()

    def __len__(self) -> int:
        return sum(len(g.frames) for g in self._gops)

    @property
    def oldest_us(self) -> int | None:
        """Capture time of the oldest keyframe held."""
        return self._gops[0].start_us if self._gops else None

    def append(self, frame: CapturedFrame) -> None:
        """Add the newest access unit (frames before the first keyframe are ignored)."""
        size = len(frame.au.data)
        if frame.au.keyframe:
            self._gops.append(Gop())
        elif not self._gops:
            return  # no keyframe to start from yet
        gop = self._gops[-1]
        gop.frames.append(frame)
        gop.bytes += size
        self.bytes += size
        # Keep the newest GOP that started at least keep_us ago; older ones are not needed.
        horizon = frame.capture_us - self.keep_us
        while len(self._gops) >= 2 and self._gops[1].start_us <= horizon:
            self.bytes -= self._gops.popleft().bytes
        while self.bytes > self.max_bytes and self._gops:
            self.bytes -= self._gops.popleft().bytes
            self.dropped_gops += 1

    def since(self, start_us: int) -> list[CapturedFrame]:
        """Frames from the newest keyframe at or before ``start_us`` (the oldest keyframe
        when the buffer does not reach back that far) to the newest frame."""
        chosen = 0
        for i, gop in enumerate(self._gops):
            if gop.start_us <= start_us:
                chosen = i
            else:
                break
        return [f for gop in list(self._gops)[chosen:] for f in gop.frames]

"""Wall-clock capture times for live inputs that carry their own timestamps (RTSP, V4L2).

A network camera stamps every picture with its own clock (the RTP timestamp), at an even
cadence. What reaches the edge is uneven: TCP, Wi-Fi and the camera's own output buffer
deliver two frames at once after a 70 ms pause. Stamping frames with their arrival time
copies that unevenness into the WebRTC timeline: the viewer's jitter buffer grows to
cover it, two frames stamped 2 ms apart are composited as one, and latency rises.

`SourceClock` maps the camera's timestamps onto the wall clock instead, anchored on the
earliest arrival seen (the least delayed frame), so a stamp is never later than the
frame's arrival and the cadence is the camera's. It follows clock drift between camera and
edge, and starts over when the camera's timestamps jump back or run far from arrivals.
"""

from __future__ import annotations

import logging

log = logging.getLogger("edge.sources.clock")


class SourceClock:
    """Maps one stream's timestamps (seconds, increasing) to wall-clock microseconds."""

    #: How fast the mapping may move later to follow a camera clock slower than ours
    #: (µs per µs of stream time). Crystal clocks differ by well under 100 ppm.
    DRIFT = 1e-3
    #: A stamp further than this behind its frame's arrival means a jump or a stall: the
    #: mapping restarts from that arrival rather than carry a stale offset.
    RESYNC_US = 1_000_000

    def __init__(self, name: str) -> None:
        self.name = name
        self._offset_us: int | None = None  # wall − stream, µs
        self._last_pts_us: int | None = None
        self._last_stamp_us = 0
        self.resyncs = 0

    def stamp(self, pts_s: float | None, arrival_us: int) -> int:
        """The capture time (wall µs) of a frame with timestamp ``pts_s`` that arrived now.

        Without a timestamp, the arrival time. The result never exceeds ``arrival_us``
        and always increases.
        """
        if pts_s is None:
            return self._monotonic(arrival_us)
        pts_us = round(pts_s * 1_000_000)
        candidate = arrival_us - pts_us
        offset = self._offset_us
        last = self._last_pts_us
        if offset is None or last is None or pts_us <= last:
            if offset is not None:
                self._resync("timestamps went back")
            offset = candidate
        else:
            # The earliest arrival wins (that frame was delayed least); otherwise creep
            # later at most DRIFT per unit of stream time.
            offset = min(offset + round((pts_us - last) * self.DRIFT), candidate)
            if candidate - offset > self.RESYNC_US:
                self._resync(f"stamp {(candidate - offset) / 1000:.0f} ms behind arrival")
                offset = candidate
        self._offset_us = offset
        self._last_pts_us = pts_us
        return self._monotonic(pts_us + offset)

    def _monotonic(self, stamp_us: int) -> int:
        stamp_us = max(stamp_us, self._last_stamp_us + 1)
        self._last_stamp_us = stamp_us
        return stamp_us

    def _resync(self, why: str) -> None:
        self.resyncs += 1
        log.info("source clock resync camera=%s reason=%r resyncs=%d", self.name, why, self.resyncs)

"""Reading H.264 out of containers and network streams with PyAV, without decoding.

Shared by the file (mp4/mkv), RTSP and V4L2 sources: open, check the codec, convert
AVCC (length-prefixed, as in MP4) to Annex-B with FFmpeg's own bitstream filter, and
yield each packet (one access unit) with its presentation time.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import av
from av.bitstream import BitStreamFilterContext

from edge.h264 import AccessUnitReader
from edge.sources.base import CapturedFrame, FatalSourceError, FrameSink, SourceError, wall_us
from edge.sources.clock import SourceClock

log = logging.getLogger("edge.sources.demux")

_CREDENTIALS = re.compile(r"([a-z][a-z0-9+.-]*://[^:/@\s]+:)[^@\s]+@", re.IGNORECASE)

H265_HINT = (
    "browsers do not reliably decode H.265 over WebRTC, so livecam does not publish it; "
    "point this camera at its H.264 substream instead (in the camera's web UI: video → "
    "sub stream → encoding H.264; e.g. Hikvision .../Streaming/Channels/102, Dahua "
    "...&subtype=1, Reolink ..._sub)"
)


@dataclass(frozen=True, slots=True)
class DemuxedPacket:
    """One access unit in Annex-B and its decode time in seconds (None if unknown)."""

    data: bytes
    pts_s: float | None


def open_h264(
    url: str,
    *,
    name: str,
    format: str | None = None,
    options: dict[str, str] | None = None,
    timeout: float | tuple[float, float] | None = None,
) -> tuple[Any, Any]:
    """Open ``url`` and return (container, its H.264 video stream).

    Raises FatalSourceError when the input can never be published (no video, H.265,
    another codec) and SourceError when opening failed in a way a retry may fix.
    """
    try:
        container = av.open(url, format=format, options=options or {}, timeout=timeout)
    except FileNotFoundError as exc:
        raise FatalSourceError(f"{name}: {url} does not exist") from exc
    except av.error.FFmpegError as exc:
        raise SourceError(redact(f"{name}: cannot open {url}: {exc}")) from exc
    videos = [s for s in container.streams if s.type == "video"]
    if not videos:
        container.close()
        raise FatalSourceError(f"{name}: {redact(url)} has no video stream")
    stream = videos[0]
    codec = stream.codec_context.name
    if codec in ("hevc", "h265"):
        container.close()
        raise FatalSourceError(f"{name}: {redact(url)} is H.265; {H265_HINT}")
    if codec != "h264":
        container.close()
        raise FatalSourceError(
            f"{name}: {redact(url)} is {codec}; livecam passes H.264 through untouched and "
            "does not transcode — configure the camera (or file) for H.264"
        )
    return container, stream


def annexb_packets(container: Any, stream: Any) -> Iterator[DemuxedPacket]:
    """Yield the stream's packets as Annex-B access units, in decode order."""
    extradata = stream.codec_context.extradata or b""
    # MP4/MKV store H.264 as AVCC (extradata starts with version byte 1): convert, and let
    # the filter put SPS/PPS in front of keyframes. RTSP and raw streams are Annex-B.
    bsf = BitStreamFilterContext("h264_mp4toannexb", stream) if extradata[:1] == b"\x01" else None
    time_base = stream.time_base
    for packet in container.demux(stream):
        if packet.size == 0:
            continue  # demuxer flush packet
        out = bsf.filter(packet) if bsf is not None else [packet]
        for p in out:
            # Decode order is send order, so pace on DTS (monotonic even with B-frames).
            pts = p.dts if p.dts is not None else p.pts
            pts_s = float(pts * time_base) if pts is not None and time_base else None
            yield DemuxedPacket(data=bytes(p), pts_s=pts_s)


def redact(text: str) -> str:
    """``text`` with URL passwords masked (rtsp://user:pass@host → rtsp://user:***@host).

    Applied to every message that may contain a camera URL: FFmpeg's own errors echo it.
    """
    return _CREDENTIALS.sub(r"\1***@", text)


class LiveDemuxPump:
    """Relays a live demuxed stream (RTSP, V4L2) to a sink until it stops or fails.

    Live inputs set their own pace, so frames go out as they arrive. Their capture time
    is the input's own timestamp mapped onto the wall clock (`SourceClock`), so uneven
    delivery does not make an uneven timeline. The frame counter survives reconnects so
    indices keep increasing.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.index = 0

    def pump(
        self, container: Any, stream: Any, label: str, sink: FrameSink, stop: threading.Event
    ) -> None:
        """Read until ``stop``; raise SourceError when the input fails or ends."""
        reader = AccessUnitReader(name=self.name)
        clock = SourceClock(self.name)  # a new connection has a new timeline
        try:
            for packet in annexb_packets(container, stream):
                if stop.is_set():
                    return
                au = reader.push_access_unit(packet.data)
                if au is not None:
                    stamp = clock.stamp(packet.pts_s, wall_us())
                    sink(CapturedFrame(au=au, capture_us=stamp, index=self.index))
                    self.index += 1
        except OSError as exc:  # av.error.FFmpegError subclasses OSError
            raise SourceError(redact(f"{self.name}: {label} failed: {exc}")) from exc
        finally:
            container.close()
        if not stop.is_set():
            raise SourceError(f"{self.name}: {label} ended")

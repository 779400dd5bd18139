"""An IP camera over RTSP: PyAV demuxes the camera's H.264 over TCP, no decode.

Interleaved TCP is the default because UDP RTP through NAT, Wi-Fi and VPNs loses
packets, and a lost packet in passthrough is a smeared picture until the next keyframe.
Disconnects raise SourceError; the camera runner reconnects with backoff.
"""

from __future__ import annotations

import logging
import threading

from edge.sources.base import FrameSink
from edge.sources.demux import LiveDemuxPump, open_h264, redact

log = logging.getLogger("edge.sources.rtsp")


class RtspSource:
    """Relays an RTSP camera's H.264 stream as it arrives (it is live: no pacing)."""

    kind = "rtsp"
    # RTSP has no standard way to ask the camera for an IDR; its GOP bounds the wait.
    can_force_keyframe = False

    def __init__(
        self,
        *,
        name: str,
        url: str,
        transport: str = "tcp",
        timeout_s: float = 10.0,
    ) -> None:
        if not url.startswith(("rtsp://", "rtsps://")):
            raise ValueError(
                f"{name}: RTSP url must start with rtsp:// or rtsps://, got {redact(url)}"
            )
        if transport not in ("tcp", "udp"):
            raise ValueError(f"{name}: RTSP transport must be tcp or udp, got {transport!r}")
        self.name = name
        self.url = url
        self.transport = transport
        self.timeout_s = timeout_s
        self._pump = LiveDemuxPump(name)

    def request_keyframe(self) -> None:
        """RTSP cameras cannot be asked for a keyframe."""

    def options(self) -> dict[str, str]:
        """FFmpeg demuxer options: transport, socket timeout, no buffering."""
        return {
            "rtsp_transport": self.transport,
            "timeout": str(int(self.timeout_s * 1_000_000)),  # µs, socket I/O timeout
            "fflags": "nobuffer",
            "flags": "low_delay",
            "max_delay": "0",
        }

    def run(self, sink: FrameSink, stop: threading.Event) -> None:
        """Read until stopped; raise SourceError when the camera goes away."""
        container, stream = open_h264(
            self.url,
            name=self.name,
            options=self.options(),
            timeout=(self.timeout_s, self.timeout_s),
        )
        log.info(
            "rtsp connected camera=%s url=%s transport=%s",
            self.name,
            redact(self.url),
            self.transport,
        )
        self._pump.pump(container, stream, f"RTSP stream {redact(self.url)}", sink, stop)

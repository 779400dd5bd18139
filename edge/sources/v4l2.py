"""A USB/V4L2 camera that encodes H.264 itself (e.g. Logitech C920-class, Pi's uvc gadgets).

Uses FFmpeg's v4l2 input through PyAV with ``input_format=h264``: the camera's own
encoder output is passed through, never decoded.
"""

from __future__ import annotations

import logging
import threading

from edge.sources.base import FrameSink
from edge.sources.demux import LiveDemuxPump, open_h264

log = logging.getLogger("edge.sources.v4l2")


class V4l2Source:
    """Reads H.264 from a V4L2 device node."""

    kind = "v4l2"
    can_force_keyframe = False

    def __init__(
        self,
        *,
        name: str,
        device: str = "/dev/video0",
        width: int = 1280,
        height: int = 720,
        fps: int = 30,
    ) -> None:
        self.name = name
        self.device = device
        self.width = width
        self.height = height
        self.fps = fps
        self._pump = LiveDemuxPump(name)

    def request_keyframe(self) -> None:
        """UVC H.264 cameras expose no portable keyframe control through FFmpeg."""

    def options(self) -> dict[str, str]:
        """FFmpeg v4l2 options asking the camera for its H.264 stream."""
        return {
            "input_format": "h264",
            "video_size": f"{self.width}x{self.height}",
            "framerate": str(self.fps),
        }

    def run(self, sink: FrameSink, stop: threading.Event) -> None:
        """Read until stopped; SourceError when the device disappears."""
        container, stream = open_h264(
            self.device, name=self.name, format="v4l2", options=self.options()
        )
        log.info("v4l2 opened camera=%s device=%s", self.name, self.device)
        self._pump.pump(container, stream, self.device, sink, stop)

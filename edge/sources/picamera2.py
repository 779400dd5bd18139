"""A Raspberry Pi camera through picamera2: the hardware H.264 encoder, frame by frame.

picamera2 hands a custom Output each encoded frame with its keyframe flag and sensor
timestamp, so there is no byte-stream splitting and no one-frame delay, and the
encoder can be asked for an IDR when a viewer joins. picamera2 exists only on Raspberry
Pi OS (it needs libcamera's Python bindings from apt), so it is imported lazily.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from edge.h264 import AccessUnitReader
from edge.sources.base import (
    CapturedFrame,
    EncoderSettings,
    FatalSourceError,
    FrameSink,
    SensorClock,
    SourceError,
    wall_us,
)

log = logging.getLogger("edge.sources.picamera2")

INSTALL_HINT = (
    "picamera2 is not importable; on Raspberry Pi OS run `sudo apt install python3-picamera2` "
    "and create the edge venv with --system-site-packages (scripts/install-edge.sh does both)"
)


class EncodedFrameAdapter:
    """Turns encoder callbacks (bytes, keyframe flag, sensor µs) into CapturedFrames.

    Independent of picamera2 so it is tested with recorded encoder output on any machine.
    """

    def __init__(self, name: str, sink: FrameSink) -> None:
        self.name = name
        self.sink = sink
        self.reader = AccessUnitReader(name=name)
        self.clock = SensorClock()
        self.index = 0

    def on_frame(self, data: bytes, keyframe: bool, timestamp_us: int | None) -> None:
        """One encoded frame from the hardware encoder."""
        au = self.reader.push_access_unit(bytes(data))
        if au is None:
            return
        if keyframe != au.keyframe:
            log.debug("keyframe flag differs from bitstream camera=%s flag=%s", self.name, keyframe)
        capture = wall_us() if timestamp_us is None else self.clock.capture_us(timestamp_us)
        self.sink(CapturedFrame(au=au, capture_us=capture, index=self.index))
        self.index += 1


class Picamera2Source:
    """The Pi camera module via picamera2 and its H264Encoder."""

    kind = "picamera2"
    can_force_keyframe = True

    def __init__(
        self,
        *,
        name: str,
        width: int = 1280,
        height: int = 720,
        fps: int = 30,
        bitrate_kbps: int = 2500,
        gop_s: float = 1.0,
        camera_index: int = 0,
        lores: tuple[int, int] = (320, 240),
    ) -> None:
        self.name = name
        self.settings = EncoderSettings(width, height, fps, bitrate_kbps, gop_s)
        self.camera_index = camera_index
        self.lores = lores
        self._encoder: Any = None

    def request_keyframe(self) -> None:
        """Ask the V4L2 encoder for an IDR on the next frame."""
        encoder = self._encoder
        if encoder is not None:
            encoder.force_key_frame()

    def run(self, sink: FrameSink, stop: threading.Event) -> None:
        """Record until stopped."""
        try:
            from picamera2 import Picamera2
            from picamera2.encoders import H264Encoder
            from picamera2.outputs import Output
        except ImportError as exc:
            raise FatalSourceError(f"{self.name}: {INSTALL_HINT}") from exc

        adapter = EncodedFrameAdapter(self.name, sink)

        class _AccessUnitOutput(Output):  # type: ignore[misc]
            def outputframe(
                self,
                frame: bytes,
                keyframe: bool = True,
                timestamp: int | None = None,
                packet: Any = None,
                audio: bool = False,
            ) -> None:
                if not audio:
                    adapter.on_frame(frame, keyframe, timestamp)

        try:
            camera = Picamera2(self.camera_index)
        except (RuntimeError, IndexError) as exc:
            raise SourceError(
                f"{self.name}: camera {self.camera_index} unavailable: {exc}"
            ) from exc
        try:
            config = camera.create_video_configuration(
                main={"size": (self.settings.width, self.settings.height)},
                # The lores stream feeds analysis (motion, detection, MJPEG) without touching
                # the encoded stream.
                lores={"size": self.lores},
                controls={"FrameRate": float(self.settings.fps)},
            )
            camera.configure(config)
            encoder = H264Encoder(
                bitrate=self.settings.bitrate_kbps * 1000,
                repeat=True,
                iperiod=self.settings.gop,
                profile="baseline",
            )
            self._encoder = encoder
            camera.start_recording(encoder, _AccessUnitOutput())
            log.info(
                "picamera2 recording camera=%s size=%dx%d fps=%d gop=%d",
                self.name,
                self.settings.width,
                self.settings.height,
                self.settings.fps,
                self.settings.gop,
            )
            stop.wait()
        except RuntimeError as exc:
            raise SourceError(f"{self.name}: picamera2 failed: {exc}") from exc
        finally:
            self._encoder = None
            try:
                camera.stop_recording()
            finally:
                camera.close()

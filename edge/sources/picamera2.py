"""A Raspberry Pi camera through picamera2: the hardware H.264 encoder, frame by frame.

picamera2 hands a custom Output each encoded frame with its keyframe flag and sensor
timestamp, so there is no byte-stream splitting and no one-frame delay, and the
encoder can be asked for an IDR when a viewer joins. The ISP's second, small "lores"
output of the same frames is the analysis picture (MJPEG, motion): copied out of a
request only when a picture sink asks for one, never decoded from H.264. picamera2
exists only on Raspberry Pi OS (it needs libcamera's Python bindings from apt), so it
is imported lazily.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from edge.h264 import AccessUnitReader
from edge.sources.base import (
    CapturedFrame,
    EncoderSettings,
    FatalSourceError,
    FrameSink,
    Picture,
    PictureSink,
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


#: Width of the lores (analysis) stream unless configured: what MJPEG sends at most.
LORES_WIDTH = 640
LORES_FORMATS = ("YUV420", "YVU420", "RGB888", "BGR888")


def default_lores_size(width: int, height: int) -> tuple[int, int]:
    """The main stream's aspect ratio at most LORES_WIDTH wide (even sizes, as the ISP needs)."""
    lw = min(LORES_WIDTH, width) // 2 * 2
    lh = max(2, round(height * lw / width / 2) * 2)
    return lw, lh


def lores_picture(
    array: np.ndarray[Any, Any], config: Mapping[str, Any], capture_us: int
) -> Picture:
    """A copied lores buffer (``request.make_array("lores")``) as a Picture.

    ``config`` is the stream's configuration after ``configure()``: size, format and
    stride. YUV420 rows carry stride padding (the chroma rows half of it) that is cut
    off here; picamera2's RGB888 is B, G, R in memory and BGR888 is R, G, B.
    """
    width, height = (int(v) for v in config["size"])
    fmt = str(config["format"])
    stride = int(config.get("stride") or 0)
    flat = np.ascontiguousarray(array, dtype=np.uint8).reshape(-1)
    if fmt in ("YUV420", "YVU420"):
        stride = stride or width
        cw, ch, cstride = width // 2, height // 2, stride // 2
        y_size, c_size = height * stride, ch * cstride
        if flat.size < y_size + 2 * c_size:
            raise ValueError(f"lores buffer of {flat.size} bytes is too small for {config}")
        y = flat[:y_size].reshape(height, stride)[:, :width]
        first = flat[y_size : y_size + c_size].reshape(ch, cstride)[:, :cw]
        second = flat[y_size + c_size : y_size + 2 * c_size].reshape(ch, cstride)[:, :cw]
        u, v = (first, second) if fmt == "YUV420" else (second, first)
        planes = np.concatenate([y.reshape(-1), u.reshape(-1), v.reshape(-1)])
        return Picture(planes.reshape(height * 3 // 2, width), width, height, capture_us)
    if fmt in ("RGB888", "BGR888"):
        stride = stride or width * 3
        rows = flat[: height * stride].reshape(height, stride)[:, : width * 3]
        pixels = rows.reshape(height, width, 3)
        rgb = pixels[:, :, ::-1] if fmt == "RGB888" else pixels
        return Picture(np.ascontiguousarray(rgb), width, height, capture_us, "rgb24")
    raise ValueError(f"lores format {fmt!r} is not one of {LORES_FORMATS}")


class LoresTap:
    """Hands a picture sink the lores image of completed camera requests, when it wants one.

    Runs as picamera2's ``post_callback`` (the camera thread): without a sink, or when
    the sink does not want a picture now, a request costs one metadata lookup.
    Independent of picamera2 so it is tested with stand-in requests on any machine.
    """

    def __init__(self, name: str, config: Mapping[str, Any]) -> None:
        self.name = name
        self.config = dict(config)
        self.sink: PictureSink | None = None
        self.clock = SensorClock()
        self.errors = 0

    def on_request(self, request: Any) -> None:
        """One completed request (with ``get_metadata()`` and ``make_array(name)``)."""
        sink = self.sink
        if sink is None:
            return
        sensor_ns = request.get_metadata().get("SensorTimestamp")
        capture = wall_us() if sensor_ns is None else self.clock.capture_us(int(sensor_ns) // 1000)
        if not sink.wants_picture(capture):
            return
        try:
            picture = lores_picture(request.make_array("lores"), self.config, capture)
        except (ValueError, RuntimeError) as exc:
            # Never let analysis break recording; say so once in a while.
            self.errors += 1
            if self.errors == 1 or self.errors % 100 == 0:
                log.warning("lores picture unusable camera=%s error=%s", self.name, exc)
            return
        sink.on_picture(picture)


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
        lores: Sequence[int] | None = None,
    ) -> None:
        self.name = name
        self.settings = EncoderSettings(width, height, fps, bitrate_kbps, gop_s)
        self.camera_index = camera_index
        if lores is None:
            self.lores = default_lores_size(width, height)
        else:
            lw, lh = (int(v) for v in lores)
            if lw % 2 or lh % 2 or not (0 < lw <= width and 0 < lh <= height):
                raise ValueError(
                    f"lores must be even and no larger than the main stream, got {lw}x{lh}"
                )
            self.lores = (lw, lh)
        self._encoder: Any = None
        self._picture_sink: PictureSink | None = None
        self._lores_tap: LoresTap | None = None

    def set_picture_sink(self, sink: PictureSink | None) -> None:
        """Lores pictures go to ``sink`` when it asks for one."""
        self._picture_sink = sink
        tap = self._lores_tap
        if tap is not None:
            tap.sink = sink

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
                lores={"size": self.lores, "format": "YUV420"},
                controls={"FrameRate": float(self.settings.fps)},
            )
            camera.configure(config)
            tap = LoresTap(self.name, camera.camera_config["lores"])
            tap.sink = self._picture_sink
            self._lores_tap = tap
            camera.post_callback = tap.on_request
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
            self._lores_tap = None
            try:
                camera.stop_recording()
            finally:
                camera.close()

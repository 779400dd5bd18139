"""A synthetic camera: a moving picture with a frame counter and clock, encoded live.

Encodes like a Pi's hardware encoder is configured (constrained baseline, no B-frames,
zero-latency, fixed GOP), so everything downstream sees the same kind of stream a real
camera sends. The visible counter and clock make latency and freezes obvious by eye.
The rendered picture itself, before encoding, goes to an optional picture sink (MJPEG).
"""

from __future__ import annotations

import datetime as dt
import fractions
import logging
import threading
from typing import Any

import av
import numpy as np
from av.video.frame import PictureType
from PIL import Image, ImageDraw, ImageFont

from edge.h264 import AccessUnitReader
from edge.sources.base import (
    CapturedFrame,
    EncoderSettings,
    FrameSink,
    Pacer,
    Picture,
    PictureSink,
    SourceError,
    wall_us,
)

log = logging.getLogger("edge.sources.synthetic")


class SyntheticSource:
    """Renders and encodes frames in real time with libx264 (PyAV)."""

    kind = "synthetic"
    can_force_keyframe = True

    def __init__(
        self,
        *,
        name: str,
        width: int = 1280,
        height: int = 720,
        fps: int = 30,
        bitrate_kbps: int = 2000,
        gop_s: float = 1.0,
    ) -> None:
        self.name = name
        self.settings = EncoderSettings(width, height, fps, bitrate_kbps, gop_s)
        self._keyframe_wanted = threading.Event()
        yy, xx = np.mgrid[0:height, 0:width]
        self._ramp = ((xx + yy) // 4 % 256).astype(np.uint8)
        self._font = ImageFont.load_default(size=max(12, height // 16))
        self._band_h = max(16, height // 12)
        self._picture_sink: PictureSink | None = None

    def set_picture_sink(self, sink: PictureSink | None) -> None:
        """Rendered pictures go to ``sink`` too (when it wants one), before encoding."""
        self._picture_sink = sink

    def request_keyframe(self) -> None:
        """The next encoded frame will be an IDR."""
        self._keyframe_wanted.set()

    def _encoder(self) -> av.video.codeccontext.VideoCodecContext:
        cc = av.CodecContext.create("libx264", "w")
        cc.width = self.settings.width
        cc.height = self.settings.height
        cc.pix_fmt = "yuv420p"
        cc.time_base = fractions.Fraction(1, self.settings.fps)
        cc.framerate = fractions.Fraction(self.settings.fps, 1)
        cc.bit_rate = self.settings.bitrate_kbps * 1000
        kbps = self.settings.bitrate_kbps
        cc.options = {
            "preset": "ultrafast",
            "tune": "zerolatency",
            "profile": "baseline",
            "threads": "1",
            # Headers before every IDR so a viewer can start at any keyframe, IDRs only at
            # the GOP (no scene cuts), and a VBV cap like a camera's rate control.
            "x264-params": (
                f"keyint={self.settings.gop}:min-keyint={self.settings.gop}:scenecut=0:bframes=0:"
                f"repeat-headers=1:forced-idr=1:vbv-maxrate={kbps}:vbv-bufsize={kbps}"
            ),
        }
        cc.open()
        return cc

    def _planes(self, index: int, now_us: int) -> np.ndarray[Any, np.dtype[np.uint8]]:
        """The picture as one I420 array (Y, then U and V), shape (h * 3 // 2, w)."""
        h, w = self.settings.height, self.settings.width
        y = self._ramp + np.uint8((index * 3) % 256)
        # A bright box sweeping across makes motion and frame order visible.
        box = max(8, h // 6)
        x0 = (index * max(2, w // 120)) % (w - box)
        y0 = (h - box) // 2
        y[y0 : y0 + box, x0 : x0 + box] = 235
        stamp = dt.datetime.fromtimestamp(now_us / 1e6, tz=dt.UTC).strftime("%H:%M:%S.%f")[:-3]
        band = Image.new("L", (w, self._band_h), 16)
        ImageDraw.Draw(band).text(
            (8, 0), f"{self.name}  #{index:06d}  {stamp} UTC", fill=235, font=self._font
        )
        y[0 : self._band_h, :] = np.asarray(band)
        u = np.full((h // 2, w // 2), 128 + (index % 64), np.uint8)
        v = np.full((h // 2, w // 2), 160 - (index % 64), np.uint8)
        return np.concatenate([y, u.reshape(-1, w), v.reshape(-1, w)])

    def run(self, sink: FrameSink, stop: threading.Event) -> None:
        """Render, encode and emit frames at ``fps`` until stopped."""
        try:
            encoder = self._encoder()
        except av.error.FFmpegError as exc:
            raise SourceError(f"{self.name}: cannot open libx264: {exc}") from exc
        reader = AccessUnitReader(name=self.name)
        pacer = Pacer(stop)
        log.info(
            "synthetic source started camera=%s size=%dx%d fps=%d gop=%d bitrate_kbps=%d",
            self.name,
            self.settings.width,
            self.settings.height,
            self.settings.fps,
            self.settings.gop,
            self.settings.bitrate_kbps,
        )
        index = 0
        while pacer.wait_until(index / self.settings.fps):
            capture_us = wall_us()
            planes = self._planes(index, capture_us)
            pictures = self._picture_sink
            if pictures is not None and pictures.wants_picture(capture_us):
                # Nobody writes to ``planes`` after this: the encoder gets its own copy.
                pictures.on_picture(
                    Picture(planes, self.settings.width, self.settings.height, capture_us)
                )
            frame = av.VideoFrame.from_ndarray(planes, format="yuv420p")
            frame.pts = index
            if self._keyframe_wanted.is_set():
                self._keyframe_wanted.clear()
                frame.pict_type = PictureType.I
            for packet in encoder.encode(frame):
                au = reader.push_access_unit(bytes(packet))
                if au is not None:
                    sink(CapturedFrame(au=au, capture_us=capture_us, index=index))
            index += 1

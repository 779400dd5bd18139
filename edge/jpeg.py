"""JPEGs of a camera's pictures, made only while the server wants them (MJPEG, snapshots).

The pictures come from the camera's analysis stage (edge.analysis): the tap is one of
its outputs, switched on by the control link's demand, at the requested rate and at
most ``max_width`` wide. Every picture goes through the picture filter (privacy masks)
right before encoding, so no JPEG ever leaves the edge unmasked. Encoding runs on the
stage's worker thread; when it is slow, the stage drops pictures, never the camera.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from dataclasses import dataclass

from PIL import Image

from edge.analysis import AnalysisStage, RgbArray

log = logging.getLogger("edge.jpeg")

#: Applied to every RGB picture (shape (h, w, 3), read-only) right before JPEG encoding,
#: e.g. to black out privacy masks; returns the picture to encode (a copy when changed).
PictureFilter = Callable[[RgbArray], RgbArray]
#: Receives each JPEG and the capture time (µs since the epoch) of its picture.
JpegOutput = Callable[[bytes, int], None]

DEFAULT_FPS = 5.0
DEFAULT_MAX_WIDTH = 640


@dataclass
class JpegStats:
    """Counters since start (read by tests and the heartbeat)."""

    encoded: int = 0  # JPEGs handed to the output


class JpegTap:
    """One camera's JPEG maker: idle until ``set_wanted(True)``, then ``fps`` JPEGs/s."""

    def __init__(
        self,
        stage: AnalysisStage,
        output: JpegOutput,
        *,
        quality: int = 75,
        picture_filter: PictureFilter | None = None,
    ) -> None:
        self.stage = stage
        self.name = stage.name
        self.quality = quality
        self.picture_filter = picture_filter
        self.stats = JpegStats()
        self._output = output
        self.pictures = stage.add_output(
            "jpeg", self._encode, fps=DEFAULT_FPS, max_width=DEFAULT_MAX_WIDTH
        )

    @property
    def wanted(self) -> bool:
        """Whether JPEGs are being made."""
        return self.pictures.active

    @property
    def fps(self) -> float:
        """JPEGs per second while wanted."""
        return self.pictures.fps

    @property
    def max_width(self) -> int:
        """The widest JPEG made (narrower sources are not scaled up)."""
        return self.pictures.max_width

    def set_wanted(
        self, want: bool, fps: float | None = None, max_width: int | None = None
    ) -> None:
        """Start or stop making JPEGs, at ``fps`` and at most ``max_width`` pixels wide."""
        if self.pictures.set(want, fps=fps, max_width=max_width):
            log.info(
                "jpeg %s camera=%s fps=%g max_width=%d source=%s",
                "wanted" if want else "not wanted",
                self.name,
                self.fps,
                self.max_width,
                "decoder" if self.stage.decode else "pictures",
            )

    def _encode(self, rgb: RgbArray, capture_us: int) -> None:
        if self.picture_filter is not None:
            rgb = self.picture_filter(rgb)
        out = io.BytesIO()
        Image.fromarray(rgb).save(out, format="JPEG", quality=self.quality)
        self.stats.encoded += 1
        self._output(out.getvalue(), capture_us)

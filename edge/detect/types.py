"""What an object detector returns, and the interface every detector backend implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

#: x0, y0, x1, y1, normalised to 0..1 of the analysed picture.
Box = tuple[float, float, float, float]

#: The kinds that alert; every COCO class maps to one of them.
KINDS = ("person", "vehicle", "pet", "other")


@dataclass(frozen=True)
class Detection:
    """One object found in a picture."""

    object: str  # COCO class name, e.g. "car"
    kind: str  # person | vehicle | pet | other
    score: float  # 0..1
    box: Box


class ObjectDetector(Protocol):
    """Finds objects in one RGB picture of any size."""

    def detect(self, rgb: np.ndarray[Any, np.dtype[np.uint8]]) -> list[Detection]:
        """Detections above the detector's thresholds, best first."""
        ...

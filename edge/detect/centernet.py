"""The COCO object detector: CenterNet (MobileNetV3) on onnxruntime.

The network sees the picture stretched to 512×512 (raw 0..255 RGB). A picture wider
(or taller) than 4:3 is first padded to 4:3 at the bottom (or right): squeezing a 16:9
frame all the way makes people too thin to find, while padding all the way to a square
shrinks small objects out of reach; 4:3 keeps both (bench/detect.py measured it). It
returns an
80-class heatmap and box sizes on a 128×128 grid (stride 4). A detection is a heatmap
peak (the maximum of its 3×3 neighbourhood) above its kind's threshold; its box is the
peak's position minus/plus the four predicted distances to the box's sides.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from edge.detect.labels import COCO80, DEFAULT_THRESHOLDS, kind_of
from edge.detect.types import KINDS, Detection

log = logging.getLogger("edge.detect")

INPUT = 512
#: Padding: mid grey, which the network treats as nothing.
PAD = 114.0
#: Pictures are padded to at most this aspect ratio before being stretched square.
MAX_ASPECT = 4 / 3
STRIDE = 4
#: Peaks considered per picture before thresholds (the model's own head uses 100).
TOP_K = 100
#: Same-class boxes overlapping more than this are one object.
NMS_IOU = 0.6

FloatArray = np.ndarray[Any, np.dtype[np.float32]]


def _iou(a: FloatArray, b: FloatArray) -> FloatArray:
    x0 = np.maximum(a[0], b[:, 0])
    y0 = np.maximum(a[1], b[:, 1])
    x1 = np.minimum(a[2], b[:, 2])
    y1 = np.minimum(a[3], b[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = (a[2] - a[0]) * (a[3] - a[1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    result: FloatArray = inter / np.maximum(area_a + area_b - inter, 1e-9)
    return result


def decode(
    heatmap: FloatArray,
    wh: FloatArray,
    thresholds: Mapping[str, float],
    max_detections: int = 20,
) -> list[Detection]:
    """Detections from one picture's outputs: ``heatmap`` (80, H, W), ``wh`` (4, H, W).

    Boxes are normalised to the network input (= the picture, which was stretched).
    """
    width = heatmap.shape[2]
    floor = min(thresholds.values())
    # Only cells above the lowest threshold can be detections: check the 3×3
    # neighbourhood of those few (a full max-pool over 80×128×128 costs ~100 ms).
    cls_i, y_i, x_i = np.nonzero(heatmap >= floor)
    padded = np.pad(heatmap, ((0, 0), (1, 1), (1, 1)), constant_values=-1.0)
    scores = heatmap[cls_i, y_i, x_i]
    is_peak = np.ones(scores.shape, bool)
    for dy in range(3):
        for dx in range(3):
            is_peak &= scores >= padded[cls_i, y_i + dy, x_i + dx]
    order = np.argsort(-scores[is_peak], kind="stable")[:TOP_K]
    top = [
        (int(c), int(y), int(x), float(v))
        for c, y, x, v in zip(
            cls_i[is_peak][order],
            y_i[is_peak][order],
            x_i[is_peak][order],
            scores[is_peak][order],
            strict=True,
        )
    ]
    found: list[tuple[int, float, FloatArray]] = []
    for cls, y, x, score in top:
        name = COCO80[cls] if cls < len(COCO80) else f"class{cls}"
        if score < thresholds.get(kind_of(name), 1.0):
            continue
        cx, cy = x * STRIDE, y * STRIDE
        left, top_, right, bottom = wh[:, y, x]
        box = np.array([cx - left, cy - top_, cx + right, cy + bottom], np.float32)
        box = np.clip(box / (width * STRIDE), 0.0, 1.0)
        if box[2] - box[0] <= 0 or box[3] - box[1] <= 0:
            continue
        same = [b for c, _, b in found if c == cls]
        if same and float(np.max(_iou(box, np.stack(same)))) > NMS_IOU:
            continue
        found.append((cls, score, box))
        if len(found) >= max_detections:
            break
    return [
        Detection(
            object=COCO80[c],
            kind=kind_of(COCO80[c]),
            score=round(s, 4),
            box=(float(b[0]), float(b[1]), float(b[2]), float(b[3])),
        )
        for c, s, b in found
    ]


class CenterNetDetector:
    """ObjectDetector on the converted CenterNet model (see edge/detect/models.py)."""

    def __init__(
        self,
        model: Path,
        *,
        thresholds: Mapping[str, float] | None = None,
        max_detections: int = 20,
        threads: int = 1,
    ) -> None:
        unknown = set(thresholds or {}) - set(KINDS)
        if unknown:
            raise ValueError(f"thresholds for unknown kinds {sorted(unknown)}; kinds: {KINDS}")
        bad = {k: v for k, v in (thresholds or {}).items() if not 0.0 <= v <= 1.0}
        if bad:
            raise ValueError(f"thresholds must be 0..1, got {bad}")
        if threads < 1 or max_detections < 1:
            raise ValueError("threads and max_detections must be at least 1")
        if not model.is_file():
            raise FileNotFoundError(f"object detection model {model} does not exist")
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        started = time.monotonic()
        self._session = ort.InferenceSession(
            str(model), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._input = self._session.get_inputs()[0].name
        self.thresholds = {**DEFAULT_THRESHOLDS, **(thresholds or {})}
        self.max_detections = max_detections
        self.last_ms = 0.0
        log.info(
            "detector loaded model=%s threads=%d load_ms=%.0f",
            model.name,
            threads,
            (time.monotonic() - started) * 1000,
        )

    def detect(self, rgb: np.ndarray[Any, np.dtype[np.uint8]]) -> list[Detection]:
        """Detections above the thresholds, best first; boxes normalised to ``rgb``."""
        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(f"expected an RGB picture (h, w, 3), got shape {rgb.shape}")
        started = time.perf_counter()
        height, width = rgb.shape[:2]
        padded_w = max(width, round(height / MAX_ASPECT))
        padded_h = max(height, round(width / MAX_ASPECT))
        size = (round(width * INPUT / padded_w), round(height * INPUT / padded_h))
        picture = Image.fromarray(rgb).resize(size, Image.Resampling.BILINEAR)
        batch = np.full((1, INPUT, INPUT, 3), PAD, np.float32)
        batch[0, : size[1], : size[0]] = np.asarray(picture, np.float32)
        heatmap, wh = self._session.run(None, {self._input: batch})
        found = decode(heatmap[0], wh[0], self.thresholds, self.max_detections)
        self.last_ms = (time.perf_counter() - started) * 1000
        # Boxes are fractions of the padded picture: back to fractions of the picture.
        sx, sy = padded_w / width, padded_h / height
        return [
            Detection(
                object=d.object,
                kind=d.kind,
                score=d.score,
                box=(
                    min(1.0, d.box[0] * sx),
                    min(1.0, d.box[1] * sy),
                    min(1.0, d.box[2] * sx),
                    min(1.0, d.box[3] * sy),
                ),
            )
            for d in found
        ]

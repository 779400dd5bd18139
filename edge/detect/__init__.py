"""Motion and object detection on the analysis pictures."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edge.detect.centernet import CenterNetDetector


def load_detector(
    *,
    model: str | None = None,
    thresholds: Mapping[str, float] | None = None,
    threads: int = 1,
    max_detections: int = 20,
) -> CenterNetDetector:
    """The COCO object detector: ``model`` (an ONNX file) or the packaged one.

    One inference thread by default: it runs about once a second while motion lasts, and
    the cores it would take from the camera's own threads matter more than the ~half
    it would save on its latency (measured: 61 ms on one thread vs 122 ms on two with
    the rest of the edge running on this 2-core machine).

    ``thresholds`` override the tuned per-kind defaults (edge.detect.labels);
    ``threads`` is onnxruntime's intra-op thread count.

    Raises ModelMissing (naming the setup command) when the packaged model was never set
    up, and ImportError when onnxruntime is not installed; the runtime is imported only
    here, so motion-only edges never load it.
    """
    from edge.detect.centernet import CenterNetDetector
    from edge.detect.models import model_path

    path = Path(model) if model else model_path()
    return CenterNetDetector(
        path, thresholds=thresholds, threads=threads, max_detections=max_detections
    )

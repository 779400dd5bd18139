"""Camera sources: one module per kind, all behind edge.sources.base.Source."""

from __future__ import annotations

from typing import Any

from edge.sources.base import CapturedFrame, FatalSourceError, FrameSink, Source, SourceError
from edge.sources.file import FileSource
from edge.sources.picamera2 import Picamera2Source
from edge.sources.rpicam import RpicamSource
from edge.sources.rtsp import RtspSource
from edge.sources.synthetic import SyntheticSource
from edge.sources.v4l2 import V4l2Source

KINDS: dict[str, type[Any]] = {
    "synthetic": SyntheticSource,
    "file": FileSource,
    "rtsp": RtspSource,
    "rpicam": RpicamSource,
    "picamera2": Picamera2Source,
    "v4l2": V4l2Source,
}


def create_source(name: str, kind: str, options: dict[str, Any]) -> Source:
    """Build the source ``kind`` for camera ``name``; ValueError names a bad option."""
    cls = KINDS.get(kind)
    if cls is None:
        raise ValueError(f"camera {name}: unknown source kind {kind!r}; one of {sorted(KINDS)}")
    try:
        source: Source = cls(name=name, **options)
    except TypeError as exc:
        raise ValueError(f"camera {name}: bad option for source {kind!r}: {exc}") from exc
    except ValueError as exc:
        raise ValueError(f"camera {name}: source {kind!r}: {exc}") from exc
    return source


__all__ = [
    "KINDS",
    "CapturedFrame",
    "FatalSourceError",
    "FrameSink",
    "Source",
    "SourceError",
    "create_source",
]

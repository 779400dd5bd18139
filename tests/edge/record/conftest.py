"""Streams shared by the recorder tests (encoding them once per session)."""

from __future__ import annotations

import pytest

from edge.h264 import AccessUnit
from tests.edge.record.media import make_stream


@pytest.fixture(scope="session")
def stream_320(tmp_path_factory: pytest.TempPathFactory) -> list[AccessUnit]:
    """12 s of 320×240 at 30 fps, a keyframe every second (360 access units)."""
    return make_stream(tmp_path_factory.mktemp("media"))


@pytest.fixture(scope="session")
def stream_640(tmp_path_factory: pytest.TempPathFactory) -> list[AccessUnit]:
    """4 s of 640×360 at 30 fps, a keyframe every second."""
    return make_stream(tmp_path_factory.mktemp("media640"), width=640, height=360, seconds=4.0)

"""Live-path helpers for the integration tests; the stack fixtures are in tests/conftest.py."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from scripts.devstack import Stack
from scripts.viewer import ReceivedFrame, Viewer
from tests.livestack import EdgeFactory, viewer_token, wait_status

__all__ = [
    "EdgeFactory",
    "assert_frames_carry_metadata",
    "picture_changes",
    "viewer_token",
    "wait_status",
    "watch",
]


def picture_changes(frames: list[ReceivedFrame]) -> int:
    """How many consecutive frame pairs differ visibly (the picture moves)."""
    return sum(
        1
        for a, b in itertools.pairwise(f.thumb for f in frames)
        if np.abs(a.astype(int) - b.astype(int)).mean() > 1.0
    )


def assert_frames_carry_metadata(frames: list[ReceivedFrame]) -> None:
    """Every frame has its source frame id and capture time (LiveKit's packet trailer),
    in capture order, with a plausible glass-to-glass latency."""
    ids = [f.frame_id for f in frames if f.frame_id is not None]
    assert len(ids) == len(frames), "every frame carries its source frame id"
    assert ids == sorted(ids), "frames arrive in capture order"
    latencies = [f.latency_ms for f in frames if f.latency_ms is not None]
    assert len(latencies) == len(frames), "every frame carries its capture timestamp"
    assert 0 < sorted(latencies)[len(latencies) // 2] < 1000


async def watch(stack: Stack, camera_id: str, **kwargs: Any) -> Viewer:
    """A connected subscriber for ``camera_id``."""
    tok = viewer_token(stack, camera_id)
    viewer = Viewer(tok["url"], tok["token"], **kwargs)
    await viewer.connect()
    return viewer

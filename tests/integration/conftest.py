"""Live-path helpers for the integration tests; the stack fixtures are in tests/conftest.py."""

from __future__ import annotations

from typing import Any

from scripts.devstack import Stack
from scripts.viewer import Viewer
from tests.livestack import EdgeFactory, viewer_token, wait_status

__all__ = ["EdgeFactory", "viewer_token", "wait_status", "watch"]


async def watch(stack: Stack, camera_id: str, **kwargs: Any) -> Viewer:
    """A connected subscriber for ``camera_id``."""
    tok = viewer_token(stack, camera_id)
    viewer = Viewer(tok["url"], tok["token"], **kwargs)
    await viewer.connect()
    return viewer

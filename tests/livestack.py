"""Helpers for tests that run the real stack (tests/integration, tests/browser).

The fixtures themselves (`stack`, `start_cameras`) are in tests/conftest.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx

from scripts.devstack import (
    EdgeCamera,
    ManagedProcess,
    Stack,
    create_camera,
    start_edge,
    write_edge_config,
)

EdgeFactory = Callable[..., tuple[list[str], ManagedProcess]]


def start_edge_cameras(
    stack: Stack,
    workdir: Path,
    sources: Sequence[dict[str, Any]],
    *,
    name: str = "edge",
    names: Sequence[str] | None = None,
    publisher: str = "libwebrtc",
) -> tuple[list[str], ManagedProcess]:
    """Create one camera per source in the API and run one edge process publishing them
    (through ``publisher``: "libwebrtc" or "pion")."""
    cams = []
    for i, source in enumerate(sources):
        label = names[i] if names else f"{source['kind']} camera {i}"
        cam_id, cred = create_camera(stack.api, label)
        cams.append(EdgeCamera(cam_id, cred, source))
    config = write_edge_config(
        workdir / f"{name}.toml",
        stack.api.url,
        cams,
        heartbeat_interval_s=1.0,
        publisher=publisher,
    )
    edge = start_edge(workdir, config, name=name, publisher=publisher)
    stack.edges.append(edge)
    return [c.camera_id for c in cams], edge


def viewer_token(stack: Stack, camera_id: str) -> dict[str, Any]:
    """A viewer token minted by the API, as the dashboard gets it."""
    with stack.api.client() as c:
        resp = c.post(f"/api/cameras/{camera_id}/viewer-token")
        resp.raise_for_status()
        data: dict[str, Any] = resp.json()
        return data


def wait_status(
    stack: Stack, camera_id: str, check: Callable[[dict[str, Any]], bool], timeout: float = 30.0
) -> dict[str, Any]:
    """Poll /api/cameras/{id}/status until ``check`` passes."""
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        try:
            with stack.api.client() as c:
                last = c.get(f"/api/cameras/{camera_id}/status").json()
            if check(last):
                return last
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"status of {camera_id} never matched: {last}")

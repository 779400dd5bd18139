"""Fixtures that start the real stack: livekit-server (pinned build) and the API."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from scripts.devstack import (
    EdgeCamera,
    ManagedProcess,
    Stack,
    create_camera,
    running_stack,
    start_edge,
    write_edge_config,
)
from scripts.viewer import Viewer


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One LiveKit + API per test module (starting them takes ~1 s)."""
    with running_stack(tmp_path_factory.mktemp("stack")) as s:
        yield s


EdgeFactory = Callable[..., tuple[list[str], ManagedProcess]]


@pytest.fixture
def start_cameras(stack: Stack, tmp_path: Path) -> Iterator[EdgeFactory]:
    """Create cameras in the API and run one edge process publishing them."""
    started: list[ManagedProcess] = []

    def _start(*sources: dict[str, Any], name: str = "edge") -> tuple[list[str], ManagedProcess]:
        cams = []
        for i, source in enumerate(sources):
            cam_id, cred = create_camera(stack.api, f"{source['kind']} camera {i}")
            cams.append(EdgeCamera(cam_id, cred, source))
        config = write_edge_config(
            tmp_path / f"{name}.toml", stack.api.url, cams, heartbeat_interval_s=1.0
        )
        edge = start_edge(tmp_path, config, name=name)
        started.append(edge)
        stack.edges.append(edge)
        return [c.camera_id for c in cams], edge

    yield _start
    for edge in started:
        edge.stop()


def viewer_token(stack: Stack, camera_id: str) -> dict[str, Any]:
    """A viewer token minted by the API, as the dashboard gets it."""
    with stack.api.client() as c:
        resp = c.post(f"/api/cameras/{camera_id}/viewer-token")
        resp.raise_for_status()
        data: dict[str, Any] = resp.json()
        return data


async def watch(stack: Stack, camera_id: str, **kwargs: Any) -> Viewer:
    """A connected subscriber for ``camera_id``."""
    tok = viewer_token(stack, camera_id)
    viewer = Viewer(tok["url"], tok["token"], **kwargs)
    await viewer.connect()
    return viewer


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

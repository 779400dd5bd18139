"""publisher = "pion": keyframe requests through edge/pionpub, and what happens when
pionpub goes away. (The picture, frame ids and capture times reaching a real subscriber
through each publisher: test_live_path.py.)"""

from __future__ import annotations

import asyncio
import time

import psutil
import pytest

from scripts.devstack import ManagedProcess, Stack
from tests.integration.conftest import (
    EdgeFactory,
    wait_status,
    watch,
)

pytestmark = pytest.mark.live

SYNTHETIC = {"kind": "synthetic", "width": 640, "height": 360, "fps": 30, "bitrate_kbps": 800}


def _pionpub(edge: ManagedProcess, timeout_s: float = 30.0) -> psutil.Process:
    """The edge's pionpub child, once it runs."""
    assert edge.proc is not None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for child in psutil.Process(edge.proc.pid).children():
            if child.name() == "pionpub":
                return child
        time.sleep(0.1)
    raise AssertionError(f"no pionpub under the edge within {timeout_s} s")


async def test_a_late_viewer_gets_a_keyframe_on_request(
    stack: Stack, start_cameras: EdgeFactory
) -> None:
    # The synthetic source can make an IDR when asked, and its GOP is long: a late viewer
    # sees a picture quickly only if pionpub passes the SFU's keyframe request on.
    (cam,), _edge = start_cameras({**SYNTHETIC, "gop_s": 10.0}, publisher="pion")
    first = await watch(stack, cam)
    try:
        await first.wait_frames(10, timeout=60)
    finally:
        await first.close()
    await asyncio.sleep(0)  # the first viewer has left; the camera is mid-GOP
    started = time.monotonic()
    late = await watch(stack, cam)
    try:
        await late.wait_frames(1, timeout=8)
        waited = time.monotonic() - started
    finally:
        await late.close()
    assert waited < 5.0, f"late viewer waited {waited:.1f} s (GOP 10 s)"
    status = wait_status(
        stack, cam, lambda s: (s["heartbeat"] or {}).get("keyframe_requests", 0) > 0
    )
    assert status["heartbeat"]["keyframe_requests"] > 0


async def test_pionpub_killed_is_restarted_and_the_camera_comes_back(
    stack: Stack, start_cameras: EdgeFactory
) -> None:
    (cam,), edge = start_cameras(SYNTHETIC, publisher="pion")
    viewer = await watch(stack, cam)
    try:
        await viewer.wait_frames(10, timeout=60)
    finally:
        await viewer.close()
    old = _pionpub(edge)
    old.kill()
    old.wait(10)
    # The edge notices, starts another pionpub with a fresh token, and publishes again.
    deadline = time.monotonic() + 30
    new = _pionpub(edge)
    while new.pid == old.pid and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        new = _pionpub(edge)
    assert new.pid != old.pid
    viewer = await watch(stack, cam)
    try:
        frames = await viewer.wait_frames(10, timeout=60)
        assert {(f.width, f.height) for f in frames} == {(640, 360)}
    finally:
        await viewer.close()
    status = wait_status(stack, cam, lambda s: s["state"] == "publishing")
    assert status["online"]
    assert "livekit disconnected" in edge.log_path.read_text()

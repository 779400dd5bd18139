"""The edge rides out its dependencies going away: livekit-server and the API restart."""

from __future__ import annotations

import time

import pytest

from scripts.devstack import Stack
from scripts.viewer import ReceivedFrame
from tests.integration.conftest import EdgeFactory, wait_status, watch

pytestmark = pytest.mark.live

SYNTH = {"kind": "synthetic", "width": 320, "height": 240, "fps": 15, "bitrate_kbps": 300}


async def test_edge_republishes_after_livekit_is_killed_and_restarted(
    stack: Stack, start_cameras: EdgeFactory
) -> None:
    (cam,), edge = start_cameras(SYNTH)
    viewer = await watch(stack, cam)
    try:
        await viewer.wait_frames(15, timeout=60)
    finally:
        await viewer.close()

    stack.livekit.process.kill()  # a crash, not a graceful shutdown
    stack.livekit.start()  # same ports, as systemd would restart it

    # A new viewer on the restarted SFU sees the camera again: the edge reconnected
    # and republished on its own.
    deadline = time.monotonic() + 90
    frames: list[ReceivedFrame] = []
    while time.monotonic() < deadline and not frames:
        viewer = await watch(stack, cam)
        try:
            frames = await viewer.wait_frames(15, timeout=30)
        except TimeoutError:
            frames = []
        finally:
            await viewer.close()
    assert len(frames) == 15, f"no frames after the SFU restart:\n{edge.log_tail()}"
    assert edge.running
    wait_status(stack, cam, lambda s: s["online"], timeout=30)


async def test_edge_keeps_streaming_while_the_api_restarts(
    stack: Stack, start_cameras: EdgeFactory
) -> None:
    (cam,), edge = start_cameras(SYNTH)
    viewer = await watch(stack, cam)
    try:
        await viewer.wait_frames(15, timeout=60)
        stack.api.stop()
        # The API is down for several heartbeats; video does not care.
        frames = await viewer.wait_frames(45, timeout=15)
        assert len(frames) == 45
        before = {f.frame_id for f in frames}
        stack.api.start()
        after = await viewer.wait_frames(15, timeout=15)
        assert min(f.frame_id or 0 for f in after) > max(i or 0 for i in before)
    finally:
        await viewer.close()
    assert edge.running
    # Heartbeats resume against the restarted API.
    first = wait_status(stack, cam, lambda s: s["heartbeat"] is not None)
    wait_status(stack, cam, lambda s: s["last_seen"] != first["last_seen"] and s["online"])
    assert "heartbeat failed" in edge.log_path.read_text()

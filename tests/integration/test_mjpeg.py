"""MJPEG and snapshots through the real programs: edge → control websocket → API → viewers."""

from __future__ import annotations

import asyncio
import io
import re
import statistics
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from scripts.devstack import (
    EdgeCamera,
    ManagedProcess,
    Stack,
    create_camera,
    start_edge,
    write_edge_config,
)
from scripts.media import make_h264_file
from scripts.mjpeg import Part, mjpeg_parts, slow_reader, watch_window
from tests.livestack import EdgeFactory, wait_status

pytestmark = pytest.mark.live

SYNTH = {"kind": "synthetic", "width": 1280, "height": 720, "fps": 15, "bitrate_kbps": 1500}


def ticket_url(stack: Stack, camera_id: str) -> str:
    with stack.api.client() as c:
        resp = c.post(f"/api/cameras/{camera_id}/mjpeg-ticket")
        resp.raise_for_status()
        url: str = resp.json()["url"]
        return url


async def collect(stack: Stack, camera_id: str, count: int, timeout: float = 60.0) -> list[Part]:
    """The first ``count`` JPEG parts of a fresh MJPEG stream (opened with a ticket)."""
    parts: list[Part] = []

    async def read() -> None:
        async with httpx.AsyncClient(base_url=stack.api.url, timeout=30.0) as client:
            stream = mjpeg_parts(client, ticket_url(stack, camera_id))
            try:
                async for part in stream:
                    parts.append(part)
                    if len(parts) >= count:
                        return
            finally:
                await stream.aclose()  # type: ignore[attr-defined]

    await asyncio.wait_for(read(), timeout)
    return parts


def decode(part: Part) -> np.ndarray[Any, np.dtype[np.uint8]]:
    assert part.headers["content-type"] == "image/jpeg"
    assert int(part.headers["content-length"]) == len(part.body)
    image = Image.open(io.BytesIO(part.body))
    assert image.format == "JPEG"
    return np.asarray(image.convert("L"))


def heartbeat_of(stack: Stack, camera_id: str, after: str | None) -> dict[str, Any]:
    """The first heartbeat the API stores after the one stamped ``after``."""
    return wait_status(
        stack,
        camera_id,
        lambda s: s["heartbeat"] is not None and s["last_seen"] != after,
        timeout=30,
    )


def sent_over_heartbeats(stack: Stack, camera_id: str, heartbeats: int) -> list[int]:
    """``jpeg_frames_sent`` from the next ``heartbeats`` heartbeats."""
    counts: list[int] = []
    seen: str | None = None
    for _ in range(heartbeats):
        status = heartbeat_of(stack, camera_id, seen)
        seen = status["last_seen"]
        counts.append(int(status["heartbeat"]["jpeg_frames_sent"]))
    return counts


def wait_jpeg_sending_stops(stack: Stack, camera_id: str, timeout: float = 30.0) -> int:
    """Wait until two heartbeats in a row report the same ``jpeg_frames_sent``."""
    deadline = time.monotonic() + timeout
    seen: str | None = None
    last: int | None = None
    while time.monotonic() < deadline:
        status = heartbeat_of(stack, camera_id, seen)
        seen = status["last_seen"]
        count = int(status["heartbeat"]["jpeg_frames_sent"])
        if count == last:
            return count
        last = count
    raise AssertionError(f"the edge kept sending JPEGs ({last})")


def log_text(process: ManagedProcess) -> str:
    return process.log_path.read_text(errors="replace")


def wait_log(process: ManagedProcess, pattern: str, count: int = 1, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(re.findall(pattern, log_text(process))) >= count:
            return
        time.sleep(0.1)
    raise AssertionError(f"{pattern!r} ×{count} not in {process.name}'s log:\n{process.log_tail()}")


def check_stream(parts: list[Part], width: int, height: int) -> None:
    """Valid JPEGs of the expected size, distinct, in relay order, and the picture moves."""
    lumas = [decode(p) for p in parts]
    assert {luma.shape for luma in lumas} == {(height, width)}
    assert len({p.body for p in parts}) == len(parts), "every JPEG is a new picture"
    seqs = [p.seq or 0 for p in parts]
    assert all(seqs)
    assert seqs == sorted(seqs)
    diff = np.abs(lumas[0].astype(int) - lumas[-1].astype(int)).mean()
    assert diff > 2, f"the picture does not change (mean luma difference {diff:.2f})"


async def test_synthetic_camera_sends_jpegs_only_while_watched(
    stack: Stack, start_cameras: EdgeFactory
) -> None:
    (cam,), edge = start_cameras(SYNTH)
    # Nobody has asked for JPEGs yet: the edge makes none.
    assert sent_over_heartbeats(stack, cam, 3) == [0, 0, 0]

    parts = await collect(stack, cam, 15)
    check_stream(parts, 640, 360)  # 1280×720 scaled to the relay's max_width, same aspect
    wait_log(edge, r"jpeg wanted camera=" + cam)
    wait_log(stack.api.process, r'msg="jpeg demand started" camera=' + cam)

    # The only viewer left: demand stops, and so does the edge.
    wait_log(stack.api.process, r'msg="jpeg demand stopped" camera=' + cam)
    stopped_at = wait_jpeg_sending_stops(stack, cam)
    assert stopped_at >= 15
    assert set(sent_over_heartbeats(stack, cam, 3)) == {stopped_at}
    wait_log(edge, r"jpeg not wanted camera=" + cam)
    assert "h264 decoder opened" not in log_text(edge), "synthetic pictures need no decoder"


async def test_snapshot_is_a_fresh_jpeg_and_is_kept(
    stack: Stack, start_cameras: EdgeFactory
) -> None:
    (cam,), _edge = start_cameras(SYNTH)
    wait_status(stack, cam, lambda s: s["online"])
    with stack.api.client() as c:
        # Nothing was ever asked for: the first snapshot waits for the edge's first JPEG.
        resp = c.get(f"/api/cameras/{cam}/snapshot.jpg")
        assert resp.status_code == 200, resp.text
        assert resp.headers["content-type"] == "image/jpeg"
        assert float(resp.headers["x-snapshot-age"]) < 5
        assert resp.headers["last-modified"].endswith("GMT")
        image = Image.open(io.BytesIO(resp.content))
        assert (image.format, image.size) == ("JPEG", (640, 360))
        listed = {cam_["id"]: cam_ for cam_ in c.get("/api/cameras").json()}
        assert listed[cam]["last_snapshot_at"] is not None
        assert c.get(f"/api/cameras/{cam}").json()["last_snapshot_at"] is not None
    stored = stack.api.data_dir / "snapshots" / f"{cam}.jpg"
    deadline = time.monotonic() + 30
    while not stored.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert Image.open(stored).format == "JPEG"


def start_file_camera(stack: Stack, tmp_path: Path, clip: Path, detect: str) -> tuple[str, Any]:
    """One file camera with a ``[camera.detect]`` table of its own."""
    cam, credential = create_camera(stack.api, "file camera")
    config = write_edge_config(
        tmp_path / "edge.toml",
        stack.api.url,
        [EdgeCamera(cam, credential, {"kind": "file", "path": str(clip)})],
        heartbeat_interval_s=1.0,
        data_dir=str(tmp_path / "state"),
    )
    config.write_text(config.read_text() + f"[camera.detect]\n{detect}\n")
    edge = start_edge(tmp_path, config)
    stack.edges.append(edge)
    return cam, edge


async def test_file_camera_without_detection_is_decoded_only_while_watched(
    stack: Stack, tmp_path: Path
) -> None:
    clip = make_h264_file(tmp_path / "clip.mp4", width=960, height=540, fps=30, seconds=4, gop=30)
    cam, edge = start_file_camera(stack, tmp_path, clip, "enabled = false")
    wait_status(stack, cam, lambda s: s["online"])
    assert "h264 decoder opened" not in log_text(edge)

    parts = await collect(stack, cam, 12)
    check_stream(parts, 640, 360)
    wait_log(edge, r"h264 decoder opened camera=" + cam)
    # Unwatched, the decoder is dropped.
    wait_log(edge, r"h264 decoder closed camera=" + cam + r" why='?not wanted")


async def test_file_camera_with_detection_shares_one_decoder(stack: Stack, tmp_path: Path) -> None:
    clip = make_h264_file(tmp_path / "clip.mp4", width=960, height=540, fps=30, seconds=4, gop=30)
    cam, edge = start_file_camera(stack, tmp_path, clip, "motion_events = true")
    # Motion needs pictures whether or not anyone watches: decoded from the start.
    wait_log(edge, r"h264 decoder opened camera=" + cam)
    check_stream(await collect(stack, cam, 12), 640, 360)
    # MJPEG came from the same decoder: it was never opened a second time.
    assert len(re.findall(r"h264 decoder opened camera=" + cam, log_text(edge))) == 1


async def test_twenty_viewers_get_every_frame_while_a_slow_one_lags(
    stack: Stack, start_cameras: EdgeFactory
) -> None:
    (cam,), _edge = start_cameras(SYNTH)
    wait_status(stack, cam, lambda s: s["online"])
    stop_slow = asyncio.Event()
    slow = asyncio.create_task(
        slow_reader("127.0.0.1", stack.api.port, ticket_url(stack, cam), stop_slow)
    )
    go = asyncio.Event()
    ready = [asyncio.Event() for _ in range(20)]
    viewers = [
        asyncio.create_task(watch_window(stack.api.url, ticket_url(stack, cam), 8.0, r, go))
        for r in ready
    ]
    try:
        # All twenty are streaming at once before the window opens.
        await asyncio.wait_for(asyncio.gather(*(r.wait() for r in ready)), 60)
        go.set()
        results = await asyncio.wait_for(asyncio.gather(*viewers), 60)
    finally:
        stop_slow.set()
        for task in viewers:
            task.cancel()
    slow_bytes = await slow

    for result in results:
        seqs = [p.seq or 0 for p in result.parts]
        assert seqs == sorted(seqs)
        assert 4.0 <= result.fps <= 6.5, "about 5 fps"
    shares = sorted(r.delivered for r in results)
    assert shares[0] >= 0.95, f"delivered shares {shares[:5]}…"
    assert statistics.median(shares) >= 0.99
    # The slow one got far less than the others (it cannot read 5 JPEGs a second).
    fast_bytes = min(sum(len(p.body) for p in r.parts) for r in results)
    assert 0 < slow_bytes < fast_bytes / 2


async def test_edge_reconnects_after_the_api_restarts(
    stack: Stack, start_cameras: EdgeFactory
) -> None:
    (cam,), edge = start_cameras(SYNTH)
    check_stream(await collect(stack, cam, 5), 640, 360)
    wait_log(edge, r"control link up camera=" + cam)

    stack.api.stop()
    stack.api.start()
    wait_log(edge, r"control link up camera=" + cam, count=2, timeout=60)
    check_stream(await collect(stack, cam, 10), 640, 360)

    # An offline camera's last picture survives an API restart.
    edge.stop()
    stack.api.stop()
    stack.api.start()
    with stack.api.client() as c:
        resp = c.get(f"/api/cameras/{cam}/snapshot.jpg")
        assert resp.status_code == 200, resp.text
        assert Image.open(io.BytesIO(resp.content)).size == (640, 360)
        assert float(resp.headers["x-snapshot-age"]) > 0
        cameras = {c_["id"]: c_ for c_ in c.get("/api/cameras").json()}
        assert cameras[cam]["last_snapshot_at"] is not None

"""Clip uploads from the edge's sender to the real API process (contract 5): resumable
after a connection broken mid-chunk and after an API restart, SHA-256 checked end to end,
paced by the bandwidth limit, and the stored clip is byte for byte the edge's file.

Real parts: the API process (`python -m app`, SQLite, local media store), the edge's
ClipUploader and ServerClient, a TCP proxy that resets connections like a flaky uplink.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from pathlib import Path

import httpx
import pytest

from edge.events.message import EventMessage, with_snapshot
from edge.uplink import ServerClient
from edge.uploads.queue import UploadQueue
from edge.uploads.ratelimit import TokenBucket
from edge.uploads.sender import ClipUploader
from scripts.devstack import Stack, create_camera
from scripts.tcpproxy import TcpProxy

pytestmark = pytest.mark.live

S = 1_000_000


@pytest.fixture
def camera(stack: Stack) -> tuple[str, str]:
    return create_camera(stack.api, f"upload {uuid.uuid4().hex[:6]}")


def clip_file(path: Path, size: int) -> tuple[Path, str]:
    """A file of ``size`` pseudo-random bytes (the server checks sizes and hashes, not
    the container) and its SHA-256."""
    data = hashlib.shake_256(path.name.encode()).digest(size)
    path.write_bytes(data)
    return path, hashlib.sha256(data).hexdigest()


async def post_event(client: ServerClient) -> str:
    now = int(time.time() * S)
    event = EventMessage(
        event_id=str(uuid.uuid4()),
        seq=0,
        phase="start",
        label="person",
        object="person",
        score=0.9,
        box=(0.1, 0.1, 0.5, 0.9),
        zones=(),
        started_us=now - 20 * S,
        at_us=now - 20 * S,
    )
    await client.post_event(with_snapshot(event.body(), None))
    return event.event_id


def queue_clip(queue: UploadQueue, event_id: str, path: Path, sha: str) -> None:
    now = int(time.time() * S)
    queue.add(
        event_id=event_id,
        path=path,
        size=path.stat().st_size,
        sha256=sha,
        started_us=now - 25 * S,
        ended_us=now - 5 * S,
        duration_s=20.0,
    )


def stored_clip(stack: Stack, event_id: str) -> bytes:
    with stack.api.client() as c:
        event = c.get(f"/api/events/{event_id}").json()
        assert event["clip"] is not None, event
        resp = c.get(event["clip"]["url"])
    assert resp.status_code == 200
    return resp.content


async def run_until(uploader: ClipUploader, check: object, timeout: float = 60.0) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(uploader.run(stop))
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if callable(check) and check():
                return
            if task.done():
                task.result()
            await asyncio.sleep(0.05)
        raise AssertionError(f"not done after {timeout}s: {uploader.stats}")
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def test_a_clip_resumes_after_the_connection_breaks_mid_chunk(
    stack: Stack, camera: tuple[str, str], tmp_path: Path
) -> None:
    cam_id, credential = camera
    proxy = TcpProxy(stack.api.port)
    await proxy.start()
    client = ServerClient(proxy.url, cam_id, credential)
    queue = UploadQueue(tmp_path / "outbox.sqlite3")
    try:
        event_id = await post_event(client)
        path, sha = clip_file(tmp_path / "clip.mp4", 3 * 1024 * 1024 + 123)
        queue_clip(queue, event_id, path, sha)
        uploader = ClipUploader(
            cam_id, queue, client, chunk_bytes=512 * 1024, first_s=0.1, cap_s=0.5,
            delete_after_upload=False,
        )  # fmt: skip
        # Let 1.3 MiB through, then reset the connection in the middle of a chunk.
        proxy.cut_after(1_300_000)
        await run_until(uploader, lambda: uploader.stats.uploaded == 1)
    finally:
        await client.aclose()
        await proxy.close()
    assert proxy.cuts == 1
    assert uploader.stats.resumed == 1, uploader.stats
    assert uploader.stats.retries >= 1
    # Resumed, not restarted: well under twice the file went over the wire.
    assert uploader.stats.bytes_sent < 1.5 * path.stat().st_size
    assert hashlib.sha256(stored_clip(stack, event_id)).hexdigest() == sha
    assert queue.depth().queued == 0
    queue.close()


async def test_a_clip_survives_an_api_restart_mid_upload(
    stack: Stack, camera: tuple[str, str], tmp_path: Path
) -> None:
    cam_id, credential = camera
    client = ServerClient(stack.api.url, cam_id, credential)
    queue = UploadQueue(tmp_path / "outbox.sqlite3")
    try:
        event_id = await post_event(client)
        path, sha = clip_file(tmp_path / "clip.mp4", 2 * 1024 * 1024)
        queue_clip(queue, event_id, path, sha)
        # 1 MB/s: the upload takes about two seconds, the restart lands inside it.
        uploader = ClipUploader(
            cam_id, queue, client, chunk_bytes=128 * 1024, first_s=0.2, cap_s=1.0,
            bucket=TokenBucket(1_000_000, burst_bytes=128 * 1024),
        )  # fmt: skip
        stop = asyncio.Event()
        task = asyncio.create_task(uploader.run(stop))
        deadline = time.monotonic() + 30
        while uploader.stats.current_sent < 512 * 1024:
            assert time.monotonic() < deadline, uploader.stats
            assert not task.done(), uploader.stats
            await asyncio.sleep(0.02)
        await asyncio.to_thread(stack.api.stop)
        await asyncio.to_thread(stack.api.start)
        while uploader.stats.uploaded < 1:
            assert time.monotonic() < deadline + 30, uploader.stats
            assert not task.done(), uploader.stats
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.wait_for(task, 10)
    finally:
        await client.aclose()
    assert uploader.stats.resumed == 1, uploader.stats
    assert hashlib.sha256(stored_clip(stack, event_id)).hexdigest() == sha
    # Uploaded: the edge's copy is gone, the queue is empty.
    assert not path.exists()
    assert queue.depth().queued == 0
    queue.close()


async def test_the_bandwidth_limit_paces_the_upload(
    stack: Stack, camera: tuple[str, str], tmp_path: Path
) -> None:
    cam_id, credential = camera
    client = ServerClient(stack.api.url, cam_id, credential)
    queue = UploadQueue(tmp_path / "outbox.sqlite3")
    try:
        event_id = await post_event(client)
        path, sha = clip_file(tmp_path / "clip.mp4", 1_500_000)
        queue_clip(queue, event_id, path, sha)
        uploader = ClipUploader(
            cam_id, queue, client, chunk_bytes=100_000,
            bucket=TokenBucket(500_000, burst_bytes=100_000),
        )  # fmt: skip
        started = time.monotonic()
        await run_until(uploader, lambda: uploader.stats.uploaded == 1)
        elapsed = time.monotonic() - started
    finally:
        await client.aclose()
    # 1.5 MB at 500 kB/s with a 100 kB burst: at least 2.8 s.
    assert elapsed >= 2.7, elapsed
    assert hashlib.sha256(stored_clip(stack, event_id)).hexdigest() == sha
    queue.close()


async def test_a_clip_whose_event_is_unknown_waits_then_is_buried(
    stack: Stack, camera: tuple[str, str], tmp_path: Path
) -> None:
    cam_id, credential = camera
    client = ServerClient(stack.api.url, cam_id, credential)
    queue = UploadQueue(tmp_path / "outbox.sqlite3")
    try:
        path, sha = clip_file(tmp_path / "clip.mp4", 10_000)
        queue_clip(queue, str(uuid.uuid4()), path, sha)
        uploader = ClipUploader(
            cam_id, queue, client, first_s=0.05, cap_s=0.1, unknown_event_attempts=3
        )
        await run_until(uploader, lambda: uploader.stats.dead == 1)
    finally:
        await client.aclose()
    assert uploader.stats.retries == 2
    dead = queue.dead_rows()
    assert len(dead) == 1
    assert dead[0][1] == 404
    assert path.exists()  # kept for an operator
    queue.close()


async def test_another_cameras_credential_cannot_touch_the_upload(
    stack: Stack, camera: tuple[str, str], tmp_path: Path
) -> None:
    cam_id, credential = camera
    other_id, other_credential = create_camera(stack.api, "intruder")
    client = ServerClient(stack.api.url, cam_id, credential)
    try:
        event_id = await post_event(client)
        path, sha = clip_file(tmp_path / "clip.mp4", 10_000)
        started = await client.start_upload(
            {
                "event_id": event_id, "kind": "clip", "size": 10_000, "sha256": sha,
                "content_type": "video/mp4", "started_at": "2030-01-01T00:00:00Z",
                "ended_at": "2030-01-01T00:00:10Z", "duration_s": 10.0,
            }
        )  # fmt: skip
    finally:
        await client.aclose()
    data = path.read_bytes()
    async with httpx.AsyncClient(base_url=stack.api.url) as http:
        resp = await http.put(
            f"/api/edge/uploads/{started['upload_id']}",
            content=data,
            headers={
                "Authorization": f"Bearer {other_credential}",
                "Content-Range": f"bytes 0-{len(data) - 1}/{len(data)}",
                "X-Chunk-SHA256": sha,
            },
        )
    assert resp.status_code in (403, 404), resp.text
    with stack.api.client() as c:
        assert c.get(f"/api/events/{event_id}").json()["clip"] is None
    assert other_id != cam_id

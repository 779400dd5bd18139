"""edge.uploads.queue: durable across a crash, progress, replace, bury; the token bucket."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edge.events.outbox import Outbox
from edge.uploads.queue import UploadQueue
from edge.uploads.ratelimit import TokenBucket

S = 1_000_000
T0 = 1_700_000_000 * S


def add(queue: UploadQueue, event_id: str, path: Path, size: int = 100) -> None:
    queue.add(
        event_id=event_id,
        path=path,
        size=size,
        sha256="a" * 64,
        started_us=T0,
        ended_us=T0 + 20 * S,
        duration_s=20.0,
    )


def test_rows_come_out_oldest_first_with_progress(tmp_path: Path) -> None:
    queue = UploadQueue(tmp_path / "outbox.sqlite3")
    add(queue, "e1", tmp_path / "e1.mp4", 1000)
    add(queue, "e2", tmp_path / "e2.mp4", 500)
    first = queue.oldest()
    assert first is not None
    assert first.event_id == "e1"
    assert first.upload_id is None
    queue.progress(first.id, "up-1", 400)
    again = queue.oldest()
    assert again is not None
    assert (again.upload_id, again.confirmed) == ("up-1", 400)
    depth = queue.depth()
    assert (depth.queued, depth.bytes_left, depth.dead) == (2, 600 + 500, 0)
    queue.done(first.id)
    second = queue.oldest()
    assert second is not None
    assert second.event_id == "e2"


def test_a_new_clip_of_the_same_event_replaces_the_row_and_its_progress(tmp_path: Path) -> None:
    queue = UploadQueue(tmp_path / "outbox.sqlite3")
    add(queue, "e1", tmp_path / "a.mp4", 1000)
    row = queue.oldest()
    assert row is not None
    queue.progress(row.id, "up-1", 800)
    add(queue, "e1", tmp_path / "b.mp4", 2000)
    row = queue.oldest()
    assert row is not None
    assert (row.path.name, row.size, row.upload_id, row.confirmed) == ("b.mp4", 2000, None, 0)
    assert queue.depth().queued == 1


def test_bury_keeps_the_reason(tmp_path: Path) -> None:
    queue = UploadQueue(tmp_path / "outbox.sqlite3")
    add(queue, "e1", tmp_path / "a.mp4")
    row = queue.oldest()
    assert row is not None
    queue.bury(row.id, 413, "too large")
    assert queue.oldest() is None
    assert queue.dead_rows() == [("e1", 413, "too large")]
    assert queue.depth().dead == 1


def test_shares_the_outbox_file_with_event_messages(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    outbox = Outbox(path, camera_id="cam")
    queue = UploadQueue(path)
    add(queue, "e1", tmp_path / "a.mp4")
    assert not outbox.event_pending("e1")
    assert queue.depth().queued == 1
    outbox.close()
    queue.close()


def test_a_queued_clip_survives_kill_9(tmp_path: Path) -> None:
    """The row is committed (synchronous=FULL) before add() returns."""
    db = tmp_path / "outbox.sqlite3"
    script = f"""
import os, signal
from pathlib import Path
from edge.uploads.queue import UploadQueue
q = UploadQueue(Path({str(db)!r}))
q.add(event_id="e1", path=Path("/x.mp4"), size=5, sha256="b" * 64, started_us=1,
      ended_us=2, duration_s=1.0)
os.kill(os.getpid(), signal.SIGKILL)
"""
    proc = subprocess.run([sys.executable, "-c", script], cwd=Path.cwd(), check=False)
    assert proc.returncode == -9
    row = UploadQueue(db).oldest()
    assert row is not None
    assert row.event_id == "e1"
    assert row.size == 5


async def test_token_bucket_holds_the_average_rate() -> None:
    bucket = TokenBucket(200_000, burst_bytes=50_000)
    started = time.monotonic()
    for _ in range(10):
        await bucket.take(50_000)
    elapsed = time.monotonic() - started
    # 500 kB at 200 kB/s with a 50 kB burst: at least 2.25 s.
    assert elapsed >= 2.2
    assert elapsed < 6.0


async def test_token_bucket_shared_by_two_senders() -> None:
    bucket = TokenBucket(400_000, burst_bytes=40_000)

    async def send() -> None:
        for _ in range(10):
            await bucket.take(40_000)

    started = time.monotonic()
    await asyncio.gather(send(), send())
    assert time.monotonic() - started >= 1.8  # 800 kB at 400 kB/s, less one burst


async def test_no_limit_never_waits() -> None:
    bucket = TokenBucket(0)
    started = time.monotonic()
    for _ in range(1000):
        await bucket.take(1 << 20)
    assert time.monotonic() - started < 0.5


def test_negative_rate_is_refused() -> None:
    with pytest.raises(ValueError, match="rate"):
        TokenBucket(-1)

"""Sends a camera's queued clips to the server (contract 5), oldest first, resumably.

For each clip: ``POST /api/edge/uploads`` tells the server the clip's size and SHA-256 and
returns how many bytes it already has (0 for a new upload; more after a broken connection
or a restart of either side), then ``PUT`` appends chunks from that offset, each with its own
SHA-256, paced by the shared bandwidth limit. The server checks the whole file's SHA-256
before it stores the clip, so what plays on the dashboard is byte for byte what the edge cut.

* Network errors, 5xx, 429, 507 (server disk full): retried with backoff and jitter for as
  long as it takes; the next attempt resumes from the server's offset.
* 409 offset mismatch: continue from the offset the server gives.
* 404 unknown_event: the event message is not there yet; the clip waits (a clip is sent
  only after its event's messages left the outbox, so this is rare) — retried with backoff,
  buried after ``unknown_event_attempts``.
* 404 unknown_upload / 422 checksum_mismatch: start over with a new POST (after re-reading
  the file's SHA-256: a clip changed on disk is sent as it is now).
* 401/403: paused, like event delivery; other 4xx: the clip goes to ``dead_uploads``.
* A clip file that vanished (removed by hand, or by retention on a full card) is buried
  with that reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from edge.backoff import Backoff
from edge.uplink import CredentialRejected, ServerError
from edge.uploads.queue import QueuedUpload, UploadQueue
from edge.uploads.ratelimit import TokenBucket

log = logging.getLogger("edge.upload")


class UploadClient(Protocol):
    """The two server calls the sender needs (edge.uplink.ServerClient has them)."""

    async def start_upload(self, body: dict[str, Any]) -> dict[str, Any]: ...

    async def upload_chunk(
        self, upload_id: str, start: int, chunk: bytes, total: int, chunk_sha256: str
    ) -> dict[str, Any]: ...


@dataclass
class UploadStats:
    """Counters since start, and the clip being sent (the edge's status shows them)."""

    uploaded: int = 0
    bytes_sent: int = 0
    retries: int = 0
    dead: int = 0
    resumed: int = 0  # uploads that continued from a non-zero offset
    paused: bool = False
    current_event: str | None = None
    current_sent: int = 0
    current_size: int = 0
    last_error: str | None = None


def iso_us(us: int) -> str:
    """Wall-clock microseconds as ISO-8601 UTC."""
    when = dt.datetime.fromtimestamp(us / 1e6, tz=dt.UTC)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def file_sha256(path: Path) -> tuple[int, str]:
    """(size, SHA-256 hex) of a file, read in 1 MiB pieces."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
            size += len(block)
    return size, digest.hexdigest()


def _read_at(path: Path, offset: int, size: int) -> bytes:
    with path.open("rb") as f:
        f.seek(offset)
        return f.read(size)


class _Restart(Exception):
    """Start this clip over with a new POST."""


class ClipUploader:
    """The upload task of one camera."""

    def __init__(
        self,
        camera_id: str,
        queue: UploadQueue,
        client: UploadClient,
        *,
        bucket: TokenBucket | None = None,
        chunk_bytes: int = 1 << 20,
        event_pending: Callable[[str], bool] | None = None,
        delete_after_upload: bool = True,
        first_s: float = 1.0,
        cap_s: float = 60.0,
        refused_retry_s: float = 60.0,
        unknown_event_attempts: int = 30,
        on_uploaded: Callable[[QueuedUpload], Awaitable[None] | None] | None = None,
    ) -> None:
        if chunk_bytes < 1024:
            raise ValueError("chunk_bytes must be ≥ 1 KiB")
        self.camera_id = camera_id
        self.queue = queue
        self.client = client
        self.bucket = bucket or TokenBucket(0)
        self.chunk_bytes = chunk_bytes
        self.event_pending = event_pending or (lambda _event_id: False)
        self.delete_after_upload = delete_after_upload
        self.stats = UploadStats()
        self.cap_s = cap_s
        self.refused_retry_s = refused_retry_s
        self.unknown_event_attempts = unknown_event_attempts
        self._backoff = Backoff(first=first_s, cap=cap_s)
        self._on_uploaded = on_uploaded
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = asyncio.Event()
        self._rate_window: list[tuple[float, int]] = []

    def notify(self) -> None:
        """A clip was queued (any thread): look now instead of at the next poll."""
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._wake.set)

    def rate_kbps(self) -> float:
        """Upload rate over the last 10 s, kbit/s."""
        now = time.monotonic()
        self._rate_window = [(t, n) for t, n in self._rate_window if now - t < 10.0]
        return sum(n for _, n in self._rate_window) * 8 / 1000 / 10.0

    async def _sleep(self, stop: asyncio.Event, seconds: float, *, wakeable: bool) -> None:
        waits = [asyncio.ensure_future(stop.wait())]
        if wakeable:
            waits.append(asyncio.ensure_future(self._wake.wait()))
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
        self._wake.clear()

    async def run(self, stop: asyncio.Event, *, idle_poll_s: float = 30.0) -> None:
        """Send until ``stop``; what is left goes on the next start."""
        self._loop = asyncio.get_running_loop()
        while not stop.is_set():
            row = await asyncio.to_thread(self.queue.oldest)
            if row is None:
                await self._sleep(stop, idle_poll_s, wakeable=True)
                continue
            if await asyncio.to_thread(self.event_pending, row.event_id):
                # Its event is still in the outbox: the server would not know it yet.
                await self._sleep(stop, 1.0, wakeable=True)
                continue
            delay = await self._send(row, stop)
            if delay:
                await self._sleep(stop, delay, wakeable=False)
        self.stats.current_event = None

    async def _send(self, row: QueuedUpload, stop: asyncio.Event) -> float:
        """One attempt at one clip; returns how long to wait before the next attempt."""
        if not row.path.is_file():
            return await self._bury(row, None, f"clip file missing: {row.path}")
        self.stats.current_event = row.event_id
        self.stats.current_size = row.size
        self.stats.current_sent = row.confirmed
        try:
            await self._upload(row, stop)
        except _Restart:
            self._backoff.reset()
            return 0.0
        except CredentialRejected as exc:
            if not self.stats.paused:
                log.error(
                    "clip upload paused camera=%s event=%s error=%s action='re-enroll the "
                    "camera; clips wait in the outbox'",
                    self.camera_id,
                    row.event_id,
                    exc,
                )
            self.stats.paused = True
            self.stats.last_error = str(exc)
            return self.refused_retry_s
        except ServerError as exc:
            return await self._failed(row, exc)
        except OSError as exc:
            return await self._bury(row, None, f"cannot read the clip: {exc}")
        return 0.0

    async def _upload(self, row: QueuedUpload, stop: asyncio.Event) -> None:
        body = {
            "event_id": row.event_id,
            "kind": row.kind,
            "size": row.size,
            "sha256": row.sha256,
            "content_type": "video/mp4",
            "started_at": iso_us(row.started_us),
            "ended_at": iso_us(row.ended_us),
            "duration_s": round(row.duration_s, 3),
        }
        reply = await self.client.start_upload(body)
        upload_id = str(reply["upload_id"])
        offset = int(reply.get("offset", 0))
        if offset and not reply.get("complete"):
            self.stats.resumed += 1
            log.info(
                "clip upload resumed camera=%s event=%s offset=%d size=%d",
                self.camera_id,
                row.event_id,
                offset,
                row.size,
            )
        started = time.monotonic()
        first_offset = offset
        complete = bool(reply.get("complete"))
        while not complete:
            if stop.is_set():
                await asyncio.to_thread(self.queue.progress, row.id, upload_id, offset)
                return
            size = min(self.chunk_bytes, row.size - offset)
            chunk = await asyncio.to_thread(_read_at, row.path, offset, size)
            if len(chunk) != size:
                raise OSError(f"clip shorter on disk ({offset + len(chunk)} < {row.size} bytes)")
            await self.bucket.take(len(chunk))
            try:
                reply = await self.client.upload_chunk(
                    upload_id, offset, chunk, row.size, hashlib.sha256(chunk).hexdigest()
                )
            except ServerError as exc:
                await self._handle_chunk_error(row, exc)
                # 409: the server says where it is; go on from there.
                offset = _offset_of(exc.data, offset)
                continue
            self._rate_window.append((time.monotonic(), len(chunk)))
            self.stats.bytes_sent += len(chunk)
            offset = int(reply.get("offset", offset + len(chunk)))
            complete = bool(reply.get("complete"))
            self.stats.current_sent = offset
            # Progress on disk every few chunks is enough: the server's offset is the truth.
            await asyncio.to_thread(self.queue.progress, row.id, upload_id, offset)
        await self._uploaded(row, time.monotonic() - started, row.size - first_offset)

    async def _handle_chunk_error(self, row: QueuedUpload, exc: ServerError) -> None:
        code = exc.code
        if exc.status == 409 and code == "offset_mismatch" and _offset_of(exc.data, -1) >= 0:
            log.info(
                "clip upload offset corrected camera=%s event=%s server_offset=%s",
                self.camera_id,
                row.event_id,
                _offset_of(exc.data, -1),
            )
            return
        if exc.status == 404 or (exc.status == 422 and code == "checksum_mismatch"):
            log.warning(
                "clip upload restarts camera=%s event=%s status=%s error=%s",
                self.camera_id,
                row.event_id,
                exc.status,
                exc,
            )
            await asyncio.to_thread(self._recheck_file, row)
            await asyncio.to_thread(self.queue.failed, row.id, str(exc))
            raise _Restart from exc
        if exc.status == 422 and code == "chunk_checksum_mismatch":
            # Damaged on the way: nothing was appended; retry it after a backoff.
            raise ServerError(str(exc), None) from exc
        raise exc

    def _recheck_file(self, row: QueuedUpload) -> None:
        size, sha = file_sha256(row.path)
        if (size, sha) != (row.size, row.sha256):
            log.warning(
                "clip changed on disk camera=%s event=%s size=%d->%d action='sending it as it is'",
                self.camera_id,
                row.event_id,
                row.size,
                size,
            )
            self.queue.update_checksum(row.id, size, sha)

    async def _uploaded(self, row: QueuedUpload, seconds: float, sent: int) -> None:
        await asyncio.to_thread(self.queue.done, row.id)
        if self.delete_after_upload:
            with contextlib.suppress(FileNotFoundError):
                await asyncio.to_thread(row.path.unlink)
        self.stats.uploaded += 1
        self.stats.current_event = None
        if self.stats.paused:
            log.info("clip upload resumed camera=%s", self.camera_id)
            self.stats.paused = False
        self._backoff.reset()
        log.info(
            "clip uploaded camera=%s event=%s bytes=%d sent=%d seconds=%.1f kbps=%.0f",
            self.camera_id,
            row.event_id,
            row.size,
            sent,
            seconds,
            sent * 8 / 1000 / max(seconds, 1e-3),
        )
        if self._on_uploaded is not None:
            result = self._on_uploaded(row)
            if result is not None:
                await result

    async def _bury(self, row: QueuedUpload, status: int | None, error: str) -> float:
        self.stats.dead += 1
        self.stats.current_event = None
        log.error(
            "clip upload given up camera=%s event=%s status=%s error=%s action='kept in "
            "dead_uploads; the file stays on the edge'",
            self.camera_id,
            row.event_id,
            status,
            error,
        )
        await asyncio.to_thread(self.queue.bury, row.id, status, error)
        self._backoff.reset()
        return 0.0

    async def _failed(self, row: QueuedUpload, exc: ServerError) -> float:
        status = exc.status
        self.stats.last_error = str(exc)
        unknown_event = status == 404 and exc.code == "unknown_event"
        if unknown_event and row.attempts + 1 >= self.unknown_event_attempts:
            return await self._bury(row, status, str(exc))
        permanent = status is not None and 400 <= status < 500 and status not in (408, 429)
        if permanent and not unknown_event:
            return await self._bury(row, status, str(exc))
        self.stats.retries += 1
        await asyncio.to_thread(self.queue.failed, row.id, str(exc))
        delay = self._backoff.next()
        if exc.retry_after_s is not None:
            delay = min(max(delay, exc.retry_after_s), max(self.cap_s, 1.0) * 5)
        attempts = self._backoff.attempt
        if attempts == 1 or attempts % 10 == 0:
            log.warning(
                "clip upload failed camera=%s event=%s attempts=%d error=%s retry_s=%.1f",
                self.camera_id,
                row.event_id,
                attempts,
                exc,
                delay,
            )
        return delay

    def health(self) -> dict[str, Any]:
        """Heartbeat fields about the clip being sent (the queue's depth is added by the caller)."""
        stats = self.stats
        return {
            "upload_event": stats.current_event,
            "upload_sent": stats.current_sent if stats.current_event else None,
            "upload_size": stats.current_size if stats.current_event else None,
            "upload_kbps": round(self.rate_kbps(), 1),
            "uploads_paused": stats.paused,
        }


def _offset_of(data: dict[str, Any], default: int) -> int:
    """The server's offset from an error body (top level or inside ``error``)."""
    for place in (data, data.get("error")):
        if isinstance(place, dict) and isinstance(place.get("offset"), int):
            return int(place["offset"])
    return default

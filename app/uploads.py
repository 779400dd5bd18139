"""Resumable clip uploads from edges (contract 5): staging, checksums, hand-over to storage.

An upload is two files under ``$LIVECAM_DATA/uploads/``: ``<id>.json`` (what the edge
announced: event, size, SHA-256, times) and ``<id>.part`` (the bytes so far). The upload's
offset is the size of the ``.part`` file, and every chunk is fsynced before it is
acknowledged, so the offset the server gives out is always on disk: after a broken
connection, or a restart of either side, the edge continues from there.

* A chunk is checked against its own SHA-256 before anything is written, so a damaged
  chunk appends nothing. A failed write (disk full) is truncated away.
* The whole file's SHA-256 is computed as chunks arrive (the hash state is kept in
  memory; after a server restart it is rebuilt once from the ``.part`` file). When the
  last byte is in and the hash matches, the file goes to the media store, the clip is
  recorded and attached to its event, and the staging files are removed. A mismatch drops
  the upload: the edge starts over.
* Requests for one upload are serialised by a lock per upload; starting uploads for one
  event by a lock per (camera, event, kind). All file and store I/O runs in threads.
* Uploads nobody touched for ``LIVECAM_UPLOAD_STALE_HOURS`` are removed by retention.

One API process owns the staging directory (several replicas need sticky routing of
``/api/edge/uploads`` by camera, or one upload node).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import weakref
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from app.clip_schemas import UploadStart
from app.clips import (
    ClipInfo,
    NewClip,
    attach_clip,
    event_of_camera,
    find_clip,
    find_clip_by_upload,
    storage_key,
)
from app.db import SessionFactory
from app.events import EventIngest, clip_out
from app.media_store import MediaStore, MediaStoreError, StorageFull
from app.models import Clip

log = logging.getLogger(__name__)

#: Largest chunk one PUT may carry.
MAX_CHUNK_BYTES = 16 * 1024 * 1024
#: Free space kept on the staging disk beyond what an upload still needs.
RESERVE_BYTES = 64 * 1024 * 1024
UPLOAD_ID = re.compile(r"^[0-9a-f]{32}$")
_HASH_BLOCK = 1024 * 1024


class UploadError(Exception):
    """A refusal the API reports as ``{"error": {"code", "message"}}`` (plus ``offset``
    for ``offset_mismatch``)."""

    def __init__(self, status: int, code: str, message: str, offset: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.offset = offset


def storage_full() -> UploadError:
    return UploadError(
        507, "storage_full", "The server's disk is full; try again later (nothing was kept)."
    )


def unknown_upload(upload_id: str) -> UploadError:
    return UploadError(
        404,
        "unknown_upload",
        f"No upload {upload_id!r} (expired, replaced or never started): POST again.",
    )


@dataclass(frozen=True, slots=True)
class ChunkRange:
    """``Content-Range: bytes START-END/TOTAL`` of one PUT (END inclusive)."""

    start: int
    end: int
    total: int

    @property
    def length(self) -> int:
        return self.end - self.start + 1


_CONTENT_RANGE = re.compile(r"^bytes (\d{1,19})-(\d{1,19})/(\d{1,19})$")


def parse_content_range(header: str | None) -> ChunkRange:
    """The chunk's range; UploadError 422 ``bad_range`` when missing or malformed."""
    match = _CONTENT_RANGE.match((header or "").strip())
    if match is None:
        raise UploadError(
            422, "bad_range", "Content-Range must be 'bytes START-END/TOTAL' (END inclusive)."
        )
    start, end, total = (int(g) for g in match.groups())
    if end < start or end >= total:
        raise UploadError(422, "bad_range", f"Content-Range {header!r} is not inside the file.")
    return ChunkRange(start, end, total)


@dataclass(frozen=True, slots=True)
class UploadMeta:
    """What the edge announced (``<id>.json``)."""

    upload_id: str
    camera_id: str
    event_id: str
    kind: str
    size: int
    sha256: str
    content_type: str
    started_at: str
    ended_at: str
    duration_s: float
    created_at: str

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.camera_id, self.event_id, self.kind)


@dataclass(eq=False)
class _Upload:
    meta: UploadMeta
    offset: int
    last_activity: datetime
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    hasher: Any = None  # hashlib sha256 of bytes 0..hashed
    hashed: int = 0
    dropped: bool = False


@dataclass(frozen=True, slots=True)
class StartResult:
    upload_id: str
    offset: int
    complete: bool


@dataclass(frozen=True, slots=True)
class Progress:
    offset: int
    complete: bool
    clip: dict[str, Any] | None = None


def free_bytes(directory: Path) -> int:
    """Free bytes on the file system of ``directory``."""
    return shutil.disk_usage(directory).free


def _write_all(f: Any, data: bytes) -> None:
    # One place for the write, so a test can make the disk "full" half-way through.
    f.write(data)


def _append_chunk(path: Path, offset: int, data: bytes) -> None:
    """Writes ``data`` at ``offset`` and fsyncs; on any error the file is cut back to
    ``offset`` (nothing of the chunk stays) and the error is raised."""
    with open(path, "r+b") as f:
        try:
            f.seek(offset)
            _write_all(f, data)
            f.truncate(offset + len(data))
            f.flush()
            os.fsync(f.fileno())
        except OSError:
            with contextlib.suppress(OSError):
                f.truncate(offset)
                f.flush()
                os.fsync(f.fileno())
            raise


def _hash_file(path: Path, length: int) -> Any:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        left = length
        while left > 0:
            block = f.read(min(_HASH_BLOCK, left))
            if not block:
                raise OSError(f"{path.name} is shorter than {length} bytes")
            digest.update(block)
            left -= len(block)
    return digest


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


class UploadManager:
    """Every unfinished upload of this server, and the steps of contract 5."""

    def __init__(
        self,
        directory: Path,
        store: MediaStore,
        factory: SessionFactory,
        ingest: EventIngest,
        clock: Callable[[], datetime],
        *,
        max_bytes: int,
        stale_after: timedelta,
    ) -> None:
        self.directory = directory
        self.store = store
        self._factory = factory
        self._ingest = ingest
        self._clock = clock
        self.max_bytes = max_bytes
        self.stale_after = stale_after
        self._uploads: dict[str, _Upload] = {}
        self._by_key: dict[tuple[str, str, str], str] = {}
        # Held while starting an upload for one (camera, event, kind); gone when unused.
        self._start_locks: weakref.WeakValueDictionary[tuple[str, str, str], asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )
        self.stored = 0

    # --- files ---------------------------------------------------------------------

    def _meta_path(self, upload_id: str) -> Path:
        return self.directory / f"{upload_id}.json"

    def _part_path(self, upload_id: str) -> Path:
        return self.directory / f"{upload_id}.part"

    def _remove_files(self, upload_id: str) -> None:
        self._part_path(upload_id).unlink(missing_ok=True)
        self._meta_path(upload_id).unlink(missing_ok=True)

    # --- startup -------------------------------------------------------------------

    async def load(self) -> int:
        """Reads the staging directory (after a restart: uploads continue where their
        ``.part`` files end); how many unfinished uploads there are."""
        found = await asyncio.to_thread(self._scan)
        now = self._clock()
        for meta, offset in found:
            known = self._by_key.get(meta.key)
            if known is not None:
                # Two uploads for one clip cannot both be current: keep the first one seen.
                await asyncio.to_thread(self._remove_files, meta.upload_id)
                continue
            # A restart starts the stale clock afresh (the file times may be from a
            # clock that differs from ours).
            self._register(_Upload(meta, offset, now))
        if found:
            log.info(
                "unfinished clip uploads found",
                extra={"uploads": len(self._uploads), "dir": str(self.directory)},
            )
        return len(self._uploads)

    def _scan(self) -> list[tuple[UploadMeta, int]]:
        self.directory.mkdir(parents=True, exist_ok=True)
        found: list[tuple[UploadMeta, int]] = []
        for path in sorted(self.directory.iterdir()):
            name = path.name
            if name.endswith(".tmp"):
                path.unlink(missing_ok=True)
                continue
            upload_id = name.split(".", 1)[0]
            if name.endswith(".part"):
                if not self._meta_path(upload_id).exists():
                    path.unlink(missing_ok=True)
                continue
            if not name.endswith(".json"):
                continue
            try:
                meta = UploadMeta(**json.loads(path.read_text(encoding="utf-8")))
                part = self._part_path(upload_id)
                if not part.exists():
                    part.touch()
                offset = part.stat().st_size
            except (OSError, ValueError, TypeError) as exc:
                log.warning(
                    "unreadable upload dropped", extra={"upload": upload_id, "error": str(exc)}
                )
                self._remove_files(upload_id)
                continue
            if meta.upload_id != upload_id or offset > meta.size:
                self._remove_files(upload_id)
                continue
            found.append((meta, offset))
        return found

    def _register(self, upload: _Upload) -> None:
        self._uploads[upload.meta.upload_id] = upload
        self._by_key[upload.meta.key] = upload.meta.upload_id

    def _forget(self, upload: _Upload) -> None:
        upload.dropped = True
        self._uploads.pop(upload.meta.upload_id, None)
        if self._by_key.get(upload.meta.key) == upload.meta.upload_id:
            del self._by_key[upload.meta.key]

    async def _discard(self, upload: _Upload) -> None:
        """Forgets the upload and deletes its files (hold ``upload.lock``)."""
        self._forget(upload)
        await asyncio.to_thread(self._remove_files, upload.meta.upload_id)

    # --- contract 5 ----------------------------------------------------------------

    async def start(self, camera_id: str, req: UploadStart) -> StartResult:
        """``POST /api/edge/uploads``: a new upload, the unfinished one to resume, or
        ``complete`` when this very clip is already stored."""
        if req.size > self.max_bytes:
            raise UploadError(
                413, "too_large", f"The clip is {req.size} bytes; at most {self.max_bytes}."
            )
        key = (camera_id, req.event_id, req.kind)
        lock = self._start_locks.get(key)
        if lock is None:
            lock = self._start_locks[key] = asyncio.Lock()
        async with lock:
            return await self._start_locked(camera_id, req, key)

    async def _start_locked(
        self, camera_id: str, req: UploadStart, key: tuple[str, str, str]
    ) -> StartResult:
        known, stored = await asyncio.to_thread(self._event_and_clip, camera_id, req.event_id)
        if not known:
            raise UploadError(
                404,
                "unknown_event",
                f"No event {req.event_id!r} of this camera (yet): send the event first.",
            )
        if stored is not None and (stored.sha256, stored.size) == (req.sha256, req.size):
            return StartResult(stored.upload_id, req.size, True)
        current_id = self._by_key.get(key)
        if current_id is not None:
            upload = self._uploads[current_id]
            if (upload.meta.sha256, upload.meta.size) == (req.sha256, req.size):
                upload.last_activity = self._clock()
                if upload.offset < upload.meta.size:
                    return StartResult(current_id, upload.offset, False)
                # Every byte is here but storing it failed before (disk full, S3 down).
                async with upload.lock:
                    if not upload.dropped:
                        await self._finish(upload)
                        return StartResult(current_id, req.size, True)
            else:
                async with upload.lock:
                    log.info(
                        "clip upload replaced",
                        extra={
                            "camera": camera_id,
                            "event": req.event_id,
                            "upload": current_id,
                            "offset": upload.offset,
                        },
                    )
                    await self._discard(upload)
        return await self._create(camera_id, req)

    def _event_and_clip(self, camera_id: str, event_id: str) -> tuple[bool, ClipInfo | None]:
        with self._factory() as session:
            if not event_of_camera(session, camera_id, event_id):
                return False, None
            return True, find_clip(session, event_id)

    async def _create(self, camera_id: str, req: UploadStart) -> StartResult:
        now = self._clock()
        meta = UploadMeta(
            upload_id=secrets.token_hex(16),
            camera_id=camera_id,
            event_id=req.event_id,
            kind=req.kind,
            size=req.size,
            sha256=req.sha256,
            content_type=req.content_type,
            started_at=req.started_at.isoformat(),
            ended_at=req.ended_at.isoformat(),
            duration_s=req.duration_s,
            created_at=now.isoformat(),
        )
        try:
            await asyncio.to_thread(self._create_files, meta)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                log.error(
                    "clip upload refused: disk full",
                    extra={"camera": camera_id, "event": req.event_id, "bytes": req.size},
                )
                raise storage_full() from None
            raise
        upload = _Upload(meta, 0, now)
        upload.hasher = hashlib.sha256()
        self._register(upload)
        log.info(
            "clip upload started",
            extra={
                "camera": camera_id,
                "event": req.event_id,
                "upload": meta.upload_id,
                "bytes": req.size,
            },
        )
        return StartResult(meta.upload_id, 0, False)

    def _create_files(self, meta: UploadMeta) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        if free_bytes(self.directory) < meta.size + RESERVE_BYTES:
            raise OSError(errno.ENOSPC, "not enough free space for the upload")
        part = self._part_path(meta.upload_id)
        try:
            part.touch()
            _write_json_atomic(self._meta_path(meta.upload_id), asdict(meta))
        except OSError:
            self._remove_files(meta.upload_id)
            raise

    async def status(self, camera_id: str, upload_id: str) -> Progress:
        """``GET /api/edge/uploads/<id>``."""
        upload = self._uploads.get(upload_id)
        if upload is not None and upload.meta.camera_id == camera_id:
            return Progress(upload.offset, False)
        done = await self._finished(camera_id, upload_id)
        if done is None:
            raise unknown_upload(upload_id)
        return Progress(done.size, True)

    async def _finished(self, camera_id: str, upload_id: str) -> Clip | None:
        if not UPLOAD_ID.match(upload_id):
            return None

        def find() -> Clip | None:
            with self._factory() as session:
                info = find_clip_by_upload(session, upload_id)
                if info is None or info.camera_id != camera_id:
                    return None
                return session.get(Clip, info.id)  # every column is loaded: usable after close

        return await asyncio.to_thread(find)

    async def precheck(self, camera_id: str, upload_id: str, rng: ChunkRange) -> Progress | None:
        """Checks a PUT before its body is read (no lock: the append checks again), so a
        chunk that cannot be taken is refused without receiving it. Returns the answer
        when the upload is finished already (the last chunk's answer was lost)."""
        upload = self._uploads.get(upload_id)
        if upload is None or upload.meta.camera_id != camera_id:
            done = await self._finished(camera_id, upload_id)
            if done is None or rng.total != done.size:
                raise unknown_upload(upload_id)
            return Progress(done.size, True, clip_out(done).model_dump(mode="json"))
        self._check_range(upload, rng)
        return None

    @staticmethod
    def _check_range(upload: _Upload, rng: ChunkRange) -> None:
        if rng.total != upload.meta.size:
            raise UploadError(
                422,
                "bad_range",
                f"Content-Range total {rng.total} is not the upload's size {upload.meta.size}.",
            )
        if rng.start != upload.offset and upload.offset < upload.meta.size:
            raise UploadError(
                409,
                "offset_mismatch",
                f"The server has {upload.offset} bytes; send from there.",
                offset=upload.offset,
            )

    async def append(
        self, camera_id: str, upload_id: str, rng: ChunkRange, chunk_sha256: str, data: bytes
    ) -> Progress:
        """``PUT /api/edge/uploads/<id>``: appends one verified chunk; after the last one,
        checks the whole file and stores the clip."""
        upload = self._uploads.get(upload_id)
        if upload is None or upload.meta.camera_id != camera_id:
            raise unknown_upload(upload_id)
        if len(data) != rng.length:
            raise UploadError(
                422, "bad_range", f"The body is {len(data)} bytes; Content-Range says {rng.length}."
            )
        async with upload.lock:
            if upload.dropped:
                raise unknown_upload(upload_id)
            upload.last_activity = self._clock()
            self._check_range(upload, rng)
            if upload.offset < upload.meta.size:
                await self._append_locked(upload, chunk_sha256.lower(), data)
            if upload.offset < upload.meta.size:
                return Progress(upload.offset, False)
            clip = await self._finish(upload)
            return Progress(upload.meta.size, True, clip)

    async def _append_locked(self, upload: _Upload, chunk_sha256: str, data: bytes) -> None:
        meta = upload.meta
        part = self._part_path(meta.upload_id)
        offset = upload.offset

        def write() -> bool:
            if hashlib.sha256(data).hexdigest() != chunk_sha256:
                return False
            if upload.hasher is None or upload.hashed != offset:
                # Restarted server: rebuild the running hash from what is on disk.
                upload.hasher = _hash_file(part, offset)
                upload.hashed = offset
            _append_chunk(part, offset, data)
            upload.hasher.update(data)
            upload.hashed = offset + len(data)
            return True

        try:
            ok = await asyncio.to_thread(write)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                log.error(
                    "clip chunk refused: disk full",
                    extra={
                        "camera": meta.camera_id,
                        "event": meta.event_id,
                        "upload": meta.upload_id,
                        "offset": offset,
                        "bytes": len(data),
                    },
                )
                raise storage_full() from None
            raise
        if not ok:
            log.warning(
                "clip chunk checksum mismatch",
                extra={"camera": meta.camera_id, "upload": meta.upload_id, "offset": offset},
            )
            raise UploadError(
                422, "chunk_checksum_mismatch", "The chunk's SHA-256 differs; nothing was kept."
            )
        upload.offset = offset + len(data)

    async def _finish(self, upload: _Upload) -> dict[str, Any]:
        """Checks the whole file, stores it, attaches the clip (hold ``upload.lock``)."""
        meta = upload.meta
        part = self._part_path(meta.upload_id)
        if upload.hasher is None or upload.hashed != meta.size:
            upload.hasher = await asyncio.to_thread(_hash_file, part, meta.size)
            upload.hashed = meta.size
        digest = upload.hasher.hexdigest()
        if digest != meta.sha256:
            log.warning(
                "clip upload checksum mismatch; upload dropped",
                extra={
                    "camera": meta.camera_id,
                    "event": meta.event_id,
                    "upload": meta.upload_id,
                    "expected": meta.sha256,
                    "got": digest,
                },
            )
            await self._discard(upload)
            raise UploadError(
                422,
                "checksum_mismatch",
                "The file's SHA-256 differs from the one announced; the upload was dropped: "
                "POST again.",
            )
        started_at = datetime.fromisoformat(meta.started_at)
        key = storage_key(meta.camera_id, meta.event_id, started_at, meta.sha256)
        try:
            await asyncio.to_thread(self.store.put_file, key, part, meta.content_type)
        except StorageFull:
            log.error(
                "clip not stored: media storage full",
                extra={"camera": meta.camera_id, "event": meta.event_id, "bytes": meta.size},
            )
            raise storage_full() from None
        except MediaStoreError as exc:
            log.error(
                "clip not stored: media storage failed",
                extra={"camera": meta.camera_id, "event": meta.event_id, "error": str(exc)},
            )
            raise UploadError(
                503, "storage_unavailable", "The media storage failed; try again later."
            ) from None
        clip = NewClip(
            camera_id=meta.camera_id,
            event_id=meta.event_id,
            storage_key=key,
            size=meta.size,
            sha256=meta.sha256,
            content_type=meta.content_type,
            started_at=started_at,
            ended_at=datetime.fromisoformat(meta.ended_at),
            duration_s=meta.duration_s,
            upload_id=meta.upload_id,
        )
        try:
            attached = await asyncio.to_thread(attach_clip, self._ingest, clip, self._clock())
        except Exception:
            # The stored copy has no row: remove it; the edge starts over.
            await asyncio.to_thread(self.store.delete, key)
            await self._discard(upload)
            raise
        await self._discard(upload)
        if attached is None:
            await asyncio.to_thread(self.store.delete, key)
            raise UploadError(
                404, "unknown_event", f"Event {meta.event_id!r} was deleted; the clip is not kept."
            )
        if attached.replaced_key is not None:
            await asyncio.to_thread(self.store.delete, attached.replaced_key)
        self.stored += 1
        log.info(
            "clip stored",
            extra={
                "camera": meta.camera_id,
                "event": meta.event_id,
                "bytes": meta.size,
                "store": self.store.kind,
                "replaced": attached.replaced_key is not None,
            },
        )
        clip_json: dict[str, Any] = attached.event["clip"]
        return clip_json

    # --- retention -----------------------------------------------------------------

    async def prune_stale(self) -> tuple[int, int]:
        """Removes uploads untouched for ``stale_after``: (uploads, staged bytes)."""
        cutoff = self._clock() - self.stale_after
        removed = freed = 0
        for upload in list(self._uploads.values()):
            if upload.last_activity >= cutoff or upload.lock.locked():
                continue
            async with upload.lock:
                if upload.dropped or upload.last_activity >= cutoff:
                    continue
                freed += upload.offset
                removed += 1
                log.info(
                    "stale clip upload removed",
                    extra={
                        "camera": upload.meta.camera_id,
                        "event": upload.meta.event_id,
                        "upload": upload.meta.upload_id,
                        "offset": upload.offset,
                        "bytes": upload.meta.size,
                    },
                )
                await self._discard(upload)
        return removed, freed

    @property
    def pending(self) -> int:
        """Unfinished uploads."""
        return len(self._uploads)

    def offset_of(self, upload_id: str) -> int | None:
        """The upload's offset (tests, health), or None when it is not unfinished."""
        upload = self._uploads.get(upload_id)
        return None if upload is None else upload.offset

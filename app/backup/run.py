"""One backup run: the server's data into a target, encrypted, incrementally.

What a run copies from the data directory (``$LIVECAM_DATA``, default ``./data``):

* the database: a consistent copy (``app/backup/database.py``), restored as
  ``livecam.db`` (SQLite) or ``postgresql.dump`` (PostgreSQL);
* ``media/`` (clips, when they are stored locally) and ``events/`` (event snapshots),
  the whole trees;
* clips kept in S3 (``LIVECAM_S3_BUCKET``; ``app/backup/s3media.py``): every object
  under the store's ``clips/`` folder, streamed from the bucket, as ``media/<key>``, the
  path the local store gives it (where a local file has the same path, the S3 clip wins:
  it is the one the server uses);
* ``vapid.pem`` (the Web Push key: without it every browser subscription breaks) and
  ``server.secret`` (signs MJPEG tickets).

Not copied: ``uploads/`` (unfinished clip uploads; edges resend them), ``snapshots/`` (the
MJPEG relay's cache), ``admin.key`` (a convenience copy; the database keeps its hash),
logs, hidden temp files of interrupted writes, symlinks.

A file whose size and mtime match the previous run's entry, or whose SHA-256 does when
only the mtime changed, is not stored again: the manifest lists the previous run's
object, as long as that object is still in the target and was encrypted with the current
key (after a key rotation the first run stores everything anew, so every run can be
restored with one key). The database copy is stored when its SHA-256 changed. A clip in
S3 is not even downloaded when its size and ETag (or last-modified time, without an
ETag) match the previous run's entry.

Just before the manifest is written, the run checks that every object it reuses is still
in the target (a ``prune`` running at the same time could have removed it): a run never
lists an object that is gone.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import shutil
import stat
import tempfile
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from app.backup.database import DatabaseCopy, copy_database, default_database_url
from app.backup.errors import BackupError
from app.backup.format import DEFAULT_CHUNK_SIZE, EncryptingReader
from app.backup.keys import BackupKey, Keyring
from app.backup.manifest import (
    OBJECTS,
    Entry,
    Manifest,
    list_runs,
    manifest_header,
    new_run_name,
    object_name,
    read_manifest,
    write_manifest,
)
from app.backup.progress import Progress, human_bytes
from app.backup.s3media import CLIP_MODE, MediaDownload, MediaObject, S3Media
from app.backup.targets import LocalTarget, Target

log = logging.getLogger("app.backup.run")

#: What is backed up, relative to the data directory (directories are copied whole).
BACKED_UP = ("media", "events", "vapid.pem", "server.secret")
_HASH_BUFFER = 1024 * 1024


@dataclass(frozen=True, slots=True)
class RunOptions:
    """What to back up and how. ``database_url`` None: the server's default (SQLite in
    the data directory); "" skips the database."""

    data_dir: Path
    database_url: str | None = None
    chunk_size: int = DEFAULT_CHUNK_SIZE
    jobs: int = 2
    progress: bool = True
    #: Clips kept in S3 (the server's LIVECAM_S3_* settings), backed up too when set.
    s3_media: S3Media | None = None


@dataclass(slots=True)
class RunResult:
    """What a run did: its manifest, what it stored and reused, how long it took."""

    manifest: Manifest
    stored_files: int = 0
    stored_bytes: int = 0
    stored_plaintext: int = 0
    reused_files: int = 0
    s3_clips: int = 0
    vanished: list[str] = field(default_factory=list)
    seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class SourceFile:
    """A file to back up: its path in the data directory (POSIX) and on disk."""

    path: str
    disk: Path
    size: int


def scan(data_dir: Path, exclude: Path | None = None) -> list[SourceFile]:
    """The files a run backs up (see BACKED_UP), sorted by path. ``exclude``: a directory
    to skip (a local target inside the data directory)."""
    found: list[SourceFile] = []

    def add(disk: Path) -> None:
        try:
            info = disk.lstat()
        except FileNotFoundError:
            return
        if stat.S_ISREG(info.st_mode):
            found.append(SourceFile(disk.relative_to(data_dir).as_posix(), disk, info.st_size))
        elif stat.S_ISLNK(info.st_mode):
            log.warning("symlink not backed up", extra={"path": str(disk)})

    for item in BACKED_UP:
        top = data_dir / item
        if top.is_dir() and not top.is_symlink():
            for dirpath, dirnames, filenames in os.walk(top):
                here = Path(dirpath)
                dirnames[:] = sorted(
                    d for d in dirnames if exclude is None or (here / d).resolve() != exclude
                )
                for name in sorted(filenames):
                    if name.startswith(".") and name.endswith(".tmp"):
                        continue  # an interrupted atomic write
                    add(here / name)
        else:
            add(top)
    return sorted(found, key=lambda f: f.path)


class _CountingSource:
    """Reads a source file (or an S3 clip's download) for the encryptor, counting
    progress; a read error names the file (it would otherwise look like a target write
    error)."""

    def __init__(self, f: io.BufferedReader | MediaDownload, path: str, progress: Progress) -> None:
        self._f = f
        self._path = path
        self._progress = progress

    def readinto(self, buffer: memoryview) -> int:
        try:
            n: int = self._f.readinto(buffer)
        except OSError as exc:
            raise BackupError(f"cannot read {self._path}: {exc.strerror or exc}") from None
        self._progress.add(nbytes=n)
        return n

    def read(self, size: int = -1, /) -> bytes:
        try:
            data = self._f.read(size)
        except OSError as exc:
            raise BackupError(f"cannot read {self._path}: {exc.strerror or exc}") from None
        self._progress.add(nbytes=len(data))
        return data


def _sha256_of(f: io.BufferedReader) -> str:
    sha = hashlib.sha256()
    buffer = bytearray(_HASH_BUFFER)
    view = memoryview(buffer)
    while n := f.readinto(view):
        sha.update(view[:n])
    return sha.hexdigest()


class _Runner:
    """Stores files for one run (from several threads)."""

    def __init__(
        self,
        target: Target,
        key: BackupKey,
        previous: dict[str, Entry],
        existing: dict[str, int],
        options: RunOptions,
        progress: Progress,
    ) -> None:
        self.target = target
        self.key = key
        self.previous = previous
        self.existing = existing
        self.options = options
        self.progress = progress
        self.lock = threading.Lock()
        self.stored_files = 0
        self.stored_bytes = 0
        self.stored_plaintext = 0
        self.reused_files = 0

    def _reusable(self, path: str, size: int) -> Entry | None:
        prev = self.previous.get(path)
        if (
            prev is None
            or prev.key_id != self.key.key_id_hex
            or prev.size != size
            or self.existing.get(prev.object) != prev.stored
        ):
            return None
        return prev

    def store(self, path: str, disk: Path, kind: str) -> Entry | None:
        """Backs up ``disk`` as ``path``; None when it vanished meanwhile."""
        try:
            f = open(disk, "rb")  # noqa: SIM115 (closed by the with below)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise BackupError(f"cannot read {disk}: {exc.strerror}") from None
        with f:
            info = os.fstat(f.fileno())
            mtime = info.st_mtime_ns
            mode = stat.S_IMODE(info.st_mode)
            prev = self._reusable(path, info.st_size)
            if prev is not None:
                # Same size: unchanged if the mtime is too (the database copy is new every
                # run, so its checksum decides), or else if the content hashes the same.
                if (kind == "file" and prev.mtime_ns == mtime) or _sha256_of(f) == prev.sha256:
                    with self.lock:
                        self.reused_files += 1
                    self.progress.add(files=1, nbytes=info.st_size)
                    return Entry(
                        path, kind, prev.size, prev.sha256, mtime, mode, prev.object,
                        prev.file_id, prev.key_id, prev.stored,
                    )  # fmt: skip
                f.seek(0)
            return self._put(path, f, kind, mtime, mode)

    def store_s3(self, media: S3Media, obj: MediaObject) -> Entry | None:
        """Backs up a clip kept in S3 as ``obj.path``, streamed from the bucket; None when
        it was deleted meanwhile. Unchanged (size and ETag, else last-modified, as in the
        previous run): listed again without a download."""
        prev = self._reusable(obj.path, obj.size)
        if (
            prev is not None
            and prev.etag == obj.etag
            and (obj.etag != "" or prev.mtime_ns == obj.modified_ns)
        ):
            with self.lock:
                self.reused_files += 1
            self.progress.add(files=1, nbytes=obj.size)
            return Entry(
                obj.path, "file", prev.size, prev.sha256, obj.modified_ns, prev.mode,
                prev.object, prev.file_id, prev.key_id, prev.stored, obj.etag,
            )  # fmt: skip
        download = media.get(obj)
        if download is None:
            return None
        with download:
            info = download.info
            entry = self._put(obj.path, download, "file", info.modified_ns, CLIP_MODE, info.etag)
        if entry.size != info.size:
            raise BackupError(f"S3 sent {entry.size} bytes of {obj.key}, its length is {info.size}")
        return entry

    def _put(
        self,
        path: str,
        src: io.BufferedReader | MediaDownload,
        kind: str,
        mtime: int,
        mode: int,
        etag: str = "",
    ) -> Entry:
        """Encrypts ``src`` into a new object of the target; its entry."""
        reader = EncryptingReader(
            _CountingSource(src, path, self.progress),
            self.key,
            chunk_size=self.options.chunk_size,
        )
        name = object_name(reader.file_id)
        stored = self.target.put(name, reader)
        result = reader.result
        if result is None or result.ciphertext_bytes != stored:
            raise BackupError(f"storing {path} as {name} stopped before its end")
        with self.lock:
            self.stored_files += 1
            self.stored_bytes += stored
            self.stored_plaintext += result.plaintext_bytes
        self.progress.add(files=1)
        log.debug(
            "file stored", extra={"path": path, "object": name, "bytes": result.plaintext_bytes}
        )
        return Entry(
            path, kind, result.plaintext_bytes, result.sha256, mtime, mode, name,
            result.file_id, result.key_id, stored, etag,
        )  # fmt: skip


def _previous_manifest(target: Target, keyring: Keyring, runs: list[str]) -> Manifest | None:
    """The newest run's manifest when it can be read (else None: store everything)."""
    if not runs:
        return None
    latest = runs[-1]
    try:
        header = manifest_header(target, latest)
        if header.scrypt is not None:
            keyring.adopt_passphrase_key(header.key_id, header.scrypt)
        return read_manifest(target, latest, keyring)
    except BackupError as exc:  # no key for it, damaged, unreachable: start afresh
        log.warning(
            "previous run unreadable; storing every file anew",
            extra={"run": latest, "error": str(exc)},
        )
        return None


@contextlib.contextmanager
def _workdir(data_dir: Path) -> Iterator[Path]:
    # Beside the database (same disk, which has room for it), not /tmp (often RAM).
    base = data_dir if os.access(data_dir, os.W_OK) else None
    path = Path(tempfile.mkdtemp(prefix=".backup-tmp-", dir=base))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _check_reused_objects(target: Target, manifest: Manifest, existing: dict[str, int]) -> None:
    """BackupError when an object the run reuses from an earlier run is gone now (a prune
    at the same time removed it): the run must not list it."""
    reused = {e.object for e in manifest.entries if e.object in existing}
    if not reused:
        return
    now = {info.name for info in target.list(OBJECTS)}
    gone = sorted(reused - now)
    if gone:
        raise BackupError(
            f"{len(gone)} object(s) this run reuses from earlier runs were removed while it "
            f"ran (by a prune?), first {gone[0]}; run the backup again"
        )


def backup_run(
    target: Target, keyring: Keyring, options: RunOptions, *, now: datetime | None = None
) -> RunResult:
    """Backs up the data directory into ``target``; the new run's manifest and figures.
    Raises BackupError (TargetError, KeyProblem, ...) and then writes no manifest."""
    data_dir = options.data_dir.expanduser().resolve()
    if not data_dir.is_dir():
        raise BackupError(f"data directory {data_dir} does not exist (see --data / LIVECAM_DATA)")
    target.check(create=True)
    runs = list_runs(target)
    previous = _previous_manifest(target, keyring, runs)
    key = keyring.current
    run = new_run_name(now or datetime.now(UTC), set(runs))
    exclude = target.root if isinstance(target, LocalTarget) else None
    files = scan(data_dir, exclude)
    clips: list[MediaObject] = []
    in_s3: set[str] = set()
    if options.s3_media is not None:
        options.s3_media.check()
        clips = options.s3_media.list()
        in_s3 = {c.path for c in clips}
        shadowed = [f.path for f in files if f.path in in_s3]
        if shadowed:
            log.warning(
                "local media files shadowed by clips in S3; the S3 ones are backed up",
                extra={"count": len(shadowed), "first": shadowed[0]},
            )
            files = [f for f in files if f.path not in in_s3]
    existing = {info.name: info.size for info in target.list(OBJECTS)}
    prev_entries = {e.path: e for e in previous.entries} if previous else {}
    total = sum(f.size for f in files) + sum(c.size for c in clips)
    progress = Progress("backup", len(files) + len(clips) + 1, total, enabled=options.progress)
    runner = _Runner(target, key, prev_entries, existing, options, progress)
    manifest = Manifest(run, datetime.now(UTC).isoformat(), key.key_id_hex, str(data_dir))
    result = RunResult(manifest)
    log.info(
        "backup run started",
        extra={
            "run": run,
            "target": target.describe(),
            "files": len(files),
            "s3_clips": len(clips),
            "bytes": total,
        },
    )

    url = options.database_url
    if url is None:
        url = default_database_url(data_dir)
    if url:
        with _workdir(data_dir) as work:
            copy: DatabaseCopy = copy_database(url, work)
            progress.total_bytes += copy.path.stat().st_size
            entry = runner.store(copy.name, copy.path, copy.kind)
            if entry is None:
                raise BackupError("the database copy vanished")
            manifest.entries.append(entry)
    else:
        progress.total_files -= 1

    pool = ThreadPoolExecutor(max_workers=max(1, options.jobs), thread_name_prefix="backup")
    futures: list[tuple[str, Future[Entry | None]]] = [
        (f.path, pool.submit(runner.store, f.path, f.disk, "file")) for f in files
    ]
    if options.s3_media is not None:
        futures += [(c.path, pool.submit(runner.store_s3, options.s3_media, c)) for c in clips]
    try:
        for path, future in futures:
            entry = future.result()
            if entry is None:
                result.vanished.append(path)
                log.info("file vanished during the backup", extra={"path": path})
            else:
                manifest.entries.append(entry)
    except BaseException:
        # Stop at the first failure: queued files are not worth storing without a manifest.
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)

    manifest.entries.sort(key=lambda e: (e.kind == "file", e.path))
    _check_reused_objects(target, manifest, existing)
    manifest.new_objects = runner.stored_files
    manifest.new_bytes = runner.stored_bytes
    write_manifest(target, manifest, key)
    result.stored_files = runner.stored_files
    result.stored_bytes = runner.stored_bytes
    result.stored_plaintext = runner.stored_plaintext
    result.reused_files = runner.reused_files
    result.s3_clips = len(clips) - sum(1 for path in result.vanished if path in in_s3)
    result.seconds = progress.elapsed
    log.info(
        "backup run finished",
        extra={
            "run": run,
            "files": len(manifest.entries),
            "stored": runner.stored_files,
            "stored_bytes": runner.stored_bytes,
            "reused": runner.reused_files,
            "seconds": round(result.seconds, 2),
            "rate": f"{human_bytes(runner.stored_plaintext / max(result.seconds, 1e-9))}/s",
        },
    )
    return result

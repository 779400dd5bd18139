"""Restore a run into a directory, all or nothing.

Every file is decrypted into a hidden staging directory inside the destination
(``.livecam-restore-<random>``, same file system) and checked (every tag, the final
chunk, size, SHA-256 and file id against the manifest). Only when every file checked out
are they renamed into place, with their mode and mtime; on any error the staging
directory is removed, so a tampered or truncated object leaves nothing at the
destination. A destination that is not empty is refused unless ``force`` (then files of
the run replace files of the same name; other files are left alone).

The result is a data directory: run the server with ``LIVECAM_DATA=<dir>``. A SQLite
database comes back as ``livecam.db`` (any stale ``-wal``/``-shm`` beside it is removed,
as SQLite would otherwise replay it into the restored database); a PostgreSQL backup as
``postgresql.dump``, for ``pg_restore --clean -d <DATABASE_URL> postgresql.dump``.
Clips come back as files under ``media/`` (also those a run read from S3), the local
media store's layout.

With a ``media_store`` (``restore --to-s3``: the server's S3 store from its
``LIVECAM_S3_*`` settings) every ``media/<key>`` file goes into that store as ``<key>``
instead, once every file of the run has checked out, and before anything is moved into
the destination. Uploads are not all or nothing: if one fails, the clips put before it
stay in the bucket (correct, whole clips; restoring again puts them again) and the
destination is left as it was. Any S3 tool can do the same from a plain restore:
``aws s3 cp --recursive <DIR>/media/clips s3://<bucket>/<prefix>clips``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from app.backup.errors import BackupError
from app.backup.keys import Keyring
from app.backup.manifest import Manifest, read_manifest
from app.backup.progress import Progress, human_bytes
from app.backup.s3media import MEDIA_DIR
from app.backup.targets import Target
from app.backup.verify import decrypt_entry

if TYPE_CHECKING:
    from app.media_store import MediaStore

log = logging.getLogger("app.backup.restore")

STAGING_PREFIX = ".livecam-restore-"


@dataclass(frozen=True, slots=True)
class RestoreResult:
    """What was restored: the manifest, files, plaintext bytes and seconds;
    ``media_put``: clips put into the media store (``--to-s3``) rather than files."""

    manifest: Manifest
    files: int
    bytes: int
    seconds: float
    media_put: int = 0


def _media_key(path: str) -> str | None:
    """The media store key of a restored ``media/<key>`` path, else None."""
    head, _, key = path.partition("/")
    return key if head == MEDIA_DIR and key else None


def _content_type(key: str) -> str:
    return "video/mp4" if key.endswith(".mp4") else "application/octet-stream"


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def restore_run(
    target: Target,
    keyring: Keyring,
    run: str,
    dest: Path,
    *,
    force: bool = False,
    progress: bool = True,
    media_store: MediaStore | None = None,
) -> RestoreResult:
    """Restores run ``run`` into ``dest`` (see the module docstring), its ``media/`` files
    into ``media_store`` when one is given. Raises BackupError (IntegrityError naming the
    object for a damaged one) and leaves ``dest`` as it was."""
    dest = dest.expanduser().resolve()
    if dest.exists() and not dest.is_dir():
        raise BackupError(f"{dest} exists and is not a directory")
    if dest.is_dir() and any(dest.iterdir()) and not force:
        raise BackupError(
            f"{dest} is not empty; restore into an empty directory, or pass --force to "
            "replace the run's files in it"
        )
    manifest = read_manifest(target, run, keyring)
    to_store: dict[int, str] = {}
    if media_store is not None:
        for i, entry in enumerate(manifest.entries):
            key = _media_key(entry.path)
            if key is not None:
                to_store[i] = key
    for i, entry in enumerate(manifest.entries):
        if i in to_store:
            continue
        final = dest.joinpath(*PurePosixPath(entry.path).parts)
        if final.is_dir() and not final.is_symlink():
            raise BackupError(f"{final} is a directory; the run has a file there")

    created = not dest.exists()
    dest.mkdir(parents=True, exist_ok=True)
    staging = dest / f"{STAGING_PREFIX}{secrets.token_hex(4)}"
    staging.mkdir()
    total = sum(e.size for e in manifest.entries)
    bar = Progress("restore", len(manifest.entries), total, enabled=progress)
    try:
        for i, entry in enumerate(manifest.entries):
            staged = staging / str(i)
            with open(staged, "wb") as dst:
                decrypt_entry(target, keyring, entry, dst, bar)
                dst.flush()
                os.fsync(dst.fileno())
            bar.add(files=1)
        if media_store is not None:
            _put_media(media_store, staging, to_store)
        touched: set[Path] = set()
        for i, entry in enumerate(manifest.entries):
            if i in to_store:
                continue
            final = dest.joinpath(*PurePosixPath(entry.path).parts)
            final.parent.mkdir(parents=True, exist_ok=True)
            staged = staging / str(i)
            os.chmod(staged, entry.mode)
            os.utime(staged, ns=(entry.mtime_ns, entry.mtime_ns))
            if entry.kind == "sqlite":
                for suffix in ("-wal", "-shm", "-journal"):
                    final.with_name(final.name + suffix).unlink(missing_ok=True)
            os.replace(staged, final)
            touched.add(final.parent)
        for directory in touched:
            _fsync_dir(directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if created:
            with contextlib.suppress(OSError):
                dest.rmdir()  # only if still empty
        raise
    shutil.rmtree(staging, ignore_errors=True)
    log.info(
        "backup restored",
        extra={
            "run": run,
            "to": str(dest),
            "files": len(manifest.entries),
            "bytes": total,
            "seconds": round(bar.elapsed, 2),
            "rate": f"{human_bytes(bar.rate())}/s",
            "media_put": len(to_store),
        },
    )
    return RestoreResult(manifest, len(manifest.entries), total, bar.elapsed, len(to_store))


def _put_media(store: MediaStore, staging: Path, to_store: dict[int, str]) -> None:
    """Puts the staged, checked clips into the media store."""
    from app.media_store import MediaStoreError

    for done, (i, key) in enumerate(sorted(to_store.items(), key=lambda item: item[1])):
        try:
            store.put_file(key, staging / str(i), _content_type(key))
        except (MediaStoreError, ValueError) as exc:
            raise BackupError(
                f"putting {key} into {store.describe()} failed: {exc}; {done} clip(s) put "
                "before it stay there (restoring again puts them again), nothing else was "
                "restored"
            ) from None
        log.info("clip restored into the media store", extra={"key": key})

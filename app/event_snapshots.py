"""Event snapshots as files: ``<data>/events/<camera>/<yyyy-mm-dd>/<event id>.jpg``.

Files, never database blobs: the database stays small and fast to back up, and a
snapshot is served straight from disk. The date is the event's start (UTC), so
retention removes whole days. Every write is atomic (temp file + rename): a reader or
a crash never sees half a JPEG.

A snapshot is accepted only if it is a JPEG that decodes (magic bytes, then PIL at
reduced scale, which reads every entropy-coded block without paying for a full-size
decode) and is at most ``max_bytes`` long.
"""

from __future__ import annotations

import base64
import binascii
import io
import logging
import os
import re
import secrets
import shutil
import warnings
from datetime import datetime
from pathlib import Path, PurePosixPath

from PIL import Image

log = logging.getLogger(__name__)

JPEG_MAGIC = b"\xff\xd8\xff"
#: Larger pictures are refused before decoding (a decompression bomb costs memory).
MAX_PIXELS = 8192 * 8192
_SAFE_PART = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class SnapshotError(ValueError):
    """A snapshot that cannot be stored; ``too_large`` tells 413 from 422."""

    def __init__(self, message: str, *, too_large: bool = False) -> None:
        super().__init__(message)
        self.too_large = too_large


def decode_snapshot(text: str, max_bytes: int) -> bytes:
    """The JPEG bytes of a base64 snapshot; SnapshotError when it is not one or too big."""
    # Base64 is 4/3 the size: refuse before decoding anything far too long.
    if len(text) > (max_bytes + 2) // 3 * 4 + 4:
        raise SnapshotError(
            f"snapshot is larger than {max_bytes} bytes; send a smaller JPEG", too_large=True
        )
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise SnapshotError("snapshot is not valid base64") from None
    if len(data) > max_bytes:
        raise SnapshotError(
            f"snapshot is {len(data)} bytes, more than the {max_bytes} allowed", too_large=True
        )
    check_jpeg(data)
    return data


def check_jpeg(data: bytes) -> tuple[int, int]:
    """(width, height) of a JPEG that decodes; SnapshotError otherwise."""
    if not data.startswith(JPEG_MAGIC):
        raise SnapshotError("snapshot is not a JPEG (it does not start with FF D8 FF)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=["JPEG"]) as image:
                width, height = image.size
                if width * height > MAX_PIXELS:
                    raise SnapshotError(f"snapshot is {width}x{height}, too many pixels")
                # Decode at 1/8 scale: every block is still read, so a truncated or
                # corrupt JPEG fails here, at a fraction of the cost.
                image.draft("RGB", (max(1, width // 8), max(1, height // 8)))
                image.load()
    except SnapshotError:
        raise
    except Exception as exc:  # PIL raises many kinds for broken files
        raise SnapshotError(f"snapshot does not decode as a JPEG: {exc}") from None
    return width, height


class EventSnapshotStore:
    """Snapshot files under one directory (``<data>/events``)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def relative_path(self, camera_id: str, event_id: str, started_at: datetime) -> str:
        """Where an event's snapshot lives, relative to the store (kept in the database)."""
        if not (_SAFE_PART.match(camera_id) and _SAFE_PART.match(event_id)):
            raise ValueError(f"unsafe snapshot path part: {camera_id!r}/{event_id!r}")
        return f"{camera_id}/{started_at.strftime('%Y-%m-%d')}/{event_id}.jpg"

    def path(self, relative: str) -> Path:
        """The file of a stored relative path; ValueError if it would leave the store."""
        parts = PurePosixPath(relative).parts
        if not parts or any(p in ("", ".", "..") or not _SAFE_PART.match(p) for p in parts):
            raise ValueError(f"unsafe snapshot path {relative!r}")
        return self.directory.joinpath(*parts)

    def write(self, relative: str, data: bytes) -> Path:
        """Writes atomically (temp file, fsync, rename); returns the file."""
        target = self.path(relative)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        return target

    def read(self, relative: str) -> tuple[bytes, float] | None:
        """(bytes, mtime) of a stored snapshot, or None when the file is gone."""
        try:
            target = self.path(relative)
            with open(target, "rb") as f:
                return f.read(), os.fstat(f.fileno()).st_mtime
        except (OSError, ValueError):
            return None

    def remove(self, relative: str) -> bool:
        """Deletes one snapshot (and its day directory once empty); True if a file went."""
        try:
            target = self.path(relative)
        except ValueError:
            return False
        try:
            target.unlink()
        except FileNotFoundError:
            return False
        except OSError as exc:
            log.warning("could not delete event snapshot", extra={"path": relative, "error": exc})
            return False
        self._remove_empty(target.parent)
        return True

    def remove_camera(self, camera_id: str) -> int:
        """Deletes every snapshot of a camera; the number of files removed."""
        if not _SAFE_PART.match(camera_id):
            return 0
        root = self.directory / camera_id
        if not root.is_dir():
            return 0
        count = sum(1 for p in root.rglob("*.jpg") if p.is_file())
        shutil.rmtree(root, ignore_errors=True)
        return count

    def camera_dirs(self) -> list[str]:
        """The camera ids that have a snapshot directory."""
        if not self.directory.is_dir():
            return []
        return sorted(p.name for p in self.directory.iterdir() if p.is_dir())

    def _remove_empty(self, directory: Path) -> None:
        # The day directory, then the camera directory, never the store itself.
        for d in (directory, directory.parent):
            if d == self.directory or self.directory not in d.parents:
                return
            try:
                d.rmdir()
            except OSError:
                return  # not empty (or already gone)

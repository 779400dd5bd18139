"""The file layer under the MP4 muxer: counts bytes, fsyncs on a schedule, keeps errors.

PyAV writes through a Python file object, so the recorder sees every write: it knows how
many bytes a segment holds, it chooses when data reaches the card (``os.fsync``), and it
can tell "disk full" (``ENOSPC``) from a muxer problem, since the muxer only passes on a
generic I/O error.

fsync policy (``fsync_s``, default 2 s): after a fragment (one GOP) is written, the file
is fsynced if the last fsync is at least ``fsync_s`` old; at close it always is. On a
power cut the recorder loses at most the GOP the muxer still holds plus ``fsync_s`` of
fragments the kernel had not written; a ``kill -9`` loses only the GOP (the kernel keeps
what was written). An fsync on an SD card takes tens to hundreds of milliseconds and wears
it: once per fragment (``fsync_s = 0``) is affordable at a 1 s GOP, but rarely needed.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


class SyncedFile(io.RawIOBase):
    """A binary file opened for writing, for PyAV's muxer, with byte counts and fsync."""

    def __init__(self, path: Path, fsync_s: float) -> None:
        super().__init__()
        self.path = path
        self.fsync_s = fsync_s
        self.written = 0  # bytes handed to write(), the file size while nothing is rewritten
        self.error: OSError | None = None  # the first write error (PyAV hides its errno)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        self._pos = 0
        self._size = 0
        self._synced_at = time.monotonic()
        self._dirty = False

    # -- io.RawIOBase ----------------------------------------------------------------------

    def writable(self) -> bool:
        """Always: the muxer writes."""
        return True

    def seekable(self) -> bool:
        """The MP4 muxer may seek back (it does not for fragmented output)."""
        return True

    def readable(self) -> bool:
        """Never read back."""
        return False

    def write(self, data: Any) -> int:
        """Write all of ``data`` at the current position; errors are remembered, then raised."""
        view = memoryview(data).cast("B")
        try:
            done = 0
            while done < len(view):
                done += self._write(view[done:], self._pos + done)
        except OSError as exc:
            if self.error is None:
                self.error = exc
            raise
        self._pos += done
        self._size = max(self._size, self._pos)
        self.written = self._size
        self._dirty = True
        return done

    def _write(self, view: memoryview, position: int) -> int:
        """One ``os.pwrite``; tests replace it to make the disk full."""
        return os.pwrite(self._fd, view, position)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """Move the write position (the muxer's view; writes use ``pwrite``)."""
        if whence == os.SEEK_SET:
            self._pos = offset
        elif whence == os.SEEK_CUR:
            self._pos += offset
        elif whence == os.SEEK_END:
            self._pos = self._size + offset
        else:
            raise OSError(errno.EINVAL, f"bad whence {whence}")
        return self._pos

    def tell(self) -> int:
        """The write position."""
        return self._pos

    def close(self) -> None:
        """Close the descriptor (no fsync: call ``sync`` first when the data matters)."""
        if not self.closed:
            with contextlib.suppress(OSError):
                os.close(self._fd)
        super().close()

    # -- durability ------------------------------------------------------------------------

    def sync_due(self) -> bool:
        """Whether unsynced data is older than the fsync policy allows."""
        return self._dirty and time.monotonic() - self._synced_at >= self.fsync_s

    def sync(self) -> None:
        """fsync the data written so far."""
        if self._dirty and not self.closed:
            os.fsync(self._fd)
            self._dirty = False
        self._synced_at = time.monotonic()


#: Makes the file a segment or clip is written to; tests hand in one that fails.
FileOpener = Callable[[Path, float], SyncedFile]


def fsync_dir(path: Path) -> None:
    """fsync a directory, so a file created or renamed in it survives a power cut."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) says the file system is full."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, OSError) and cur.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if "database or disk is full" in str(cur):  # sqlite3.OperationalError
            return True
        cur = cur.__cause__ or cur.__context__
    return False


def disk_space(path: Path) -> tuple[int, int]:
    """(free bytes available to this user, total bytes) of the file system holding ``path``."""
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize

"""Progress of long work on stderr: files done/total, bytes, MB/s, at most once a second."""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

from app.backup.streams import Writable


def human_bytes(n: float) -> str:
    """``n`` bytes as a short text: 512 B, 1.5 MB, 2.0 GB (powers of 1000)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


class Progress:
    """Counts files and bytes (from several threads) and prints a line now and then."""

    def __init__(
        self,
        what: str,
        total_files: int,
        total_bytes: int,
        *,
        stream: TextIO | None = None,
        enabled: bool = True,
        interval: float = 1.0,
    ) -> None:
        self.what = what
        self.total_files = total_files
        self.total_bytes = total_bytes
        self.files = 0
        self.bytes = 0
        self._stream = stream if stream is not None else sys.stderr
        self._enabled = enabled
        self._interval = interval
        self._start = time.monotonic()
        self._last = self._start
        self._lock = threading.Lock()

    @property
    def elapsed(self) -> float:
        """Seconds since the work started."""
        return time.monotonic() - self._start

    def rate(self) -> float:
        """Bytes per second so far."""
        return self.bytes / max(self.elapsed, 1e-9)

    def add(self, files: int = 0, nbytes: int = 0) -> None:
        """Counts work done; prints a line when the last one is ``interval`` old."""
        with self._lock:
            self.files += files
            self.bytes += nbytes
            now = time.monotonic()
            if self._enabled and now - self._last >= self._interval:
                self._last = now
                self._print()

    def line(self) -> str:
        """The progress line, e.g. ``backup: 12/40 files, 1.2 GB/3.0 GB, 310.5 MB/s``."""
        return (
            f"{self.what}: {self.files}/{self.total_files} files, "
            f"{human_bytes(self.bytes)}/{human_bytes(self.total_bytes)}, "
            f"{self.rate() / 1e6:.1f} MB/s"
        )

    def _print(self) -> None:
        print(self.line(), file=self._stream, flush=True)


class CountingWriter:
    """Passes writes on to ``dst`` (None: discards them) and counts them as progress."""

    def __init__(self, dst: Writable | None, progress: Progress) -> None:
        self._dst = dst
        self._progress = progress

    def write(self, data: bytes | memoryview, /) -> int:
        """Writes ``data`` on; its length."""
        if self._dst is not None:
            self._dst.write(data)
        self._progress.add(nbytes=len(data))
        return len(data)

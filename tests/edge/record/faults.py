"""A file layer that fails or stalls on demand: a full disk, an I/O error, a slow card."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from edge.record.files import SyncedFile


class Faults:
    """Shared switches for every file the recorder opens through ``opener``."""

    def __init__(self) -> None:
        self.errno: int | None = None  # every write fails with this while set
        self.failures = 0
        self.flowing = threading.Event()  # cleared: writes wait (a stalled card)
        self.flowing.set()
        self.waiting = threading.Event()  # set while a write is waiting

    def opener(self, path: Path, fsync_s: float) -> SyncedFile:
        """A ``FileOpener`` for the recorder and the clip cutter."""
        return FaultyFile(path, fsync_s, self)


class FaultyFile(SyncedFile):
    def __init__(self, path: Path, fsync_s: float, faults: Faults) -> None:
        super().__init__(path, fsync_s)
        self.faults = faults

    def _write(self, view: memoryview, position: int) -> int:
        if not self.faults.flowing.is_set():
            self.faults.waiting.set()
            self.faults.flowing.wait(30)
            self.faults.waiting.clear()
        code = self.faults.errno
        if code is not None:
            self.faults.failures += 1
            raise OSError(code, os.strerror(code))
        return super()._write(view, position)

"""Shared pieces of the backup tests: keys, record surgery on encrypted files, the CLI."""

from __future__ import annotations

import hashlib
import os
import secrets
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil

from app.backup.format import HEADER_BYTES, NONCE_BYTES, TAG_BYTES
from app.backup.keys import BackupKey

ROOT = Path(__file__).resolve().parents[3]


def random_key(origin: str = "test") -> BackupKey:
    """A fresh key-file-style key (not written to disk)."""
    return BackupKey(secrets.token_bytes(16), secrets.token_bytes(32), origin)


@dataclass(frozen=True)
class Record:
    """Where one record sits in an encrypted file."""

    start: int
    end: int
    final: bool

    @property
    def ciphertext_start(self) -> int:
        return self.start + 4 + NONCE_BYTES

    @property
    def tag_start(self) -> int:
        return self.end - TAG_BYTES


def records(blob: bytes) -> list[Record]:
    """The records of an (intact) encrypted file, in order."""
    out: list[Record] = []
    pos = HEADER_BYTES
    while pos < len(blob):
        (prefix,) = struct.unpack_from(">I", blob, pos)
        length = prefix & 0x7FFF_FFFF
        end = pos + 4 + NONCE_BYTES + length + TAG_BYTES
        out.append(Record(pos, end, bool(prefix & 0x8000_0000)))
        pos = end
    return out


def flip(blob: bytes, offset: int, bit: int = 0) -> bytes:
    """``blob`` with one bit flipped."""
    changed = bytearray(blob)
    changed[offset] ^= 1 << bit
    return bytes(changed)


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str


def run_cli(
    *args: str | Path, env: dict[str, str] | None = None, cwd: Path | None = None
) -> CliResult:
    """Runs ``python -m app.backup ARGS`` as a user would; its exit status and output."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    proc = subprocess.run(
        [sys.executable, "-m", "app.backup", *map(str, args)],
        env=full_env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def tree(root: Path) -> dict[str, bytes]:
    """Every regular file under ``root``: relative POSIX path → contents."""
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


class Generated:
    """``size`` bytes of generated data (a random block, varied per block), hashed as read."""

    def __init__(self, size: int) -> None:
        self.left = size
        self.block = bytearray(os.urandom(1024 * 1024))
        self.counter = 0
        self.sha = hashlib.sha256()

    def readinto(self, target: memoryview) -> int:
        n = min(len(target), self.left, len(self.block))
        if not n:
            return 0
        self.counter += 1
        self.block[:8] = self.counter.to_bytes(8, "big")
        target[:n] = self.block[:n]
        self.sha.update(target[:n])
        self.left -= n
        return n

    def read(self, size: int = -1, /) -> bytes:
        buffer = bytearray(size)
        n = self.readinto(memoryview(buffer))
        return bytes(buffer[:n])


class HashingSink:
    def __init__(self) -> None:
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes | memoryview, /) -> int:
        self.sha.update(data)
        self.size += len(data)
        return len(data)


@contextmanager
def peak_rss_growth() -> Iterator[list[int]]:
    """Samples this process's RSS every 5 ms; yields a list that gets [growth in bytes]."""
    process = psutil.Process()
    baseline = process.memory_info().rss
    peak = baseline
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.005):
            peak = max(peak, process.memory_info().rss)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    result: list[int] = []
    try:
        yield result
    finally:
        done.set()
        thread.join(timeout=10)
        peak = max(peak, process.memory_info().rss)
        result.append(peak - baseline)

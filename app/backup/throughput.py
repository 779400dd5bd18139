"""Encryption and decryption throughput of the backup format, measured in memory.

``python -m app.backup bench`` prints it for one CPU core; ``bench/media.py`` can call
``measure`` directly. The source is generated (a random 4 MiB block, repeated), the sink
discards, so the figures are the cipher, SHA-256 and the format's own overhead, not a
disk's or a network's.
"""

from __future__ import annotations

import io
import os
import time
from dataclasses import dataclass

from app.backup.format import DEFAULT_CHUNK_SIZE, decrypt_stream, encrypt_stream
from app.backup.keys import Keyring, new_random_key


class PatternReader:
    """``size`` bytes made by repeating a random block: a source that costs no memory."""

    def __init__(self, size: int, block: int = 4 * 1024 * 1024) -> None:
        self._block = memoryview(os.urandom(block))
        self._left = size
        self._pos = 0

    def readinto(self, target: memoryview) -> int:
        """Fills ``target`` with the next bytes; 0 at the end."""
        n = min(len(target), self._left, len(self._block) - self._pos)
        target[:n] = self._block[self._pos : self._pos + n]
        self._pos = (self._pos + n) % len(self._block)
        self._left -= n
        return n

    def read(self, size: int = -1, /) -> bytes:
        """Up to ``size`` bytes (all that is left when negative)."""
        buffer = bytearray(size if size >= 0 else self._left)
        n = self.readinto(memoryview(buffer))
        return bytes(buffer[:n])


class NullSink:
    """Counts and discards what is written."""

    def __init__(self) -> None:
        self.bytes = 0

    def write(self, data: bytes | memoryview, /) -> int:
        """Discards ``data``; its length."""
        self.bytes += len(data)
        return len(data)


@dataclass(frozen=True, slots=True)
class Throughput:
    """MB/s (10^6 bytes per second of plaintext) for one size and chunk size."""

    size: int
    chunk_size: int
    encrypt_mb_s: float
    decrypt_mb_s: float


def measure(size: int, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Throughput:
    """Encrypts ``size`` bytes to a null sink, then decrypts (and authenticates) them from
    memory, on the calling thread. Holds the ciphertext in memory for the second half."""
    key = new_random_key("throughput")
    start = time.perf_counter()
    encrypt_stream(PatternReader(size), NullSink(), key, chunk_size=chunk_size)
    encrypt_s = time.perf_counter() - start
    blob = io.BytesIO()
    encrypt_stream(PatternReader(size), blob, key, chunk_size=chunk_size)
    blob.seek(0)
    sink = NullSink()
    start = time.perf_counter()
    decrypt_stream(blob, sink, Keyring([key]))
    decrypt_s = time.perf_counter() - start
    assert sink.bytes == size
    return Throughput(size, chunk_size, size / encrypt_s / 1e6, size / decrypt_s / 1e6)


def pin_to_one_core() -> int | None:
    """Pins this process to one CPU (the lowest it may use); which one, or None where the
    platform cannot."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return cpu

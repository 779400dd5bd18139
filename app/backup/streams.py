"""The small stream interfaces the backup code reads and writes through.

Anything with ``read(n)`` is a source (files, ``io.BytesIO``, a botocore body, an
``EncryptingReader``); when it also has ``readinto`` that is used, so data lands in a
preallocated buffer instead of a new ``bytes`` per chunk.
"""

from __future__ import annotations

from typing import Protocol


class Readable(Protocol):
    """A byte source: ``read(n)`` returns up to n bytes, ``b""`` at the end."""

    def read(self, size: int = -1, /) -> bytes: ...


class Writable(Protocol):
    """A byte sink."""

    def write(self, data: bytes | memoryview, /) -> object: ...


def read_into(src: Readable, target: memoryview) -> int:
    """Fills ``target`` from ``src`` until it is full or ``src`` ends; the bytes read."""
    filled = 0
    readinto = getattr(src, "readinto", None)
    while filled < len(target):
        if readinto is not None:
            n = readinto(target[filled:])
        else:
            data = src.read(len(target) - filled)
            n = len(data)
            target[filled : filled + n] = data
        if not n:
            break
        filled += n
    return filled


def read_upto(src: Readable, n: int) -> bytes:
    """Up to ``n`` bytes (fewer only at the end of ``src``)."""
    parts: list[bytes] = []
    remaining = n
    while remaining:
        data = src.read(remaining)
        if not data:
            break
        parts.append(data)
        remaining -= len(data)
    return b"".join(parts)

"""HTTP ``Range: bytes=…`` for one range (RFC 9110 §14), as a ``<video>`` sends it.

``bytes=a-b``, ``bytes=a-`` and ``bytes=-n`` are served as 206. A header that is not a
single, well-formed bytes range (another unit, several ranges, ``b < a``) is ignored,
which RFC 9110 allows: the whole file goes out with 200. A range that starts at or after
the end (or ``bytes=-0``) is unsatisfiable: 416 with ``Content-Range: bytes */size``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SINGLE = re.compile(r"^bytes=(\d{0,19})-(\d{0,19})$")


class RangeNotSatisfiable(ValueError):
    """The range lies outside the file (416)."""


@dataclass(frozen=True, slots=True)
class ByteRange:
    """Bytes ``start..end`` of a file of ``size`` bytes, both ends inclusive."""

    start: int
    end: int
    size: int

    @property
    def length(self) -> int:
        return self.end - self.start + 1

    def content_range(self) -> str:
        """The ``Content-Range`` header value of a 206."""
        return f"bytes {self.start}-{self.end}/{self.size}"


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The range ``header`` asks for in a file of ``size`` bytes; None for the whole file.

    Raises RangeNotSatisfiable when it asks for bytes past the end.
    """
    if header is None or size <= 0:
        return None
    match = _SINGLE.match(header.strip().replace(" ", ""))
    if match is None:
        return None
    first, last = match.group(1), match.group(2)
    if not first and not last:
        return None
    if not first:
        suffix = int(last)
        if suffix == 0:
            raise RangeNotSatisfiable(f"bytes=-0 of {size}")
        return ByteRange(max(0, size - suffix), size - 1, size)
    start = int(first)
    if last and int(last) < start:
        return None  # malformed: ignored
    if start >= size:
        raise RangeNotSatisfiable(f"bytes={start}- of {size}")
    end = min(int(last), size - 1) if last else size - 1
    return ByteRange(start, end, size)

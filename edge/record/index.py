"""The segment index: which segments exist, their times and sizes, and what is protected.

One SQLite file per camera beside its segments (WAL, ``synchronous=FULL``, like the
outbox). A segment's row is written before its file is created and completed when it is
closed, so after a crash the rows without an end are exactly the segments to repair.
Event footage is recorded as time ranges (``protections``); a segment is protected while
it overlaps one. The files stay the truth: on start, files missing from the index are
added and rows whose file is gone are dropped (``reconcile``).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS segments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    path TEXT NOT NULL UNIQUE,      -- relative to the recording directory
    start_us INTEGER NOT NULL,      -- capture time of the first frame, µs since the epoch
    end_us INTEGER,                 -- NULL while written (or cut short by a crash)
    bytes INTEGER NOT NULL DEFAULT 0,
    frames INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS segments_start ON segments (start_us);
CREATE TABLE IF NOT EXISTS protections (
    start_us INTEGER NOT NULL PRIMARY KEY,  -- one row per event: its messages widen it
    end_us INTEGER NOT NULL
);
"""

#: A segment still open counts as reaching this far when checking protections.
_OPEN_END = 2**62


@dataclass(frozen=True, slots=True)
class SegmentRow:
    """One segment as the index knows it."""

    id: int
    path: str
    start_us: int
    end_us: int | None
    bytes: int
    frames: int
    protected: bool = False


class SegmentIndex:
    """Thread-safe (one connection behind a lock)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    def add(self, path: str, start_us: int) -> int:
        """Record a segment about to be written; its id."""
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO segments (path, start_us) VALUES (?, ?)", (path, start_us)
            )
            assert cur.lastrowid is not None
            return cur.lastrowid

    def finish(self, segment_id: int, end_us: int, size: int, frames: int) -> None:
        """Record where a segment ends and how big it is."""
        with self._lock:
            self._db.execute(
                "UPDATE segments SET end_us = ?, bytes = ?, frames = ? WHERE id = ?",
                (end_us, size, frames, segment_id),
            )

    def delete(self, segment_id: int) -> None:
        """Forget a segment (its file is gone)."""
        with self._lock:
            self._db.execute("DELETE FROM segments WHERE id = ?", (segment_id,))

    def unfinished(self) -> list[SegmentRow]:
        """Segments without an end: cut short by a crash, to be repaired."""
        return [r for r in self.segments() if r.end_us is None]

    def segments(self) -> list[SegmentRow]:
        """Every segment, oldest first, each with whether an event range overlaps it."""
        with self._lock:
            rows = self._db.execute(
                """
                SELECT s.id, s.path, s.start_us, s.end_us, s.bytes, s.frames,
                       EXISTS (SELECT 1 FROM protections p
                               WHERE p.start_us < COALESCE(s.end_us, ?)
                                 AND p.end_us > s.start_us)
                FROM segments s ORDER BY s.start_us, s.id
                """,
                (_OPEN_END,),
            ).fetchall()
        return [
            SegmentRow(
                id=r[0],
                path=r[1],
                start_us=r[2],
                end_us=r[3],
                bytes=r[4],
                frames=r[5],
                protected=bool(r[6]),
            )
            for r in rows
        ]

    def protect(self, ranges: Iterable[tuple[int, int]]) -> None:
        """Mark time ranges as event footage (µs since the epoch, start < end); a range
        with a start already known extends that one (an event's later messages)."""
        with self._lock:
            self._db.executemany(
                "INSERT INTO protections (start_us, end_us) VALUES (?, ?)"
                " ON CONFLICT (start_us) DO UPDATE SET end_us = max(end_us, excluded.end_us)",
                list(ranges),
            )

    def protections(self) -> list[tuple[int, int]]:
        """Every protected range, oldest first."""
        with self._lock:
            return list(self._db.execute("SELECT start_us, end_us FROM protections ORDER BY 1"))

    def prune_protections(self, before_us: int) -> None:
        """Forget event ranges that ended before ``before_us`` (their footage is gone)."""
        with self._lock:
            self._db.execute("DELETE FROM protections WHERE end_us < ?", (before_us,))

    def reconcile(self, on_disk: dict[str, int]) -> list[str]:
        """Drop rows whose file is gone; return the files (relative path → start µs) that
        have no row, after adding them as unfinished so that they are repaired."""
        with self._lock:
            known = {r[0]: r[1] for r in self._db.execute("SELECT path, id FROM segments")}
            gone = [(known[p],) for p in known if p not in on_disk]
            added = sorted(p for p in on_disk if p not in known)
            self._db.execute("BEGIN")
            self._db.executemany("DELETE FROM segments WHERE id = ?", gone)
            self._db.executemany(
                "INSERT INTO segments (path, start_us) VALUES (?, ?)",
                [(p, on_disk[p]) for p in added],
            )
            self._db.execute("COMMIT")
        return added

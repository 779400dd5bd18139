"""The upload queue: clips waiting to go to the server, on disk before anything is sent.

A table in the camera's outbox database (the same SQLite file as the event messages, WAL,
``synchronous=FULL``), so a clip queued before a crash or a power cut is sent after the
restart. A row records the clip file, its size and SHA-256, the server's ``upload_id`` once
known and the last offset the server confirmed — the progress an operator sees. Clips the
server refuses for good move to ``dead_uploads`` with the reason; their files are kept.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS uploads (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    path TEXT NOT NULL,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    started_us INTEGER NOT NULL,
    ended_us INTEGER NOT NULL,
    duration_s REAL NOT NULL,
    created_at REAL NOT NULL,
    upload_id TEXT,
    confirmed INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    UNIQUE (event_id, kind)
);
CREATE TABLE IF NOT EXISTS dead_uploads (
    id INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    path TEXT NOT NULL,
    size INTEGER NOT NULL,
    died_at REAL NOT NULL,
    status INTEGER,
    error TEXT
);
"""


@dataclass(frozen=True, slots=True)
class QueuedUpload:
    """One clip waiting to be sent."""

    id: int
    event_id: str
    kind: str
    path: Path
    size: int
    sha256: str
    started_us: int
    ended_us: int
    duration_s: float
    created_at: float
    upload_id: str | None
    confirmed: int  # bytes the server confirmed it has
    attempts: int


@dataclass(frozen=True, slots=True)
class UploadDepth:
    """What is waiting, for the heartbeat."""

    queued: int
    bytes_left: int
    oldest_s: float | None
    dead: int


_COLUMNS = (
    "id, event_id, kind, path, size, sha256, started_us, ended_us, duration_s, created_at,"
    " upload_id, confirmed, attempts"
)


class UploadQueue:
    """One camera's upload queue; thread-safe (one connection behind a lock)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        """Close the database (rows stay for the next start)."""
        with self._lock:
            self._db.close()

    def add(
        self,
        *,
        event_id: str,
        path: Path,
        size: int,
        sha256: str,
        started_us: int,
        ended_us: int,
        duration_s: float,
        kind: str = "clip",
    ) -> None:
        """Queue a finished clip file; a newer clip of the same event replaces the old row."""
        with self._lock:
            self._db.execute(
                "INSERT INTO uploads (event_id, kind, path, size, sha256, started_us, ended_us,"
                " duration_s, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (event_id, kind) DO UPDATE SET path = excluded.path,"
                " size = excluded.size, sha256 = excluded.sha256,"
                " started_us = excluded.started_us, ended_us = excluded.ended_us,"
                " duration_s = excluded.duration_s, upload_id = NULL, confirmed = 0",
                (
                    event_id,
                    kind,
                    str(path),
                    size,
                    sha256,
                    started_us,
                    ended_us,
                    duration_s,
                    time.time(),
                ),
            )

    def oldest(self) -> QueuedUpload | None:
        """The oldest clip waiting, or None."""
        with self._lock:
            row = self._db.execute(
                f"SELECT {_COLUMNS} FROM uploads ORDER BY id LIMIT 1"  # noqa: S608
            ).fetchone()
        if row is None:
            return None
        return QueuedUpload(
            id=row[0],
            event_id=row[1],
            kind=row[2],
            path=Path(row[3]),
            size=row[4],
            sha256=row[5],
            started_us=row[6],
            ended_us=row[7],
            duration_s=row[8],
            created_at=row[9],
            upload_id=row[10],
            confirmed=row[11],
            attempts=row[12],
        )

    def progress(self, row_id: int, upload_id: str, confirmed: int) -> None:
        """The server has ``confirmed`` bytes of upload ``upload_id``."""
        with self._lock:
            self._db.execute(
                "UPDATE uploads SET upload_id = ?, confirmed = ? WHERE id = ?",
                (upload_id, confirmed, row_id),
            )

    def failed(self, row_id: int, error: str) -> None:
        """An attempt failed and will be retried."""
        with self._lock:
            self._db.execute(
                "UPDATE uploads SET attempts = attempts + 1, last_error = ? WHERE id = ?",
                (error[:500], row_id),
            )

    def update_checksum(self, row_id: int, size: int, sha256: str) -> None:
        """The file on disk differs from what was queued (re-read): send what is there."""
        with self._lock:
            self._db.execute(
                "UPDATE uploads SET size = ?, sha256 = ?, upload_id = NULL, confirmed = 0"
                " WHERE id = ?",
                (size, sha256, row_id),
            )

    def done(self, row_id: int) -> None:
        """The server stored the clip: forget the row."""
        with self._lock:
            self._db.execute("DELETE FROM uploads WHERE id = ?", (row_id,))

    def bury(self, row_id: int, status: int | None, error: str) -> None:
        """Move a clip the server refuses for good to ``dead_uploads`` (the file stays)."""
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute(
                    "INSERT INTO dead_uploads (id, event_id, kind, path, size, died_at, status,"
                    " error) SELECT id, event_id, kind, path, size, ?, ?, ? FROM uploads"
                    " WHERE id = ?",
                    (time.time(), status, error[:1000], row_id),
                )
                db.execute("DELETE FROM uploads WHERE id = ?", (row_id,))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def depth(self, now: float | None = None) -> UploadDepth:
        """Clips waiting, bytes still to send, the oldest one's age, clips dead."""
        now = time.time() if now is None else now
        with self._lock:
            queued, left, oldest = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(size - confirmed), 0), MIN(created_at) FROM uploads"
            ).fetchone()
            (dead,) = self._db.execute("SELECT COUNT(*) FROM dead_uploads").fetchone()
        return UploadDepth(
            queued=queued,
            bytes_left=left,
            oldest_s=None if oldest is None else max(0.0, now - oldest),
            dead=dead,
        )

    def dead_rows(self) -> list[tuple[str, int | None, str]]:
        """(event_id, status, error) of every dead upload, oldest first."""
        with self._lock:
            return [
                (str(e), s, str(r))
                for e, s, r in self._db.execute(
                    "SELECT event_id, status, error FROM dead_uploads ORDER BY id"
                )
            ]

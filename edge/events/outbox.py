"""The durable outbox: every event message is on disk before the tracker moves on.

One SQLite file per camera in the edge's data directory (WAL, ``synchronous=FULL``: a
committed row survives a crash and a power cut). A message is one row; the delivery
task sends the oldest first and deletes it when the server took it. Messages the
server refuses for good go to the ``dead`` table with the server's reason, for an
operator to look at; nothing is deleted unseen.

Size: the outbox never drops an event. When it grows past ``max_bytes`` (or holds more
than ``max_snapshots`` snapshots), the oldest rows lose their snapshots first, and that
is logged. An edge offline for a day keeps every event of that day.

``open_events`` remembers the latest body of every event that has not ended, in the
same transaction as its messages; after a crash, ``close_orphans`` ends them so the
server does not show them as ongoing forever.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.events.message import EventMessage, iso_us

log = logging.getLogger("edge.outbox")

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    event_id TEXT NOT NULL,
    created_at REAL NOT NULL,
    body TEXT NOT NULL,
    snapshot BLOB,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
);
CREATE TABLE IF NOT EXISTS dead (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    event_id TEXT NOT NULL,
    created_at REAL NOT NULL,
    died_at REAL NOT NULL,
    body TEXT NOT NULL,
    snapshot BLOB,
    status INTEGER,
    error TEXT
);
CREATE TABLE IF NOT EXISTS open_events (
    event_id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    body TEXT NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class QueuedMessage:
    """One row waiting for delivery."""

    id: int
    key: str
    event_id: str
    created_at: float  # wall clock, seconds
    body: dict[str, Any]  # contract-3 JSON with "snapshot": null
    snapshot: bytes | None
    attempts: int


@dataclass(frozen=True, slots=True)
class Depth:
    """How much is waiting."""

    queued: int
    oldest_s: float | None  # age of the oldest waiting row
    dead: int
    snapshot_bytes: int


class Outbox:
    """One camera's outbox; thread-safe (one connection behind a lock)."""

    def __init__(
        self,
        path: Path,
        *,
        max_bytes: int = 500 * 1024 * 1024,
        max_snapshots: int = 10_000,
        camera_id: str = "",
    ) -> None:
        self.path = path
        self.camera_id = camera_id or path.parent.name
        self.max_bytes = max_bytes
        self.max_snapshots = max_snapshots
        self.snapshots_dropped = 0
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        """Close the database (pending rows stay for the next start)."""
        with self._lock:
            self._db.close()

    # -- writing (tracker side) ----------------------------------------------------------

    def enqueue(self, messages: Sequence[EventMessage]) -> None:
        """Store ``messages`` in one transaction; when this returns they are on disk."""
        if not messages:
            return
        now = time.time()
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                for message in messages:
                    body = json.dumps(message.body(), separators=(",", ":"))
                    db.execute(
                        "INSERT OR IGNORE INTO outbox (key, event_id, created_at, body, snapshot)"
                        " VALUES (?, ?, ?, ?, ?)",
                        (message.key, message.event_id, now, body, message.snapshot),
                    )
                    if message.phase == "end":
                        db.execute(
                            "DELETE FROM open_events WHERE event_id = ?", (message.event_id,)
                        )
                    else:
                        db.execute(
                            "INSERT INTO open_events (event_id, seq, body) VALUES (?, ?, ?)"
                            " ON CONFLICT (event_id) DO UPDATE SET seq = excluded.seq,"
                            " body = excluded.body",
                            (message.event_id, message.seq, body),
                        )
                dropped = self._enforce_caps()
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        if dropped:
            self.snapshots_dropped += dropped
            log.warning(
                "outbox full camera=%s action='dropped the oldest snapshots' snapshots=%d "
                "max_bytes=%d max_snapshots=%d",
                self.camera_id,
                dropped,
                self.max_bytes,
                self.max_snapshots,
            )

    def _enforce_caps(self) -> int:
        """Drop the oldest snapshots until under both caps (inside the caller's transaction)."""
        db = self._db
        count, snapshots, total = db.execute(
            "SELECT COUNT(snapshot), COALESCE(SUM(LENGTH(snapshot)), 0),"
            " COALESCE(SUM(LENGTH(body)), 0) FROM outbox"
        ).fetchone()
        total += snapshots
        excess_rows = max(0, count - self.max_snapshots)
        if total <= self.max_bytes and not excess_rows:
            return 0
        dropped = 0
        rows = db.execute(
            "SELECT id, LENGTH(snapshot) FROM outbox WHERE snapshot IS NOT NULL ORDER BY id"
        )
        victims: list[int] = []
        for row_id, size in rows:
            if total <= self.max_bytes and dropped >= excess_rows:
                break
            victims.append(row_id)
            total -= size
            dropped += 1
        db.executemany("UPDATE outbox SET snapshot = NULL WHERE id = ?", [(v,) for v in victims])
        return dropped

    def close_orphans(self, now_us: int) -> int:
        """End the events a previous run left open (it crashed); returns how many."""
        with self._lock:
            rows = self._db.execute("SELECT event_id, seq, body FROM open_events").fetchall()
        messages: list[EventMessage] = []
        for event_id, seq, body_text in rows:
            body = json.loads(body_text)
            box = body.get("box")
            messages.append(
                EventMessage(
                    event_id=event_id,
                    seq=int(seq) + 1,
                    phase="end",
                    label=str(body["label"]),
                    object=body.get("object"),
                    score=float(body["score"]),
                    box=None if box is None else (box[0], box[1], box[2], box[3]),
                    zones=tuple(body.get("zones") or ()),
                    started_us=_us(body["started_at"]),
                    at_us=now_us,
                    # The last thing known: when its last message was made.
                    ended_us=_us(body["at"]),
                )
            )
        self.enqueue(messages)
        for message in messages:
            log.warning(
                "event left open by the last run ended camera=%s event=%s label=%s ended_at=%s",
                self.camera_id,
                message.event_id,
                message.label,
                iso_us(message.ended_us or now_us),
            )
        return len(messages)

    # -- reading (delivery side) ---------------------------------------------------------

    def oldest(self) -> QueuedMessage | None:
        """The oldest row waiting, or None."""
        with self._lock:
            row = self._db.execute(
                "SELECT id, key, event_id, created_at, body, snapshot, attempts FROM outbox"
                " ORDER BY id LIMIT 1"
            ).fetchone()
        if row is None:
            return None
        return QueuedMessage(
            id=row[0],
            key=row[1],
            event_id=row[2],
            created_at=row[3],
            body=json.loads(row[4]),
            snapshot=row[5],
            attempts=row[6],
        )

    def event_pending(self, event_id: str) -> bool:
        """True while a message of ``event_id`` waits (its clip must not overtake it)."""
        with self._lock:
            row = self._db.execute(
                "SELECT 1 FROM outbox WHERE event_id = ? LIMIT 1", (event_id,)
            ).fetchone()
        return row is not None

    def delete(self, row_id: int) -> None:
        """The server has it: forget the row."""
        with self._lock:
            self._db.execute("DELETE FROM outbox WHERE id = ?", (row_id,))

    def failed(self, row_id: int, error: str) -> None:
        """A delivery attempt failed and will be retried."""
        with self._lock:
            self._db.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE id = ?",
                (error[:500], row_id),
            )

    def drop_snapshot(self, row_id: int) -> None:
        """Send this row without its snapshot from now on (the server found it too large)."""
        with self._lock:
            self._db.execute("UPDATE outbox SET snapshot = NULL WHERE id = ?", (row_id,))

    def bury(self, row_id: int, status: int | None, error: str) -> None:
        """Move a row the server refuses for good to ``dead``."""
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute(
                    "INSERT INTO dead (id, key, event_id, created_at, died_at, body, snapshot,"
                    " status, error) SELECT id, key, event_id, created_at, ?, body, snapshot, ?, ?"
                    " FROM outbox WHERE id = ?",
                    (time.time(), status, error[:1000], row_id),
                )
                db.execute("DELETE FROM outbox WHERE id = ?", (row_id,))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def depth(self, now: float | None = None) -> Depth:
        """Rows waiting, the oldest one's age, rows dead, snapshot bytes waiting."""
        now = time.time() if now is None else now
        with self._lock:
            queued, oldest, size = self._db.execute(
                "SELECT COUNT(*), MIN(created_at), COALESCE(SUM(LENGTH(snapshot)), 0) FROM outbox"
            ).fetchone()
            (dead,) = self._db.execute("SELECT COUNT(*) FROM dead").fetchone()
        return Depth(
            queued=queued,
            oldest_s=None if oldest is None else max(0.0, now - oldest),
            dead=dead,
            snapshot_bytes=size,
        )

    def dead_rows(self) -> list[tuple[str, int | None, str]]:
        """(key, status, error) of every dead row, oldest first."""
        with self._lock:
            return [
                (str(k), s, str(e))
                for k, s, e in self._db.execute("SELECT key, status, error FROM dead ORDER BY id")
            ]


def _us(iso: str) -> int:
    when = dt.datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return int(when.timestamp() * 1_000_000)

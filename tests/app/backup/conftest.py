"""A server data directory to back up, and key files."""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from app.backup.keys import generate_key_file

#: What a run must bring back (relative to the data directory), besides livecam.db.
BACKED_UP_FILES = {
    "media/door/2030-01-02/e1.abc.mp4",
    "media/door/2030-01-02/e2.def.mp4",
    "media/yard/2030-01-03/e3.123.mp4",
    "events/door/2030-01-02/e1.jpg",
    "events/yard/2030-01-03/e3.jpg",
    "vapid.pem",
    "server.secret",
}
#: What a run must leave out.
NOT_BACKED_UP = {
    "uploads/u1.part",
    "uploads/u1.json",
    "snapshots/door.jpg",
    "admin.key",
    "media/door/2030-01-02/.e9.mp4.1a2b3c4d.tmp",
}


@pytest.fixture
def data_dir(tmp_path: Path, migrated_db: Path) -> Path:
    """A data directory like the server's: a migrated SQLite database with a few rows,
    clips (one of 3 MB, several chunks), snapshots, keys, and files a backup skips."""
    data = tmp_path / "data"
    data.mkdir()
    shutil.copyfile(migrated_db, data / "livecam.db")
    with sqlite3.connect(data / "livecam.db") as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE backup_probe (id INTEGER PRIMARY KEY, note TEXT)")
        db.executemany(
            "INSERT INTO backup_probe (note) VALUES (?)", [(f"row {i}",) for i in range(100)]
        )
    for name in BACKED_UP_FILES | NOT_BACKED_UP:
        path = data / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(3_000_000 if name.endswith("e1.abc.mp4") else 5000))
    (data / "vapid.pem").chmod(0o600)
    (data / "server.secret").chmod(0o600)
    return data


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "keys" / "backup.key"
    path.parent.mkdir()
    generate_key_file(path)
    return path

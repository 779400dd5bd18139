"""A backup taken while the server keeps writing restores to a consistent database."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from app.backup.database import copy_database
from app.backup.errors import BackupError
from tests.app.backup.helpers import run_cli

ACCOUNTS = 50
START_BALANCE = 1000
PAYLOAD = 2000  # bytes per ledger row: the database grows to several MB meanwhile


def make_db(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE account (id INTEGER PRIMARY KEY, balance INTEGER NOT NULL)")
        db.execute(
            "CREATE TABLE ledger (id INTEGER PRIMARY KEY, src INT, dst INT, amount INT, "
            "payload BLOB)"
        )
        db.execute("CREATE TABLE counter (n INTEGER NOT NULL)")
        db.execute("INSERT INTO counter VALUES (0)")
        db.executemany(
            "INSERT INTO account VALUES (?, ?)", [(i, START_BALANCE) for i in range(ACCOUNTS)]
        )


class Writer(threading.Thread):
    """Transfers money between accounts, one transaction at a time, as fast as it can:
    each transaction updates two rows, appends a ledger row and bumps the counter.
    Any consistent snapshot has sum(balance) constant and count(ledger) == counter."""

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.commits = 0
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            db.execute("PRAGMA synchronous=NORMAL")
            i = 0
            while not self.stop.is_set():
                i += 1
                src, dst = i % ACCOUNTS, (i * 7 + 3) % ACCOUNTS
                db.execute("BEGIN IMMEDIATE")
                db.execute("UPDATE account SET balance = balance - 1 WHERE id = ?", (src,))
                db.execute("UPDATE account SET balance = balance + 1 WHERE id = ?", (dst,))
                db.execute(
                    "INSERT INTO ledger (src, dst, amount, payload) VALUES (?, ?, 1, ?)",
                    (src, dst, bytes(PAYLOAD)),
                )
                db.execute("UPDATE counter SET n = n + 1")
                db.execute("COMMIT")
                self.commits += 1
            db.close()
        except BaseException as exc:
            self.error = exc


def wait_for(check: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def assert_consistent(path: Path) -> int:
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        (total,) = db.execute("SELECT sum(balance) FROM account").fetchone()
        assert total == ACCOUNTS * START_BALANCE
        (ledger,) = db.execute("SELECT count(*) FROM ledger").fetchone()
        (counter,) = db.execute("SELECT n FROM counter").fetchone()
        assert ledger == counter
        return int(counter)


def test_backup_of_a_live_database_restores_consistent(tmp_path: Path, key_file: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    db_path = data / "livecam.db"
    make_db(db_path)
    writer = Writer(db_path)
    writer.start()
    try:
        wait_for(lambda: writer.commits >= 2000)  # a few MB of database and WAL
        before = writer.commits
        target = tmp_path / "backups"
        result = run_cli("run", "--target", target, "--key-file", key_file, "--data", data)
        during = writer.commits - before
        assert result.returncode == 0, result.stderr
        # The server went on committing while the backup ran (WAL: readers never block).
        assert during > 0
        restored = tmp_path / "restored"
        result = run_cli(
            "restore", "latest", "--to", restored, "--target", target, "--key-file", key_file
        )
        assert result.returncode == 0, result.stderr
    finally:
        writer.stop.set()
        writer.join(timeout=30)
    assert writer.error is None
    assert not (restored / "livecam.db-wal").exists()
    counter = assert_consistent(restored / "livecam.db")
    assert before <= counter <= writer.commits


def test_copy_database_refuses_missing_sqlite_file(tmp_path: Path) -> None:
    with pytest.raises(BackupError, match="does not exist"):
        copy_database(f"sqlite:///{tmp_path / 'nope.db'}", tmp_path)
    assert not (tmp_path / "nope.db").exists()  # not created as an empty database


def test_postgres_without_pg_dump_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no pg_dump there
    with pytest.raises(BackupError, match="pg_dump is not on PATH"):
        copy_database("postgresql+psycopg://livecam:secret@127.0.0.1:5432/livecam", tmp_path)
    assert list(tmp_path.iterdir()) == []

"""A consistent copy of the server's database, made while the server keeps writing.

* SQLite (the default, ``$LIVECAM_DATA/livecam.db``): sqlite3's online backup API copies
  every page in one step inside one read transaction. With the server's WAL journal the
  writers carry on meanwhile, and the copy is the database as of one commit, never a mix
  of two (a raw copy of the file and its ``-wal`` could be). The copy is checked with
  ``PRAGMA quick_check`` before it is backed up.
* PostgreSQL (``DATABASE_URL=postgresql...``): ``pg_dump --format=custom`` (one snapshot
  transaction), restored with ``pg_restore``. The password goes to pg_dump through
  ``PGPASSWORD``, never on its command line.
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from app.backup.errors import BackupError

log = logging.getLogger("app.backup.database")

SQLITE_NAME = "livecam.db"
POSTGRES_DUMP_NAME = "postgresql.dump"


@dataclass(frozen=True, slots=True)
class DatabaseCopy:
    """A finished copy: ``path`` holds it, ``name`` is where restore puts it (relative to
    the restored data directory), ``kind`` is "sqlite" or "postgresql-dump"."""

    path: Path
    name: str
    kind: str


def default_database_url(data_dir: Path) -> str:
    """The URL the server uses when DATABASE_URL is unset (see app/settings.py)."""
    return f"sqlite:///{data_dir / SQLITE_NAME}"


def copy_database(url: str, workdir: Path) -> DatabaseCopy:
    """A consistent copy of the database at ``url``, written into ``workdir``."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise BackupError(f"DATABASE_URL {url!r} is not a database URL") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            raise BackupError(f"DATABASE_URL {url!r} names no database file")
        return _copy_sqlite(Path(parsed.database), workdir)
    if backend == "postgresql":
        return _dump_postgres(url, workdir)
    raise BackupError(f"cannot back up a {backend} database (SQLite and PostgreSQL only)")


def _copy_sqlite(source: Path, workdir: Path) -> DatabaseCopy:
    if not source.is_file():
        raise BackupError(f"the database {source} does not exist (check --data / DATABASE_URL)")
    target = workdir / SQLITE_NAME
    try:
        # mode=rw: never create an empty database where the real one was expected.
        src = sqlite3.connect(f"{source.resolve().as_uri()}?mode=rw", uri=True, timeout=30)
    except sqlite3.Error as exc:
        raise BackupError(f"cannot open the database {source}: {exc}") from None
    try:
        dst = sqlite3.connect(target)
        try:
            # pages=-1: all pages in one step, i.e. one read transaction: a consistent
            # snapshot even while the server commits (WAL lets it go on writing).
            src.backup(dst, pages=-1)
            row = dst.execute("PRAGMA quick_check").fetchone()
            if not row or row[0] != "ok":
                raise BackupError(f"the copy of {source} fails PRAGMA quick_check: {row}")
        finally:
            dst.close()
    except sqlite3.Error as exc:
        raise BackupError(f"copying the database {source} failed: {exc}") from None
    finally:
        src.close()
    log.info(
        "database copied",
        extra={"kind": "sqlite", "source": str(source), "bytes": target.stat().st_size},
    )
    return DatabaseCopy(target, SQLITE_NAME, "sqlite")


def _dump_postgres(url: str, workdir: Path) -> DatabaseCopy:
    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:
        raise BackupError(
            "DATABASE_URL is PostgreSQL but pg_dump is not on PATH: install the PostgreSQL "
            "client (e.g. apt install postgresql-client) of the server's major version"
        )
    parsed = make_url(url)
    env = dict(os.environ)
    if parsed.password:
        env["PGPASSWORD"] = str(parsed.password)
    libpq = parsed.set(drivername="postgresql", password=None).render_as_string(hide_password=False)
    target = workdir / POSTGRES_DUMP_NAME
    proc = subprocess.run(
        [pg_dump, "--format=custom", "--no-password", "--file", str(target), libpq],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise BackupError(f"pg_dump failed (exit {proc.returncode}): {proc.stderr.strip()}")
    log.info(
        "database copied",
        extra={"kind": "postgresql-dump", "bytes": target.stat().st_size},
    )
    return DatabaseCopy(target, POSTGRES_DUMP_NAME, "postgresql-dump")

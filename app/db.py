"""Database engine and sessions. SQLite by default; PostgreSQL via DATABASE_URL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

SessionFactory = sessionmaker[Session]


def make_engine(url: str) -> Engine:
    """An engine for `url`; SQLite gets WAL, foreign keys and cross-thread use."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)

    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 15})

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            if parsed.database and parsed.database != ":memory:":
                cursor.execute("PRAGMA journal_mode=WAL")
                # Safe with WAL (no corruption on power loss) and far fewer fsyncs,
                # which matters for heartbeat writes on an SD card.
                cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=15000")
        finally:
            cursor.close()

    return engine


def make_session_factory(engine: Engine) -> SessionFactory:
    return sessionmaker(engine, expire_on_commit=False)


#: pg_advisory_lock key held while a process migrates and bootstraps ("livecam" in hex).
STARTUP_LOCK_KEY = 0x6C69766563616D


@contextmanager
def startup_lock(engine: Engine) -> Iterator[None]:
    """Serialises start-up work (migrations, first admin key, secrets) between API
    replicas starting at once on one PostgreSQL database. SQLite: nothing to do (one
    host, and its own write lock)."""
    if engine.dialect.name != "postgresql":
        yield
        return
    with engine.connect() as connection:
        connection.exec_driver_sql(f"SELECT pg_advisory_lock({STARTUP_LOCK_KEY})")
        connection.commit()
        try:
            yield
        finally:
            connection.exec_driver_sql(f"SELECT pg_advisory_unlock({STARTUP_LOCK_KEY})")
            connection.commit()


@contextmanager
def session_scope(factory: SessionFactory) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    with factory() as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise

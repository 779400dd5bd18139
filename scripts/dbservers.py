"""Real Redis and PostgreSQL servers on loopback, from Debian's packages.

The scale-out tests (two livekit-server nodes sharing a Redis, two API replicas on one
PostgreSQL), the PostgreSQL tests and the benchmarks start these, so the code that talks
to them meets the real servers, never a stand-in. Each server gets a fresh directory and
a free port and is stopped (and can be restarted on the same port, as the soak does).

PostgreSQL refuses to run as root, so when the tests run as root (CI) the cluster is
created and run as Debian's ``postgres`` user, in a directory that user owns.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scripts.devstack import ManagedProcess, StackError, free_tcp_port

PG_BIN_DIRS = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


@dataclass
class Redis:
    """A running redis-server on 127.0.0.1."""

    port: int
    process: ManagedProcess

    @property
    def url(self) -> str:
        """redis:// URL for clients (the API's LIVECAM_REDIS_URL)."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def address(self) -> str:
        """host:port, as livekit-server's ``redis.address`` wants it."""
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start (or restart on the same port) and wait until it answers PING."""
        self.process.start()
        self.process.wait_until(lambda: _redis_ping(self.port), "redis PING", timeout=30)

    def stop(self) -> None:
        """Stop (idempotent)."""
        self.process.stop()


def _redis_ping(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1.0) as s:
        s.sendall(b"PING\r\n")
        return s.recv(64).startswith(b"+PONG")


@contextlib.contextmanager
def running_redis(workdir: Path) -> Iterator[Redis]:
    """redis-server on a free loopback port, no persistence; stopped on exit."""
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(binary).is_file():
        raise StackError("redis-server is missing: `./run test` installs Debian's redis-server")
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_tcp_port()
    argv = [
        binary,
        "--bind",
        "127.0.0.1",
        "--port",
        str(port),
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(workdir),
    ]
    redis = Redis(port, ManagedProcess("redis", argv, workdir / "redis.log", dict(os.environ)))
    try:
        redis.start()
        yield redis
    finally:
        redis.stop()


def pg_bin(name: str) -> str:
    """A PostgreSQL server program (initdb, postgres) from Debian's postgresql package."""
    for directory in PG_BIN_DIRS:
        if (directory / name).is_file():
            return str(directory / name)
    found = shutil.which(name)
    if found:
        return found
    raise StackError(f"{name} is missing: `./run test` installs Debian's postgresql")


@dataclass
class Postgres:
    """A running PostgreSQL cluster on 127.0.0.1 with one database."""

    port: int
    user: str
    password: str
    database: str
    process: ManagedProcess

    @property
    def url(self) -> str:
        """SQLAlchemy URL (the API's DATABASE_URL)."""
        return (
            f"postgresql+psycopg://{self.user}:{self.password}"
            f"@127.0.0.1:{self.port}/{self.database}"
        )

    def start(self) -> None:
        """Start (or restart on the same port) and wait until it accepts connections."""
        self.process.start()
        self.process.wait_until(self._ready, "postgres connections", timeout=60)

    def stop(self) -> None:
        """Stop (fast shutdown; idempotent)."""
        self.process.stop(timeout=30.0, sig=2)  # SIGINT: PostgreSQL's "fast" shutdown

    def _admin_connection(self) -> Any:
        """A connection to the cluster's ``postgres`` database (autocommit)."""
        import psycopg

        return psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user=self.user,
            password=self.password,
            dbname="postgres",
            connect_timeout=2,
            autocommit=True,
        )

    def _ready(self) -> bool:
        with self._admin_connection():
            return True

    def create_database(self, name: str) -> str:
        """Another empty database in this cluster; its URL."""
        with self._admin_connection() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url.rsplit("/", 1)[0] + "/" + name


def _as_postgres_user() -> tuple[Callable[[], None] | None, int, int]:
    """A preexec function dropping to Debian's ``postgres`` user when we are root."""
    if os.getuid() != 0:
        return None, os.getuid(), os.getgid()
    try:
        entry = pwd.getpwnam("postgres")
    except KeyError as exc:
        raise StackError("running as root and there is no postgres user to run as") from exc
    uid, gid = entry.pw_uid, entry.pw_gid

    def drop() -> None:
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)

    return drop, uid, gid


@contextlib.contextmanager
def running_postgres(workdir: Path, database: str = "livecam") -> Iterator[Postgres]:
    """A fresh PostgreSQL cluster on a free loopback port (password auth); stopped and
    removed on exit."""
    preexec, uid, gid = _as_postgres_user()
    workdir.mkdir(parents=True, exist_ok=True)
    # The cluster lives in its own directory that the server's user owns: pytest's
    # tmp_path is private to root, and PostgreSQL insists on 0700 for its data.
    base = Path(tempfile.mkdtemp(prefix="livecam-pg-"))
    os.chown(base, uid, gid)
    data = base / "data"
    password = secrets.token_urlsafe(16)
    pwfile = base / "pw"
    pwfile.write_text(password + "\n")
    os.chown(pwfile, uid, gid)
    env = {"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8", "HOME": str(base)}
    log = workdir / "postgres.log"
    with log.open("ab") as out:
        done = subprocess.run(
            [
                pg_bin("initdb"),
                "-D",
                str(data),
                "-U",
                "livecam",
                "--auth=scram-sha-256",
                f"--pwfile={pwfile}",
                "-E",
                "UTF8",
                "--no-sync",  # a test cluster: speed over crash safety of its catalog
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            preexec_fn=preexec,
        )
    if done.returncode != 0:
        raise StackError(f"initdb failed:\n{log.read_text(errors='replace')[-2000:]}")
    port = free_tcp_port()
    argv = [
        pg_bin("postgres"),
        "-D",
        str(data),
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
        "-k",
        str(base),
        "-c",
        "fsync=off",
        "-c",
        "max_connections=200",
    ]
    if preexec is not None:
        # ManagedProcess has no preexec hook: setpriv (util-linux) drops to postgres.
        argv = ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", *argv]
    process = ManagedProcess("postgres", argv, log, env)
    pg = Postgres(port, "livecam", password, database, process)
    try:
        pg.start()
        pg.create_database(database)
        yield pg
    finally:
        pg.stop()
        shutil.rmtree(base, ignore_errors=True)

"""Fixtures shared by the suites that run the real stack (integration, browser)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from scripts.dbservers import Postgres, Redis, running_postgres, running_redis
from scripts.devstack import ManagedProcess, Stack, running_stack
from tests.livestack import EdgeFactory, start_edge_cameras


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One LiveKit + API per test module (starting them takes ~1 s)."""
    with running_stack(tmp_path_factory.mktemp("stack")) as s:
        yield s


@pytest.fixture
def start_cameras(stack: Stack, tmp_path: Path) -> Iterator[EdgeFactory]:
    """Create cameras in the API and run one edge process publishing them."""
    started: list[ManagedProcess] = []

    def _start(
        *sources: dict[str, Any], name: str = "edge", publisher: str = "libwebrtc"
    ) -> tuple[list[str], ManagedProcess]:
        ids, edge = start_edge_cameras(stack, tmp_path, sources, name=name, publisher=publisher)
        started.append(edge)
        return ids, edge

    yield _start
    for edge in started:
        edge.stop()


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Postgres]:
    """One real PostgreSQL cluster (Debian's postgresql) for the whole run."""
    with running_postgres(tmp_path_factory.mktemp("postgres")) as pg:
        yield pg


@pytest.fixture
def postgres_url(request: pytest.FixtureRequest) -> str:
    """A fresh, empty PostgreSQL database for one test: in the cluster the run started,
    or (LIVECAM_TEST_POSTGRES_URL) one the caller provides."""
    given = os.environ.get("LIVECAM_TEST_POSTGRES_URL", "")
    if given:
        return given
    pg: Postgres = request.getfixturevalue("postgres")
    return pg.create_database("t_" + secrets.token_hex(6))


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[Redis]:
    """A real redis-server (Debian's) for one test; tests may stop and restart it."""
    with running_redis(tmp_path / "redis") as redis:
        yield redis

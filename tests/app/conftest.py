"""Fixtures: a migrated temp data dir, an app with a movable clock and a fake LiveKit."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.db import make_engine
from app.main import create_app
from app.migrations import upgrade
from app.settings import Settings
from tests.app.helpers import FakeClock, FakeRooms, make_settings, prepare


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "data")


@pytest.fixture(scope="session")
def migrated_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A freshly migrated SQLite file, made once and copied into each test's data dir."""
    path = tmp_path_factory.mktemp("template") / "livecam.db"
    engine = make_engine(f"sqlite:///{path}")
    try:
        upgrade(engine)
    finally:
        engine.dispose()
    return path


@pytest.fixture
def admin_key(settings: Settings, migrated_db: Path) -> str:
    settings.ensure_data_dir()
    shutil.copyfile(migrated_db, settings.data_dir / "livecam.db")
    key = prepare(settings)  # the migration is then a no-op
    assert key is not None
    return key


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def rooms() -> FakeRooms:
    return FakeRooms()


@pytest.fixture
def app(settings: Settings, admin_key: str, clock: FakeClock, rooms: FakeRooms) -> FastAPI:
    application = create_app(settings)
    application.state.clock = clock
    application.state.rooms = rooms
    return application


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def admin(admin_key: str) -> dict[str, str]:
    """Headers that authenticate as admin."""
    return {"Authorization": f"Bearer {admin_key}"}


@pytest.fixture(autouse=True)
def _keep_root_logger() -> Iterator[None]:
    """Tests that run configure_logging must not leave their handler behind."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)

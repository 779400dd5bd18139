"""Test helpers: constants, a movable clock, a fake LiveKit, API shortcuts."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.admin_keys import bootstrap_admin_key
from app.db import make_engine, make_session_factory
from app.migrations import upgrade
from app.settings import Settings

API_KEY = "devkey"
API_SECRET = "test-secret-0123456789-0123456789-abcdef"
PUBLIC_URL = "wss://live.example.test"


def closed_port() -> int:
    """A loopback port nobody listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class FakeRooms:
    """Stands in for LiveKit's RoomService."""

    def __init__(self) -> None:
        self.deleted: list[str] = []
        self.list_calls = 0
        self.fail: Exception | None = None

    async def list_rooms(self) -> int:
        self.list_calls += 1
        if self.fail:
            raise self.fail
        return 0

    async def delete_room(self, room: str) -> None:
        if self.fail:
            raise self.fail
        self.deleted.append(room)


def make_settings(data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "database_url": f"sqlite:///{data_dir / 'livecam.db'}",
        "livekit_url": f"ws://127.0.0.1:{closed_port()}",
        "livekit_public_url": PUBLIC_URL,
        "livekit_api_key": API_KEY,
        "livekit_api_secret": API_SECRET,
    }
    values.update(overrides)
    values["_env_file"] = None  # ignore any .env in the working directory
    return Settings(**values)


def prepare(settings: Settings) -> str | None:
    """What `python -m app` does before serving: migrate, bootstrap the admin key."""
    settings.ensure_data_dir()
    engine = make_engine(settings.database_url)
    try:
        upgrade(engine)
        with make_session_factory(engine)() as session:
            return bootstrap_admin_key(session, settings.data_dir, datetime.now(UTC))
    finally:
        engine.dispose()


def create_camera(
    client: TestClient, admin: dict[str, str], camera_id: str = "door", name: str = "Front door"
) -> dict[str, Any]:
    response = client.post("/api/cameras", json={"id": camera_id, "name": name}, headers=admin)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def enroll(client: TestClient, code: str) -> str:
    response = client.post("/api/edge/enroll", json={"code": code})
    assert response.status_code == 200, response.text
    credential: str = response.json()["credential"]
    return credential


def enrolled_edge(
    client: TestClient, admin: dict[str, str], camera_id: str = "door"
) -> dict[str, str]:
    """Creates a camera, enrolls its edge and returns the edge's auth headers."""
    created = create_camera(client, admin, camera_id)
    return {"Authorization": f"Bearer {enroll(client, created['enrollment']['code'])}"}


def assert_error(response: Any, status: int, code: str) -> str:
    """Checks the JSON error shape; returns the message."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message"}
    assert body["error"]["code"] == code
    message: str = body["error"]["message"]
    assert message
    return message


@contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    """The app served by uvicorn on a free loopback port (TestClient cannot stream)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_config=None, timeout_graceful_shutdown=1, lifespan="on")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    started = threading.Event()
    while not started.wait(0.01):
        if server.started:
            started.set()
        assert thread.is_alive(), "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()

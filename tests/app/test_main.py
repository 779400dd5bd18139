"""app/__main__.py and app/main.py: start-up, the bootstrap admin key, error shapes, docs."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

import app.__main__ as entry
from app.admin_keys import bootstrap_admin_key, write_secret_file
from app.db import make_engine, make_session_factory
from app.main import create_app
from tests.app.helpers import API_KEY, API_SECRET, FakeClock, assert_error, prepare


class StartedServers:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(self, app: FastAPI, **kwargs: Any) -> None:
        self.calls.append({"app": app, **kwargs})


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> StartedServers:
    """Runs `python -m app` in-process, with uvicorn.run replaced by a recorder."""
    for name in list(os.environ):
        if name.startswith(("LIVECAM_", "LIVEKIT_")) or name == "DATABASE_URL":
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LIVEKIT_API_KEY", API_KEY)
    monkeypatch.setenv("LIVEKIT_API_SECRET", API_SECRET)
    monkeypatch.setenv("LIVECAM_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("LIVECAM_PORT", "18123")
    servers = StartedServers()
    monkeypatch.setattr("app.__main__.uvicorn.run", servers)
    return servers


def test_first_start_creates_admin_key(
    started: StartedServers, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert entry.main() == 0
    out = capsys.readouterr().out
    key_file = tmp_path / "data" / "admin.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = key_file.read_text().strip()
    assert re.fullmatch(r"lca_[A-Za-z0-9_-]{40}", key)
    assert key in out
    assert str(key_file) in out
    assert started.calls[0]["host"] == "127.0.0.1"
    assert started.calls[0]["port"] == 18123

    with TestClient(started.calls[0]["app"]) as client:
        headers = {"Authorization": f"Bearer {key}"}
        assert client.get("/api/cameras", headers=headers).status_code == 200

    # The second start keeps the key and prints nothing about it.
    assert entry.main() == 0
    assert "lca_" not in capsys.readouterr().out
    assert key_file.read_text().strip() == key
    with TestClient(started.calls[1]["app"]) as client:
        headers = {"Authorization": f"Bearer {key}"}
        assert client.get("/api/cameras", headers=headers).status_code == 200


def test_key_is_never_logged(
    started: StartedServers, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    entry.main()
    key = (tmp_path / "data" / "admin.key").read_text().strip()
    captured = capsys.readouterr()
    assert key in captured.out  # the banner, once
    assert "bootstrap admin key created" in captured.err  # the log line
    assert key not in captured.err


def test_start_without_livekit_keys_fails_clearly(
    started: StartedServers, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("LIVEKIT_API_KEY")
    monkeypatch.delenv("LIVEKIT_API_SECRET")
    assert entry.main() == 2
    err = capsys.readouterr().err
    assert "LIVEKIT_API_KEY and LIVEKIT_API_SECRET must be set" in err
    assert started.calls == []


def test_bootstrap_only_when_no_admin_key(tmp_path: Path) -> None:
    from tests.app.helpers import make_settings

    settings = make_settings(tmp_path / "data")
    first = prepare(settings)
    assert first is not None
    assert prepare(settings) is None
    engine = make_engine(settings.database_url)
    try:
        with make_session_factory(engine)() as session:
            assert bootstrap_admin_key(session, settings.data_dir, FakeClock()()) is None
    finally:
        engine.dispose()


def test_secret_file_replaces_stale_file_and_symlink(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("do not touch")
    link = tmp_path / "admin.key"
    link.symlink_to(target)
    write_secret_file(link, "secret\n")
    assert target.read_text() == "do not touch"
    assert not link.is_symlink()
    assert link.read_text() == "secret\n"
    assert stat.S_IMODE(link.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_admin_key_file_mode_under_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        write_secret_file(tmp_path / "admin.key", "secret\n")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "admin.key").stat().st_mode) == 0o600


# --- error shapes --------------------------------------------------------------------


def test_unknown_route_is_json_404(client: TestClient) -> None:
    message = assert_error(client.get("/api/nope"), 404, "not_found")
    assert "/api/nope" in message
    assert_error(client.get("/nope"), 404, "not_found")  # "/" is the dashboard


def test_wrong_method_is_json_405(client: TestClient) -> None:
    response = client.delete("/api/health")
    assert_error(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "GET"


def test_unhandled_error_is_generic_json_500(
    app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    @app.get("/api/boom")
    def boom() -> None:
        raise RuntimeError("secret internals")

    with TestClient(app) as client:
        response = client.get("/api/boom")
    message = assert_error(response, 500, "internal_error")
    assert "secret internals" not in message
    records = [r for r in caplog.records if r.getMessage() == "unhandled error"]
    assert len(records) == 1
    assert records[0].exc_info is not None
    assert records[0].path == "/api/boom"  # type: ignore[attr-defined]


def test_openapi_documents_the_api(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    schema = client.get("/openapi.json").json()
    paths = schema["paths"]
    for path in (
        "/api/cameras",
        "/api/cameras/{camera_id}",
        "/api/cameras/{camera_id}/enrollment",
        "/api/cameras/{camera_id}/credentials",
        "/api/cameras/{camera_id}/viewer-token",
        "/api/cameras/{camera_id}/status",
        "/api/edge/enroll",
        "/api/edge/token",
        "/api/edge/heartbeat",
        "/api/health",
        "/api/livekit/webhook",
    ):
        assert path in paths, path
    create = paths["/api/cameras"]["post"]["responses"]
    assert create["201"]["content"]["application/json"]["schema"]["$ref"].endswith("/CameraCreated")
    assert create["409"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorResponse")
    assert create["422"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorResponse")
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    assert set(schema["components"]["securitySchemes"]) == {"AdminKey", "EdgeCredential"}


def test_create_app_reads_settings_from_environment(
    started: StartedServers, tmp_path: Path
) -> None:
    prepared = create_app()
    assert prepared.state.settings.data_dir == tmp_path / "data"
    assert (tmp_path / "data").is_dir()

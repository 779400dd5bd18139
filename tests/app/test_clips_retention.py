"""Clip retention on the server (app/clip_retention.py): by age, by the media budget,
leftover objects and stale staging uploads, on the local store and on real S3."""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.clip_retention import RetentionResult
from app.main import create_app
from app.settings import Settings
from scripts.s3server import S3Server, running_s3
from tests.app.clip_helpers import BUCKET, new_event, put, sha, start, upload, wait_for
from tests.app.event_helpers import T0, iso
from tests.app.helpers import FakeClock, assert_error, enrolled_edge, make_settings

BUDGET_BYTES = 3000  # LIVECAM_MEDIA_MAX_GB = 3e-6


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with running_s3(tmp_path_factory.mktemp("s3"), BUCKET) as server:
        yield server


@pytest.fixture(params=["local", "s3"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    extra: dict[str, Any] = {"media_max_gb": BUDGET_BYTES / 1e9, "clip_retention_days": 10}
    if request.param == "s3":
        s3: S3Server = request.getfixturevalue("s3")
        extra.update(
            s3_bucket=BUCKET,
            s3_prefix=f"ret-{uuid.uuid4().hex[:8]}",
            s3_endpoint_url=s3.endpoint_url,
            s3_region=s3.region,
            s3_access_key_id=s3.access_key,
            s3_secret_access_key=s3.secret_key,
        )
    return make_settings(tmp_path / "data", **extra)


@pytest.fixture
def edge(client: TestClient, admin: dict[str, str]) -> dict[str, str]:
    return enrolled_edge(client, admin, "door")


def run_retention(client: TestClient, app: FastAPI) -> RetentionResult:
    """One retention pass on the app's own event loop."""
    result: RetentionResult = client.portal.call(app.state.clip_retention.run_once)  # type: ignore[union-attr]
    return result


def stored_keys(app: FastAPI) -> list[str]:
    return sorted(o.key for o in app.state.media_store.list_objects("clips"))


def clip_of(client: TestClient, admin: dict[str, str], event_id: str) -> Any:
    return client.get(f"/api/events/{event_id}", headers=admin).json()["clip"]


def upload_started(
    client: TestClient, edge: dict[str, str], data: bytes, days_ago: float, clock: FakeClock
) -> str:
    """An event whose clip started ``days_ago`` before the clock; the event id."""
    started = clock() - timedelta(days=days_ago)
    event_id = new_event(client, edge, started=started)
    times = {"started_at": iso(started), "ended_at": iso(started + timedelta(seconds=10))}
    body = start(client, edge, event_id, data, **times).json()
    upload_id = body["upload_id"]
    while not body["complete"]:
        body = put(client, edge, upload_id, data, body["offset"]).json()
    return event_id


def test_clips_past_retention_go_and_their_events_stay(
    client: TestClient,
    app: FastAPI,
    admin: dict[str, str],
    edge: dict[str, str],
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="app.clip_retention")
    old = upload_started(client, edge, b"o" * 1000, 11, clock)
    recent = upload_started(client, edge, b"r" * 1000, 9, clock)
    assert len(stored_keys(app)) == 2
    version = client.get(f"/api/events/{old}", headers=admin).json()["version"]

    result = run_retention(client, app)
    assert (result.expired, result.expired_bytes, result.over_budget) == (1, 1000, 0)
    assert clip_of(client, admin, old) is None
    after = client.get(f"/api/events/{old}", headers=admin).json()
    assert after["version"] > version  # a change: SSE clients see the clip go
    assert clip_of(client, admin, recent)["sha256"] == sha(b"r" * 1000)
    [kept] = stored_keys(app)
    assert recent in kept
    assert_error(client.get(f"/api/events/{old}/clip.mp4", headers=admin), 404, "no_clip")
    [logged] = [r for r in caplog.records if r.getMessage() == "clip retention"]
    assert (logged.expired, logged.bytes_freed) == (1, 1000)  # type: ignore[attr-defined]
    # Nothing left to do: a second pass removes nothing.
    assert not run_retention(client, app).anything


def test_the_oldest_clips_go_when_the_budget_is_exceeded(
    client: TestClient, app: FastAPI, admin: dict[str, str], edge: dict[str, str], clock: FakeClock
) -> None:
    oldest = upload_started(client, edge, b"1" * 1500, 5, clock)
    middle = upload_started(client, edge, b"2" * 1500, 3, clock)
    newest = upload_started(client, edge, b"3" * 1500, 1, clock)
    result = run_retention(client, app)
    assert (result.over_budget, result.over_budget_bytes, result.expired) == (1, 1500, 0)
    assert clip_of(client, admin, oldest) is None
    assert clip_of(client, admin, middle) is not None
    assert clip_of(client, admin, newest) is not None
    assert len(stored_keys(app)) == 2
    # Within budget (3000 of 3000 bytes): nothing more goes.
    assert run_retention(client, app).over_budget == 0


def test_media_no_clip_points_at_is_swept_after_a_grace_period(
    client: TestClient, app: FastAPI, admin: dict[str, str], edge: dict[str, str], clock: FakeClock
) -> None:
    kept = upload_started(client, edge, b"k" * 100, 1, clock)
    # A camera deleted with its events leaves its clip objects behind.
    other = enrolled_edge(client, admin, "yard")
    gone = upload_started(client, other, b"g" * 100, 1, clock)
    assert client.delete("/api/cameras/yard", headers=admin).status_code == 204
    assert len(stored_keys(app)) == 2
    assert run_retention(client, app).orphans == 0  # too young: may be a put in progress
    app.state.clip_retention.orphan_grace_s = 0
    result = run_retention(client, app)
    assert (result.orphans, result.orphan_bytes) == (1, 100)
    [left] = stored_keys(app)
    assert kept in left
    assert gone not in left
    assert clip_of(client, admin, kept) is not None


def test_stale_staging_uploads_are_removed(
    client: TestClient, app: FastAPI, edge: dict[str, str], settings: Settings, clock: FakeClock
) -> None:
    data = os.urandom(5000)
    stale_event, fresh_event = new_event(client, edge), new_event(client, edge)
    stale = start(client, edge, stale_event, data).json()["upload_id"]
    assert put(client, edge, stale, data, 0, 2000).status_code == 200
    clock.advance(47 * 3600)
    fresh = start(client, edge, fresh_event, data).json()["upload_id"]
    assert run_retention(client, app).stale_uploads == 0  # 47 h: not yet
    clock.advance(2 * 3600)
    result = run_retention(client, app)
    assert (result.stale_uploads, result.stale_bytes) == (1, 2000)
    assert_error(client.get(f"/api/edge/uploads/{stale}", headers=edge), 404, "unknown_upload")
    assert client.get(f"/api/edge/uploads/{fresh}", headers=edge).json()["offset"] == 0
    staged = sorted(p.name for p in (settings.data_dir / "uploads").iterdir())
    assert staged == [f"{fresh}.json", f"{fresh}.part"]
    # The edge comes back after all: a new upload from 0.
    assert start(client, edge, stale_event, data).json()["offset"] == 0


def test_retention_runs_in_the_apps_retention_loop(
    settings: Settings, admin_key: str, clock: FakeClock
) -> None:
    """Started with the app (the event pruner's loop), before events are pruned: an
    expired clip is gone shortly after startup, with no call from outside."""
    admin = {"Authorization": f"Bearer {admin_key}"}
    first = create_app(settings)
    first.state.clock = clock
    with TestClient(first) as client:
        edge = enrolled_edge(client, admin, "door")
        event_id = new_event(client, edge)
        upload(client, edge, event_id, b"x" * 500)
        assert stored_keys(first)
    clock.advance(11 * 86400)
    second = create_app(settings)
    second.state.clock = clock
    with TestClient(second) as client:
        wait_for(lambda: clip_of(client, admin, event_id) is None, "the expired clip removed")
        wait_for(lambda: not stored_keys(second), "the expired clip's object removed")


def test_the_clip_cutoff_never_outlives_the_events(
    settings: Settings, admin_key: str, clock: FakeClock
) -> None:
    """With event retention shorter than clip retention, a clip goes before its event,
    never left in the store after the event row took the clip row along."""
    settings.clip_retention_days = 30
    settings.event_retention_days = 7
    app = create_app(settings)
    app.state.clock = clock
    admin = {"Authorization": f"Bearer {admin_key}"}
    with TestClient(app) as client:
        edge = enrolled_edge(client, admin, "door")
        event_id = new_event(client, edge, started=T0)
        upload(client, edge, event_id, b"e" * 100)
        clock.advance(8 * 86400)
        assert run_retention(client, app).expired == 1
        assert client.portal.call(app.state.event_pruner.prune_now).events == 1  # type: ignore[union-attr]
        assert stored_keys(app) == []

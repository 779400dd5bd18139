"""Clip uploads (contract 5) into the local media store: chunks, resume, checksums,
refusals, concurrency, a full disk."""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

import app.uploads as uploads_module
from app.main import create_app
from app.media_store import LocalMediaStore, StorageFull
from app.settings import Settings
from tests.app.clip_helpers import (
    CHUNK,
    chunk_headers,
    make_mp4,
    new_event,
    put,
    sha,
    start,
    start_body,
    upload,
    wait_for,
)
from tests.app.event_helpers import FakeRoomData
from tests.app.helpers import FakeClock, assert_error, enrolled_edge, serve


@pytest.fixture
def room_data(app: FastAPI) -> FakeRoomData:
    fake = FakeRoomData()
    app.state.room_data = fake
    return fake


@pytest.fixture
def client(app: FastAPI, room_data: FakeRoomData) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def edge(client: TestClient, admin: dict[str, str]) -> dict[str, str]:
    return enrolled_edge(client, admin, "door")


@pytest.fixture(scope="module")
def mp4(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A real 3 s MP4 (a few hundred kB: several chunks)."""
    return make_mp4(tmp_path_factory.mktemp("mp4") / "clip.mp4", seconds=3.0)


def staging(settings: Settings) -> Path:
    return settings.data_dir / "uploads"


def part_size(settings: Settings, upload_id: str) -> int:
    return (staging(settings) / f"{upload_id}.part").stat().st_size


def media_files(settings: Settings) -> list[Path]:
    root = settings.data_dir / "media"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def error_with_offset(response: Any, status: int, code: str) -> int:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"]["code"] == code
    offset: int = body["offset"]
    return offset


# --- the happy path ------------------------------------------------------------------


def test_a_clip_uploaded_in_chunks_is_stored_attached_and_announced(
    client: TestClient,
    edge: dict[str, str],
    admin: dict[str, str],
    settings: Settings,
    room_data: FakeRoomData,
    mp4: bytes,
) -> None:
    event_id = new_event(client, edge)
    before = client.get(f"/api/events/{event_id}", headers=admin).json()
    assert before["clip"] is None

    started = start(client, edge, event_id, mp4)
    assert started.status_code == 200, started.text
    upload_id = started.json()["upload_id"]
    assert started.json() == {"upload_id": upload_id, "offset": 0, "complete": False}

    offset, answers = 0, []
    while offset < len(mp4):
        response = put(client, edge, upload_id, mp4, offset)
        assert response.status_code == 200, response.text
        answers.append(response.json())
        offset = response.json()["offset"]
        assert answers[-1]["complete"] or part_size(settings, upload_id) == offset
    assert len(answers) == -(-len(mp4) // CHUNK) > 2
    assert all(a == {"offset": a["offset"], "complete": False} for a in answers[:-1])
    final = answers[-1]
    clip = {
        "url": f"/api/events/{event_id}/clip.mp4",
        "size": len(mp4),
        "sha256": sha(mp4),
        "content_type": "video/mp4",
        "started_at": "2030-01-02T03:00:00Z",
        "ended_at": "2030-01-02T03:00:12Z",
        "duration_s": 12.0,
    }
    assert final == {"offset": len(mp4), "complete": True, "clip": clip}

    event = client.get(f"/api/events/{event_id}", headers=admin).json()
    assert event["clip"] == clip
    assert event["version"] > before["version"]
    [listed] = client.get("/api/events", headers=admin).json()["events"]
    assert listed["clip"] == clip
    # The bytes served are the bytes sent; the staging files are gone.
    served = client.get(clip["url"], headers=admin)
    assert served.status_code == 200
    assert served.content == mp4
    assert served.headers["content-type"] == "video/mp4"
    assert list(staging(settings).iterdir()) == []
    [stored] = media_files(settings)
    assert stored.read_bytes() == mp4
    assert stored.relative_to(settings.data_dir / "media").parts[:2] == ("clips", "door")
    # The change went out like an edge message's: into the camera's LiveKit room.
    wait_for(
        lambda: any(json.loads(d).get("clip") == clip for _, d, _ in room_data.sent),
        "the event with its clip relayed into the room",
    )
    assert client.get(f"/api/edge/uploads/{upload_id}", headers=edge).json() == {
        "offset": len(mp4),
        "complete": True,
    }


def test_the_event_stream_replays_the_clip_change(
    client: TestClient, edge: dict[str, str], admin: dict[str, str], mp4: bytes
) -> None:
    """Attaching a clip is a new event version: a client that reconnects with its last
    version (Last-Event-ID) gets it from the database."""
    event_id = new_event(client, edge)
    version = client.get(f"/api/events/{event_id}", headers=admin).json()["version"]
    upload(client, edge, event_id, mp4)
    from app.events import EventFilter, events_after_version

    with client.app.state.session_factory() as session:  # type: ignore[attr-defined]
        changed = events_after_version(session, version, EventFilter())
    assert [e["id"] for e in changed] == [event_id]
    assert changed[0]["clip"]["sha256"] == sha(mp4)


# --- resuming ------------------------------------------------------------------------


def _cut_off_put(base_url: str, edge: dict[str, str], upload_id: str, data: bytes, at: int) -> None:
    """Sends a PUT whose body stops half-way, then drops the connection (a broken link)."""
    chunk = data[at : at + CHUNK]
    url = urlsplit(base_url)
    headers = {
        **edge,
        **chunk_headers(at, chunk, len(data)),
        "Content-Length": str(len(chunk)),
        "Host": url.netloc,
    }
    head = f"PUT /api/edge/uploads/{upload_id} HTTP/1.1\r\n" + "".join(
        f"{k}: {v}\r\n" for k, v in headers.items()
    )
    with socket.create_connection((url.hostname, url.port)) as sock:
        sock.sendall(head.encode() + b"\r\n" + chunk[: len(chunk) // 2])


def test_a_broken_connection_mid_chunk_keeps_nothing_of_it_and_the_upload_resumes(
    app: FastAPI,
    admin_key: str,
    settings: Settings,
    mp4: bytes,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="app.api.uploads")
    admin = {"Authorization": f"Bearer {admin_key}"}
    with serve(app) as base, httpx.Client(base_url=base, timeout=10) as http:
        edge = enrolled_edge(http, admin, "door")  # type: ignore[arg-type]
        event_id = new_event(http, edge)
        upload_id = start(http, edge, event_id, mp4).json()["upload_id"]
        assert put(http, edge, upload_id, mp4, 0).json()["offset"] == CHUNK
        _cut_off_put(base, edge, upload_id, mp4, CHUNK)
        manager = app.state.uploads
        # The server noticed the cut (the connection closed) and kept nothing of it.
        wait_for(lambda: "clip chunk cut off" in caplog.text, "the server saw the cut")
        assert part_size(settings, upload_id) == CHUNK
        assert manager.offset_of(upload_id) == CHUNK
        # The edge comes back: the same upload, from the same offset.
        again = start(http, edge, event_id, mp4)
        assert again.json() == {"upload_id": upload_id, "offset": CHUNK, "complete": False}
        body = again.json()
        while not body["complete"]:
            body = put(http, edge, upload_id, mp4, body["offset"]).json()
        assert body["clip"]["sha256"] == sha(mp4)
        assert http.get(f"/api/events/{event_id}/clip.mp4", headers=admin).content == mp4


def test_an_upload_survives_a_server_restart(
    settings: Settings, admin_key: str, clock: FakeClock, mp4: bytes
) -> None:
    """Half an upload, a new server process on the same data: the offset is what was on
    disk, the whole-file hash is rebuilt from the staging file, the clip completes."""
    admin = {"Authorization": f"Bearer {admin_key}"}
    first = create_app(settings)
    first.state.clock = clock
    with TestClient(first) as client:
        edge = enrolled_edge(client, admin, "door")
        event_id = new_event(client, edge)
        upload_id = start(client, edge, event_id, mp4).json()["upload_id"]
        for offset in range(0, 2 * CHUNK, CHUNK):
            assert put(client, edge, upload_id, mp4, offset).status_code == 200
    second = create_app(settings)
    second.state.clock = clock
    with TestClient(second) as client:
        assert client.get(f"/api/edge/uploads/{upload_id}", headers=edge).json() == {
            "offset": 2 * CHUNK,
            "complete": False,
        }
        resumed = start(client, edge, event_id, mp4).json()
        assert resumed == {"upload_id": upload_id, "offset": 2 * CHUNK, "complete": False}
        body = resumed
        while not body["complete"]:
            body = put(client, edge, upload_id, mp4, body["offset"]).json()
        assert body["clip"]["sha256"] == sha(mp4)
        assert client.get(f"/api/events/{event_id}/clip.mp4", headers=admin).content == mp4


# --- refusals ------------------------------------------------------------------------


def test_a_chunk_at_the_wrong_offset_is_refused_with_the_servers_offset(
    client: TestClient, edge: dict[str, str], settings: Settings, mp4: bytes
) -> None:
    event_id = new_event(client, edge)
    upload_id = start(client, edge, event_id, mp4).json()["upload_id"]
    assert put(client, edge, upload_id, mp4, 0).status_code == 200
    for wrong in (0, 2 * CHUNK):
        response = put(client, edge, upload_id, mp4, wrong)
        assert error_with_offset(response, 409, "offset_mismatch") == CHUNK
        assert part_size(settings, upload_id) == CHUNK


def test_a_damaged_chunk_appends_nothing(
    client: TestClient, edge: dict[str, str], settings: Settings, mp4: bytes
) -> None:
    event_id = new_event(client, edge)
    upload_id = start(client, edge, event_id, mp4).json()["upload_id"]
    response = put(client, edge, upload_id, mp4, 0, checksum=sha(b"something else"))
    assert_error(response, 422, "chunk_checksum_mismatch")
    assert part_size(settings, upload_id) == 0
    # The same chunk sent intact goes in.
    assert put(client, edge, upload_id, mp4, 0).json() == {"offset": CHUNK, "complete": False}


def test_a_whole_file_checksum_mismatch_drops_the_upload(
    client: TestClient, edge: dict[str, str], admin: dict[str, str], settings: Settings
) -> None:
    announced = b"A" * 3000
    sent = b"A" * 2999 + b"B"  # every chunk matches its own checksum; the file does not
    event_id = new_event(client, edge)
    upload_id = start(client, edge, event_id, announced).json()["upload_id"]
    assert put(client, edge, upload_id, sent, 0, 2000).json()["offset"] == 2000
    assert_error(put(client, edge, upload_id, sent, 2000, 3000), 422, "checksum_mismatch")
    assert list(staging(settings).iterdir()) == []
    assert media_files(settings) == []
    assert client.get(f"/api/events/{event_id}", headers=admin).json()["clip"] is None
    assert_error(client.get(f"/api/edge/uploads/{upload_id}", headers=edge), 404, "unknown_upload")
    # The edge starts over: a new upload from 0.
    again = start(client, edge, event_id, announced).json()
    assert again["offset"] == 0
    assert again["upload_id"] != upload_id


def test_a_retry_after_completion_is_answered_as_complete(
    client: TestClient, edge: dict[str, str], mp4: bytes
) -> None:
    """The last chunk's answer was lost: a re-POST, a re-PUT and a GET all say done."""
    event_id = new_event(client, edge)
    final = upload(client, edge, event_id, mp4)
    upload_id = start(client, edge, event_id, mp4).json()["upload_id"]
    assert start(client, edge, event_id, mp4).json() == {
        "upload_id": upload_id,
        "offset": len(mp4),
        "complete": True,
    }
    last = len(mp4) - len(mp4) % CHUNK
    again = put(client, edge, upload_id, mp4, last, len(mp4))
    assert again.status_code == 200, again.text
    assert again.json() == final
    assert client.get(f"/api/edge/uploads/{upload_id}", headers=edge).json() == {
        "offset": len(mp4),
        "complete": True,
    }


def test_a_new_cut_replaces_the_unfinished_upload_and_then_the_stored_clip(
    client: TestClient, edge: dict[str, str], admin: dict[str, str], settings: Settings, mp4: bytes
) -> None:
    event_id = new_event(client, edge)
    first = start(client, edge, event_id, mp4).json()["upload_id"]
    assert put(client, edge, first, mp4, 0).status_code == 200
    recut = mp4[: len(mp4) // 2]
    second = start(client, edge, event_id, recut).json()
    assert second["offset"] == 0
    assert second["upload_id"] != first
    assert_error(put(client, edge, first, mp4, CHUNK), 404, "unknown_upload")
    assert sorted(p.name for p in staging(settings).iterdir()) == [
        f"{second['upload_id']}.json",
        f"{second['upload_id']}.part",
    ]
    upload(client, edge, event_id, recut)
    assert client.get(f"/api/events/{event_id}/clip.mp4", headers=admin).content == recut
    # Re-cut again after it was stored: the new clip replaces it, the old object goes.
    upload(client, edge, event_id, mp4)
    assert client.get(f"/api/events/{event_id}/clip.mp4", headers=admin).content == mp4
    [stored] = media_files(settings)
    assert stored.read_bytes() == mp4


def test_an_unknown_event_or_another_cameras_event_is_404(
    client: TestClient, edge: dict[str, str], admin: dict[str, str]
) -> None:
    data = b"x" * 100
    assert_error(
        start(client, edge, "3f0c2a4e-1b7d-4c55-9a3e-5d2f8b6c1e90", data), 404, "unknown_event"
    )
    other = enrolled_edge(client, admin, "yard")
    theirs = new_event(client, other)
    assert_error(start(client, edge, theirs, data), 404, "unknown_event")


def test_a_clip_over_the_limit_is_413(
    client: TestClient, edge: dict[str, str], settings: Settings
) -> None:
    event_id = new_event(client, edge)
    response = start(
        client, edge, event_id, b"x", size=settings.clip_max_bytes + 1, sha256="0" * 64
    )
    assert_error(response, 413, "too_large")
    assert not staging(settings).exists() or list(staging(settings).iterdir()) == []


@pytest.mark.parametrize(
    "override",
    [
        {"kind": "snapshot"},
        {"size": 0},
        {"size": "12"},
        {"sha256": "abc"},
        {"content_type": "video/x-matroska"},
        {"event_id": "not-a-uuid"},
        {"started_at": "2030-01-02T03:00:00"},  # no zone
        {"ended_at": "2030-01-02T02:00:00Z"},  # before started_at
        {"duration_s": -1},
    ],
)
def test_a_malformed_start_is_422(
    client: TestClient, edge: dict[str, str], override: dict[str, Any]
) -> None:
    body = {**start_body(new_event(client, edge), b"x" * 10), **override}
    response = client.post("/api/edge/uploads", json=body, headers=edge)
    assert_error(response, 422, "validation_error")


def test_bad_ranges_are_refused_before_anything_is_written(
    client: TestClient, edge: dict[str, str], settings: Settings
) -> None:
    data = b"y" * 1000
    event_id = new_event(client, edge)
    upload_id = start(client, edge, event_id, data).json()["upload_id"]
    url = f"/api/edge/uploads/{upload_id}"
    cases = [
        {"Content-Range": "bytes 0-99/999"},  # not the announced size
        {"Content-Range": "bytes 0-99"},
        {"Content-Range": "bytes 99-0/1000"},
        {"Content-Range": "bytes 0-1000/1000"},
    ]
    for headers in cases:
        response = client.put(
            url, content=data[:100], headers={**edge, "X-Chunk-SHA256": sha(data[:100]), **headers}
        )
        assert_error(response, 422, "bad_range")
    # The body is shorter than the range says.
    short = client.put(
        url, content=data[:50], headers={**edge, **chunk_headers(0, data[:100], 1000)}
    )
    assert_error(short, 422, "bad_range")
    no_checksum = client.put(
        url, content=data[:100], headers={**edge, "Content-Range": "bytes 0-99/1000"}
    )
    assert_error(no_checksum, 422, "validation_error")
    assert part_size(settings, upload_id) == 0


def test_credentials_are_checked_and_one_camera_cannot_touch_anothers_upload(
    client: TestClient, edge: dict[str, str], admin: dict[str, str], settings: Settings
) -> None:
    data = b"z" * 1000
    event_id = new_event(client, edge)
    assert_error(start(client, {}, event_id, data), 401, "not_authenticated")
    wrong = {"Authorization": "Bearer lce_not-a-credential"}
    assert_error(start(client, wrong, event_id, data), 401, "invalid_edge_credential")
    assert_error(start(client, admin, event_id, data), 401, "invalid_edge_credential")
    upload_id = start(client, edge, event_id, data).json()["upload_id"]
    other = enrolled_edge(client, admin, "yard")
    assert_error(put(client, other, upload_id, data, 0, 500), 404, "unknown_upload")
    assert_error(client.get(f"/api/edge/uploads/{upload_id}", headers=other), 404, "unknown_upload")
    assert_error(put(client, wrong, upload_id, data, 0, 500), 401, "invalid_edge_credential")
    assert part_size(settings, upload_id) == 0
    # Once stored, the other camera still cannot see it.
    upload(client, edge, event_id, data)
    assert_error(put(client, other, upload_id, data, 500, 1000), 404, "unknown_upload")


# --- concurrency ---------------------------------------------------------------------


def test_concurrent_puts_of_one_upload_are_serialised(
    app: FastAPI, admin_key: str, settings: Settings, mp4: bytes
) -> None:
    """The same chunk five times at once (an edge retrying while the first is still in
    flight): exactly one is appended, the others are told the new offset."""
    admin = {"Authorization": f"Bearer {admin_key}"}

    async def race(base: str, edge: dict[str, str], upload_id: str) -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=base, timeout=20) as http:
            sends = [put(http, edge, upload_id, mp4, 0) for _ in range(5)]
            return list(await asyncio.gather(*sends))

    with serve(app) as base, httpx.Client(base_url=base, timeout=10) as http:
        edge = enrolled_edge(http, admin, "door")  # type: ignore[arg-type]
        event_id = new_event(http, edge)
        upload_id = start(http, edge, event_id, mp4).json()["upload_id"]
        answers = asyncio.run(race(base, edge, upload_id))
        assert sorted(r.status_code for r in answers) == [200, 409, 409, 409, 409]
        assert {r.json()["offset"] for r in answers} == {CHUNK}
        assert part_size(settings, upload_id) == CHUNK
        body = {"offset": CHUNK, "complete": False}
        while not body["complete"]:
            body = put(http, edge, upload_id, mp4, body["offset"]).json()
        assert http.get(f"/api/events/{event_id}/clip.mp4", headers=admin).content == mp4


# --- a full disk -----------------------------------------------------------------------


def test_a_full_disk_mid_chunk_is_507_and_the_partial_chunk_is_cut_away(
    client: TestClient,
    edge: dict[str, str],
    settings: Settings,
    mp4: bytes,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    event_id = new_event(client, edge)
    upload_id = start(client, edge, event_id, mp4).json()["upload_id"]
    assert put(client, edge, upload_id, mp4, 0).status_code == 200
    real_write = uploads_module._write_all

    def half_then_full(f: Any, data: bytes) -> None:
        f.write(data[: len(data) // 2])
        f.flush()
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(uploads_module, "_write_all", half_then_full)
    assert_error(put(client, edge, upload_id, mp4, CHUNK), 507, "storage_full")
    assert part_size(settings, upload_id) == CHUNK
    assert "clip chunk refused: disk full" in caplog.text
    # Space again: the same chunk goes in, the clip completes and is intact.
    monkeypatch.setattr(uploads_module, "_write_all", real_write)
    body = put(client, edge, upload_id, mp4, CHUNK).json()
    while not body["complete"]:
        body = put(client, edge, upload_id, mp4, body["offset"]).json()
    assert body["clip"]["sha256"] == sha(mp4)


def test_no_room_for_a_new_upload_is_507(
    client: TestClient, edge: dict[str, str], settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    event_id = new_event(client, edge)
    monkeypatch.setattr(uploads_module, "free_bytes", lambda _d: 10 * 1024 * 1024)
    assert_error(start(client, edge, event_id, b"q" * 1000), 507, "storage_full")
    assert list(staging(settings).iterdir()) == []
    assert client.get("/api/health").status_code in (200, 503)  # still serving


def test_a_full_media_disk_keeps_the_upload_and_a_retry_stores_it(
    client: TestClient,
    edge: dict[str, str],
    admin: dict[str, str],
    mp4: bytes,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    event_id = new_event(client, edge)

    def full(self: LocalMediaStore, key: str, source: Path, content_type: str) -> None:
        raise StorageFull("no space left for the clip")

    real_put = LocalMediaStore.put_file
    monkeypatch.setattr(LocalMediaStore, "put_file", full)
    upload_id = start(client, edge, event_id, mp4).json()["upload_id"]
    offset, response = 0, None
    while offset < len(mp4):
        response = put(client, edge, upload_id, mp4, offset)
        offset = min(offset + CHUNK, len(mp4))
    assert response is not None
    assert_error(response, 507, "storage_full")
    assert client.get(f"/api/events/{event_id}", headers=admin).json()["clip"] is None
    # Every byte is staged; once there is room, the edge's retry (POST) stores it.
    monkeypatch.setattr(LocalMediaStore, "put_file", real_put)
    again = start(client, edge, event_id, mp4)
    assert again.json() == {"upload_id": upload_id, "offset": len(mp4), "complete": True}
    assert client.get(f"/api/events/{event_id}/clip.mp4", headers=admin).content == mp4

"""Playing a clip: GET /api/events/{id}/clip.mp4 with Range requests, its auth (admin key
or the event ticket), on the local store and on a real S3 server (versitygw)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.settings import Settings
from app.tickets import issue_event_snapshot_ticket
from scripts.s3server import S3Server, running_s3
from tests.app.clip_helpers import BUCKET, new_event, sha, upload
from tests.app.helpers import FakeClock, assert_error, enrolled_edge, make_settings

SIZE = 1_000_003  # several read chunks (256 KiB), an odd size


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    with running_s3(tmp_path_factory.mktemp("s3"), BUCKET) as server:
        yield server


@pytest.fixture(params=["local", "s3"])
def settings(request: pytest.FixtureRequest, tmp_path: Any) -> Settings:
    """The app's settings: media in $LIVECAM_DATA/media, or in the S3 bucket."""
    if request.param == "local":
        return make_settings(tmp_path / "data")
    s3: S3Server = request.getfixturevalue("s3")
    return make_settings(
        tmp_path / "data",
        s3_bucket=BUCKET,
        s3_prefix=f"test-{uuid.uuid4().hex[:8]}",
        s3_endpoint_url=s3.endpoint_url,
        s3_region=s3.region,
        s3_access_key_id=s3.access_key,
        s3_secret_access_key=s3.secret_key,
    )


@pytest.fixture
def edge(client: TestClient, admin: dict[str, str]) -> dict[str, str]:
    return enrolled_edge(client, admin, "door")


@pytest.fixture
def data() -> bytes:
    return os.urandom(SIZE)


@pytest.fixture
def event_id(client: TestClient, edge: dict[str, str], data: bytes) -> str:
    """An event with ``data`` as its clip."""
    event = new_event(client, edge)
    upload(client, edge, event, data, chunk=256 * 1024)
    return event


def get(client: TestClient, event_id: str, headers: dict[str, str], **extra: str) -> Any:
    return client.get(f"/api/events/{event_id}/clip.mp4", headers={**headers, **extra})


def test_the_store_is_the_configured_one(app: FastAPI, settings: Settings) -> None:
    assert app.state.media_store.kind == ("s3" if settings.s3_bucket else "local")


def test_no_range_is_the_whole_clip(
    client: TestClient, admin: dict[str, str], event_id: str, data: bytes
) -> None:
    response = get(client, event_id, admin)
    assert response.status_code == 200
    assert response.content == data
    assert response.headers["content-length"] == str(SIZE)
    assert response.headers["content-type"] == "video/mp4"
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers["etag"] == f'"{sha(data)}"'
    assert "content-range" not in response.headers


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=0-99", 0, 99),  # the first bytes (a player reading the header)
        ("bytes=400000-700000", 400000, 700000),  # the middle, across read chunks
        ("bytes=-1000", SIZE - 1000, SIZE - 1),  # the last bytes
        ("bytes=999000-", 999000, SIZE - 1),  # open-ended (a seek)
        ("bytes=0-", 0, SIZE - 1),  # what a <video> asks first
        ("bytes=1000-99999999", 1000, SIZE - 1),  # past the end: cut at the end
        ("bytes=-99999999", 0, SIZE - 1),  # a suffix longer than the file
        (f"bytes={SIZE - 1}-{SIZE - 1}", SIZE - 1, SIZE - 1),  # the very last byte
    ],
)
def test_ranges_are_206_with_exactly_those_bytes(
    client: TestClient,
    admin: dict[str, str],
    event_id: str,
    data: bytes,
    header: str,
    start: int,
    end: int,
) -> None:
    response = get(client, event_id, admin, Range=header)
    assert response.status_code == 206, response.text
    assert response.content == data[start : end + 1]
    assert response.headers["content-range"] == f"bytes {start}-{end}/{SIZE}"
    assert response.headers["content-length"] == str(end - start + 1)
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers["content-type"] == "video/mp4"


@pytest.mark.parametrize("header", [f"bytes={SIZE}-", f"bytes={SIZE + 5}-{SIZE + 9}", "bytes=-0"])
def test_an_unsatisfiable_range_is_416(
    client: TestClient, admin: dict[str, str], event_id: str, header: str
) -> None:
    response = get(client, event_id, admin, Range=header)
    assert response.status_code == 416
    assert response.headers["content-range"] == f"bytes */{SIZE}"
    assert response.content == b""


@pytest.mark.parametrize("header", ["bytes=0-1,5-6", "items=0-10", "bytes=9-3", "bytes=x-"])
def test_a_range_we_do_not_serve_gets_the_whole_clip(
    client: TestClient, admin: dict[str, str], event_id: str, data: bytes, header: str
) -> None:
    response = get(client, event_id, admin, Range=header)
    assert response.status_code == 200
    assert response.content == data


def test_conditional_requests(
    client: TestClient, admin: dict[str, str], event_id: str, data: bytes
) -> None:
    etag = f'"{sha(data)}"'
    assert get(client, event_id, admin, **{"If-None-Match": etag}).status_code == 304
    # If-Range of another version of the clip: the whole (new) clip, not a range of it.
    stale = get(client, event_id, admin, Range="bytes=0-9", **{"If-Range": '"old"'})
    assert stale.status_code == 200
    assert stale.content == data
    fresh = get(client, event_id, admin, Range="bytes=0-9", **{"If-Range": etag})
    assert fresh.status_code == 206
    assert fresh.content == data[:10]


def test_head_tells_the_size_without_a_body(
    client: TestClient, admin: dict[str, str], event_id: str
) -> None:
    response = client.head(f"/api/events/{event_id}/clip.mp4", headers=admin)
    assert response.status_code == 200
    assert response.headers["content-length"] == str(SIZE)
    assert response.content == b""


def test_a_ticket_opens_the_clip_without_a_header_and_only_that_clip(
    client: TestClient,
    admin: dict[str, str],
    edge: dict[str, str],
    event_id: str,
    data: bytes,
    clock: FakeClock,
) -> None:
    assert_error(get(client, event_id, {}), 401, "not_authenticated")
    assert_error(
        get(client, event_id, {"Authorization": "Bearer lca_wrong"}), 401, "invalid_admin_key"
    )
    ticket = client.post(f"/api/events/{event_id}/clip-ticket", headers=admin)
    assert ticket.status_code == 200, ticket.text
    url = ticket.json()["url"]
    assert url.startswith(f"/api/events/{event_id}/clip.mp4?ticket=v1.")
    seek = client.get(url, headers={"Range": "bytes=500000-"})
    assert seek.status_code == 206
    assert seek.content == data[500000:]
    # The snapshot's ticket (a push notification's) is the same event ticket.
    push_ticket = issue_event_snapshot_ticket(client.app.state.tickets, event_id, clock())  # type: ignore[attr-defined]
    assert client.get(f"{url.split('?')[0]}?ticket={push_ticket.value}").status_code == 200
    other = new_event(client, edge)
    other_ticket = client.post(f"/api/events/{other}/clip-ticket", headers=admin).json()["url"]
    wrong = f"/api/events/{event_id}/clip.mp4?ticket={other_ticket.split('ticket=')[1]}"
    assert_error(client.get(wrong), 401, "invalid_ticket")
    assert_error(client.post(f"/api/events/{event_id}/clip-ticket"), 401, "not_authenticated")
    clock.advance(86400 + 1)
    assert_error(client.get(url), 401, "invalid_ticket")


def test_no_clip_and_no_event_are_404(
    client: TestClient, admin: dict[str, str], edge: dict[str, str]
) -> None:
    bare = new_event(client, edge)
    assert_error(get(client, bare, admin), 404, "no_clip")
    missing = str(uuid.uuid4())
    assert_error(get(client, missing, admin), 404, "event_not_found")
    assert_error(
        client.post(f"/api/events/{missing}/clip-ticket", headers=admin), 404, "event_not_found"
    )


def test_a_clip_gone_from_the_store_is_404_not_500(
    client: TestClient, app: FastAPI, admin: dict[str, str], event_id: str
) -> None:
    [obj] = list(app.state.media_store.list_objects("clips"))
    assert app.state.media_store.delete(obj.key)
    assert_error(get(client, event_id, admin, Range="bytes=0-9"), 404, "no_clip")

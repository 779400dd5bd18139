"""Helpers for the clip tests: real MP4 files, events to attach clips to, and the upload
calls of contract 5 as an edge makes them."""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av

from scripts.media import make_h264_file
from tests.app.event_helpers import T0, iso, message

BUCKET = "livecam-media"
CHUNK = 64 * 1024


def make_mp4(
    path: Path,
    *,
    seconds: float = 2.0,
    bitrate_kbps: int = 800,
    width: int = 320,
    height: int = 180,
) -> bytes:
    """A real H.264 MP4 (moov first, as the edge's clips are cut) written to ``path``;
    its bytes."""
    raw = make_h264_file(
        path.with_suffix(".src.mp4"),
        width=width,
        height=height,
        seconds=seconds,
        gop=30,
        bitrate_kbps=bitrate_kbps,
    )
    with (
        av.open(str(raw)) as src,
        av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"}) as dst,
    ):
        video = src.streams.video[0]
        out = dst.add_stream_from_template(video)
        for packet in src.demux(video):
            if packet.dts is None:
                continue
            packet.stream = out
            dst.mux(packet)
    raw.unlink()
    return path.read_bytes()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def new_event(client: Any, edge: dict[str, str], **kwargs: Any) -> str:
    """Posts an event (start phase) as the edge; its id."""
    body = message(str(uuid.uuid4()), **kwargs)
    response = client.post("/api/edge/events", json=body, headers=edge)
    assert response.status_code == 200, response.text
    event_id: str = body["event_id"]
    return event_id


def start_body(event_id: str, data: bytes, **overrides: Any) -> dict[str, Any]:
    """A contract-5 POST body for ``data`` as the clip of ``event_id``."""
    body: dict[str, Any] = {
        "event_id": event_id,
        "kind": "clip",
        "size": len(data),
        "sha256": sha(data),
        "content_type": "video/mp4",
        "started_at": iso(T0),
        "ended_at": iso(T0.replace(second=12)),
        "duration_s": 12.0,
    }
    body.update(overrides)
    return body


def start(client: Any, edge: dict[str, str], event_id: str, data: bytes, **overrides: Any) -> Any:
    """POST /api/edge/uploads; the response."""
    return client.post(
        "/api/edge/uploads", json=start_body(event_id, data, **overrides), headers=edge
    )


def chunk_headers(
    start_at: int, chunk: bytes, total: int, checksum: str | None = None
) -> dict[str, str]:
    return {
        "Content-Range": f"bytes {start_at}-{start_at + len(chunk) - 1}/{total}",
        "X-Chunk-SHA256": checksum or sha(chunk),
        "Content-Type": "application/octet-stream",
    }


def put(
    client: Any,
    edge: dict[str, str],
    upload_id: str,
    data: bytes,
    start_at: int,
    end: int | None = None,
    *,
    checksum: str | None = None,
) -> Any:
    """PUT bytes ``start_at..end`` (exclusive end; default one CHUNK) of ``data``."""
    chunk = data[start_at : end if end is not None else start_at + CHUNK]
    headers = {**edge, **chunk_headers(start_at, chunk, len(data), checksum)}
    return client.put(f"/api/edge/uploads/{upload_id}", content=chunk, headers=headers)


def upload(
    client: Any,
    edge: dict[str, str],
    event_id: str,
    data: bytes,
    chunk: int = CHUNK,
    **overrides: Any,
) -> dict[str, Any]:
    """The whole contract-5 exchange for one clip (``overrides`` go into the POST body);
    the final PUT's JSON."""
    started = start(client, edge, event_id, data, **overrides)
    assert started.status_code == 200, started.text
    upload_id = started.json()["upload_id"]
    body: dict[str, Any] = started.json()
    while not body["complete"]:
        offset = body["offset"]
        response = put(client, edge, upload_id, data, offset, offset + chunk)
        assert response.status_code == 200, response.text
        body = response.json()
    return body


def wait_for(check: Callable[[], bool], what: str, timeout_s: float = 10.0) -> None:
    """Polls ``check`` until true (no fixed sleeps in the tests)."""
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s} s"
        time.sleep(0.02)

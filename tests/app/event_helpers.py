"""Helpers for the event tests: messages as an edge sends them, JPEGs, a fake LiveKit
room-data sender, a real uvicorn server, and an SSE reader."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
from PIL import Image

T0 = datetime.fromisoformat("2030-01-02T03:00:00+00:00")


def jpeg(width: int = 64, height: int = 48, color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    """A small real JPEG."""
    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, "JPEG", quality=80)
    return out.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def message(
    event_id: str | None = None,
    seq: int = 0,
    phase: str = "start",
    *,
    label: str = "person",
    obj: str | None = "person",
    score: float = 0.8,
    box: list[float] | None = None,
    zones: list[str] | None = None,
    started: datetime = T0,
    at: datetime | None = None,
    ended: datetime | None = None,
    snapshot: bytes | None = None,
) -> dict[str, Any]:
    """One contract-3 body (ended_at is filled in for phase "end" when not given)."""
    event_id = event_id or str(uuid.uuid4())
    at = at or started + timedelta(seconds=seq)
    if phase == "end" and ended is None:
        ended = at
    return {
        "key": f"{event_id}:{seq}",
        "event_id": event_id,
        "seq": seq,
        "phase": phase,
        "label": label,
        "object": None if label == "motion" else obj,
        "score": score,
        "box": box if box is not None else [0.1, 0.2, 0.4, 0.8],
        "zones": zones or [],
        "started_at": iso(started),
        "at": iso(at),
        "ended_at": iso(ended) if ended is not None else None,
        "snapshot": b64(snapshot) if snapshot is not None else None,
    }


@dataclass
class FakeRoomData:
    """Records what would have gone into LiveKit rooms."""

    sent: list[tuple[str, bytes, str]] = field(default_factory=list)
    fail: Exception | None = None
    delay_s: float = 0.0
    closed: bool = False

    async def send_data(self, room: str, data: bytes, topic: str) -> None:
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.fail is not None:
            raise self.fail
        self.sent.append((room, data, topic))

    async def aclose(self) -> None:
        self.closed = True


@dataclass
class SseMessage:
    """One SSE block: its fields, or a comment."""

    id: str | None = None
    event: str | None = None
    data: str = ""
    comment: str | None = None
    retry: int | None = None

    def json(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.data)
        return parsed


async def sse_messages(lines: AsyncIterator[str]) -> AsyncIterator[SseMessage]:
    """Parses an SSE body (one ``SseMessage`` per blank-line-terminated block)."""
    current = SseMessage()
    touched = False
    async for line in lines:
        if line == "":
            if touched:
                yield current
            current, touched = SseMessage(), False
            continue
        touched = True
        if line.startswith(":"):
            current.comment = line[1:].strip()
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "id":
            current.id = value
        elif name == "event":
            current.event = value
        elif name == "data":
            current.data = value if not current.data else current.data + "\n" + value
        elif name == "retry":
            current.retry = int(value)


async def next_event(messages: AsyncIterator[SseMessage], timeout: float = 10.0) -> SseMessage:
    """The next ``event: event`` message (comments are skipped)."""

    async def find() -> SseMessage:
        async for msg in messages:
            if msg.event == "event":
                return msg
        raise AssertionError("the stream ended")

    return await asyncio.wait_for(find(), timeout)


def post(http: httpx.Client, edge: dict[str, str], body: dict[str, Any]) -> httpx.Response:
    return http.post("/api/edge/events", json=body, headers=edge)

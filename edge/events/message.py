"""One phase of an event as the edge sends it: ``POST /api/edge/events`` (contract 3).

    {"key": "<event_id>:<seq>", "event_id": "<uuid4>", "seq": 0, "phase": "start",
     "label": "person", "object": "person", "score": 0.87, "box": [x0, y0, x1, y1],
     "zones": ["Driveway"], "started_at": "<ISO>", "at": "<ISO>", "ended_at": null,
     "snapshot": "<base64 JPEG>"}

``seq`` grows by one per message of an event, so the server applies each at most once
and keeps the newest state whatever order they arrive in.
"""

from __future__ import annotations

import base64
import datetime as dt
from dataclasses import dataclass
from typing import Any, Literal

from edge.detect.types import Box

Phase = Literal["start", "update", "end"]
#: ``label`` of an event: a detection kind, or "motion" for a motion-only event.
EVENT_LABELS = ("person", "vehicle", "pet", "other", "motion")


def iso_us(us: int) -> str:
    """Wall-clock microseconds as ISO-8601 UTC with milliseconds and a Z."""
    when = dt.datetime.fromtimestamp(us / 1e6, tz=dt.UTC)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def clean_box(box: Box) -> list[float]:
    """``box`` clamped to 0..1, rounded, and never empty (the server wants x0 < x1, y0 < y1)."""
    x0, y0, x1, y1 = (round(min(1.0, max(0.0, v)), 4) for v in box)
    x0, x1 = min(x0, x1), max(x0, x1)
    y0, y1 = min(y0, y1), max(y0, y1)
    if x1 <= x0:
        x0, x1 = (x0, x0 + 0.0001) if x0 < 1.0 else (0.9999, 1.0)
    if y1 <= y0:
        y0, y1 = (y0, y0 + 0.0001) if y0 < 1.0 else (0.9999, 1.0)
    return [x0, y0, x1, y1]


@dataclass(frozen=True, slots=True)
class EventMessage:
    """One phase of one event; times are wall-clock µs since the epoch."""

    event_id: str
    seq: int
    phase: Phase
    label: str
    object: str | None
    score: float
    box: Box | None
    zones: tuple[str, ...]
    started_us: int
    at_us: int
    ended_us: int | None = None
    snapshot: bytes | None = None  # JPEG

    @property
    def key(self) -> str:
        """The idempotency key: the same for every retry of this message."""
        return f"{self.event_id}:{self.seq}"

    def body(self) -> dict[str, Any]:
        """The JSON body without the snapshot (``"snapshot": null``); see ``with_snapshot``."""
        return {
            "key": self.key,
            "event_id": self.event_id,
            "seq": self.seq,
            "phase": self.phase,
            "label": self.label,
            "object": self.object,
            "score": round(min(1.0, max(0.0, self.score)), 4),
            "box": None if self.box is None else clean_box(self.box),
            "zones": list(self.zones),
            "started_at": iso_us(self.started_us),
            "at": iso_us(self.at_us),
            "ended_at": None if self.ended_us is None else iso_us(self.ended_us),
            "snapshot": None,
        }


def with_snapshot(body: dict[str, Any], snapshot: bytes | None) -> dict[str, Any]:
    """``body`` with the JPEG ``snapshot`` base64-encoded in, or null."""
    return {
        **body,
        "snapshot": None if snapshot is None else base64.b64encode(snapshot).decode("ascii"),
    }

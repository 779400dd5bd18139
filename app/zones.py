"""Zones and privacy masks of a camera (contract 2): validation, storage, and telling
the camera's edge.

A camera has one list of polygons, replaced as a whole by ``PUT
/api/cameras/{id}/zones``. Points are normalised (0..1) to the picture, so the same list
fits every resolution the edge analyses at. The edge gets

    {"type": "zones", "zones": [{"id": "z1", "name": "Driveway", "kind": "zone",
                                 "points": [[x, y], ...], "labels": ["person"]}, ...]}

over its control websocket first thing on every connect, and again whenever the list
changes. The edge applies masks itself (it blacks them out of every JPEG it makes and
leaves them out of detection); the server stores and forwards them and changes no
picture.

``ZonesNotifier`` tells the control websockets of this process that a camera's zones
changed; each then reads the list from the database and sends it (newest wins).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from app.errors import ApiError
from app.models import CameraZones
from app.schemas import ZoneIn

log = logging.getLogger(__name__)

Point = tuple[float, float]
#: Smaller polygons are refused (the edge refuses them too).
MIN_AREA = 1e-6


def invalid_zones(message: str) -> ApiError:
    return ApiError(422, "invalid_zones", message)


def _area(points: Sequence[Point]) -> float:
    total = 0.0
    for i, (x0, y0) in enumerate(points):
        x1, y1 = points[(i + 1) % len(points)]
        total += x0 * y1 - x1 * y0
    return abs(total) / 2


def _orientation(a: Point, b: Point, c: Point) -> int:
    cross = (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
    return 0 if abs(cross) < 1e-12 else (1 if cross > 0 else -1)


def _on_segment(a: Point, b: Point, p: Point) -> bool:
    return min(a[0], b[0]) <= p[0] <= max(a[0], b[0]) and min(a[1], b[1]) <= p[1] <= max(a[1], b[1])


def _segments_cross(a: Point, b: Point, c: Point, d: Point) -> bool:
    o1, o2 = _orientation(a, b, c), _orientation(a, b, d)
    o3, o4 = _orientation(c, d, a), _orientation(c, d, b)
    if o1 != o2 and o3 != o4:
        return True
    return (
        (o1 == 0 and _on_segment(a, b, c))
        or (o2 == 0 and _on_segment(a, b, d))
        or (o3 == 0 and _on_segment(c, d, a))
        or (o4 == 0 and _on_segment(c, d, b))
    )


def self_intersection(points: Sequence[Point]) -> tuple[int, int] | None:
    """The first pair of edges (by start index) that cross or touch, or None when the
    polygon is simple. Adjacent edges share their corner and do not count."""
    n = len(points)
    for i in range(n):
        a, b = points[i], points[(i + 1) % n]
        for j in range(i + 1, n):
            if j == i + 1 or (i == 0 and j == n - 1):
                continue  # neighbours
            c, d = points[j], points[(j + 1) % n]
            if _segments_cross(a, b, c, d):
                return i, j
    return None


def normalise_zones(zones: Sequence[ZoneIn]) -> list[dict[str, Any]]:
    """The stored (contract-2) list for a validated request; ApiError 422 naming the
    polygon and the problem otherwise. Ids are kept, or given as ``z1``, ``z2``, …"""
    taken_ids = {z.id for z in zones if z.id is not None}
    ids = [z.id for z in zones if z.id is not None]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise invalid_zones(f"Polygon ids must be unique; repeated: {repeated}.")
    names: dict[str, int] = {}
    out: list[dict[str, Any]] = []
    counter = 0
    for index, zone in enumerate(zones):
        where = f"zones[{index}] ({zone.name!r})"
        folded = zone.name.casefold()
        if folded in names:
            raise invalid_zones(
                f"{where}: the name is already used by zones[{names[folded]}]; "
                "names must be unique per camera."
            )
        names[folded] = index
        points = [(float(x), float(y)) for x, y in zone.points]
        crossing = self_intersection(points)
        if crossing is not None:
            raise invalid_zones(
                f"{where}: edges {crossing[0]} and {crossing[1]} cross; "
                "draw the outline without crossing itself."
            )
        if _area(points) < MIN_AREA:
            raise invalid_zones(f"{where}: the polygon has no area (its points are in a line).")
        if zone.kind == "mask" and zone.labels:
            raise invalid_zones(f"{where}: a mask has no labels (it hides everything).")
        zone_id = zone.id
        if zone_id is None:
            counter += 1
            while f"z{counter}" in taken_ids:
                counter += 1
            zone_id = f"z{counter}"
            taken_ids.add(zone_id)
        item: dict[str, Any] = {
            "id": zone_id,
            "name": zone.name,
            "kind": zone.kind,
            "points": [[x, y] for x, y in points],
        }
        if zone.kind == "zone":
            item["labels"] = sorted(set(zone.labels or []))
        out.append(item)
    return out


def load_zones(session: Session, camera_id: str) -> tuple[list[dict[str, Any]], datetime | None]:
    """A camera's polygons and when they last changed ([] and None: never set)."""
    row = session.get(CameraZones, camera_id)
    if row is None:
        return [], None
    return list(row.zones), row.updated_at


def store_zones(
    session: Session, camera_id: str, zones: list[dict[str, Any]], now: datetime
) -> None:
    """Replaces a camera's polygons (the caller commits)."""
    row = session.get(CameraZones, camera_id)
    if row is None:
        session.add(CameraZones(camera_id=camera_id, zones=zones, updated_at=now))
    else:
        row.zones = zones
        row.updated_at = now


def zones_message(zones: list[dict[str, Any]]) -> dict[str, Any]:
    """The control-websocket message for the edge."""
    return {"type": "zones", "zones": zones}


@dataclass(eq=False)
class ZonesWatch:
    """One control websocket's interest in its camera's zones."""

    camera_id: str
    changed: asyncio.Event = field(default_factory=asyncio.Event)


class ZonesNotifier:
    """Wakes this process's control websockets when their camera's zones change."""

    def __init__(self) -> None:
        self._watches: dict[str, set[ZonesWatch]] = {}
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        #: Called with the camera id of every change made here (app/cluster.py tells the
        #: other replicas, one of which may hold the camera's websocket).
        self.forward: Callable[[str], None] | None = None

    def watch(self, camera_id: str) -> ZonesWatch:
        """Register (on the event loop) before reading the zones, so no change is missed."""
        self._loop = asyncio.get_running_loop()
        watch = ZonesWatch(camera_id)
        with self._lock:
            self._watches.setdefault(camera_id, set()).add(watch)
        return watch

    def unwatch(self, watch: ZonesWatch) -> None:
        with self._lock:
            watches = self._watches.get(watch.camera_id)
            if watches is not None:
                watches.discard(watch)
                if not watches:
                    del self._watches[watch.camera_id]

    def watching(self, camera_id: str) -> int:
        """How many control websockets of the camera are connected here."""
        with self._lock:
            return len(self._watches.get(camera_id, ()))

    def changed(self, camera_id: str) -> int:
        """The camera's zones changed here (any thread): wakes this process's websockets
        and tells the other replicas; how many websockets of this process were told."""
        forward = self.forward
        if forward is not None:
            try:
                forward(camera_id)
            except Exception:  # the change is stored; a replica's edge gets it on reconnect
                log.exception("could not forward a zone change", extra={"camera": camera_id})
        return self.wake(camera_id)

    def wake(self, camera_id: str) -> int:
        """Wakes this process's websockets of ``camera_id``; how many."""
        with self._lock:
            watches = list(self._watches.get(camera_id, ()))
        loop = self._loop
        if not watches or loop is None:
            return 0
        for watch in watches:
            with contextlib.suppress(RuntimeError):  # the loop is closing
                loop.call_soon_threadsafe(watch.changed.set)
        return len(watches)

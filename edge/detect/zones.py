"""Zones and privacy masks: normalised polygons the server sends over the control link.

    {"type": "zones", "zones": [{"id": "z1", "name": "Driveway", "kind": "zone",
                                 "points": [[x, y], ...], "labels": ["person"]}, ...]}

A ``mask`` is blacked out in every picture livecam makes (MJPEG, snapshots, event
snapshots) and excluded from motion and detection. A ``zone`` limits where a detection
alerts and for which kinds (``labels``; empty = all). Without any zone the whole picture
is one implicit zone, reported as no zone names at all.

Parsing is strict and all-or-nothing: one bad polygon rejects the whole message and the
previous configuration stays (a half-applied message could unmask something). The last
good configuration is kept on disk so masks apply from the first picture after a restart,
even while the server is unreachable.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image, ImageDraw

from edge.detect.types import Box

log = logging.getLogger("edge.zones")

RgbArray = np.ndarray[Any, np.dtype[np.uint8]]
BoolArray = np.ndarray[Any, np.dtype[np.bool_]]
Point = tuple[float, float]

#: What a zone's ``labels`` may name: the detection kinds and motion-only events.
ZONE_LABELS = frozenset({"person", "vehicle", "pet", "other", "motion"})
MAX_POLYGONS = 64
MAX_POINTS = 256
MAX_TEXT = 100
#: Detections more than this share inside masks are dropped.
MASKED_SHARE = 0.5


class ZonesError(ValueError):
    """A zones message that cannot be applied; says which polygon and why."""


@dataclass(frozen=True, slots=True)
class Polygon:
    """One zone or mask, in normalised picture coordinates."""

    id: str
    name: str
    kind: Literal["zone", "mask"]
    points: tuple[Point, ...]
    labels: frozenset[str] = frozenset()

    def contains(self, x: float, y: float) -> bool:
        """Whether the normalised point (x, y) lies inside (even-odd rule)."""
        inside = False
        pts = self.points
        j = len(pts) - 1
        for i in range(len(pts)):
            xi, yi = pts[i]
            xj, yj = pts[j]
            if (yi > y) != (yj > y):
                x_cross = xi + (y - yi) * (xj - xi) / (yj - yi)
                if x < x_cross:
                    inside = not inside
            j = i
        return inside

    def accepts(self, label: str) -> bool:
        """Whether this zone alerts for ``label`` (a kind, or "motion")."""
        return not self.labels or label in self.labels

    def to_json(self) -> dict[str, Any]:
        """The contract-2 shape of this polygon."""
        out: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "kind": self.kind,
            "points": [[x, y] for x, y in self.points],
        }
        if self.kind == "zone":
            out["labels"] = sorted(self.labels)
        return out


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ZonesError(f"{where}: coordinates must be numbers, got {value!r:.40}")
    number = float(value)
    if not math.isfinite(number) or not 0.0 <= number <= 1.0:
        raise ZonesError(f"{where}: coordinates must be within 0..1, got {value!r:.40}")
    return number


def _text(value: Any, where: str, key: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_TEXT:
        raise ZonesError(f"{where}: `{key}` must be a non-empty string of ≤ {MAX_TEXT} chars")
    return value


def _area(points: Sequence[Point]) -> float:
    total = 0.0
    for (x0, y0), (x1, y1) in zip(points, [*points[1:], points[0]], strict=True):
        total += x0 * y1 - x1 * y0
    return abs(total) / 2


def parse_polygon(raw: Any, index: int) -> Polygon:
    """One entry of the ``zones`` list; ZonesError names it and the problem."""
    where = f"zones[{index}]"
    if not isinstance(raw, dict):
        raise ZonesError(f"{where}: must be an object")
    poly_id = _text(raw.get("id"), where, "id")
    where = f"zones[{index}] (id {poly_id!r:.40})"
    kind = raw.get("kind")
    if kind not in ("zone", "mask"):
        raise ZonesError(f"{where}: `kind` must be 'zone' or 'mask', got {kind!r:.40}")
    name_raw = raw.get("name")
    name = poly_id if name_raw is None else _text(name_raw, where, "name")
    points_raw = raw.get("points")
    if not isinstance(points_raw, list) or not 3 <= len(points_raw) <= MAX_POINTS:
        raise ZonesError(f"{where}: `points` must be a list of 3..{MAX_POINTS} [x, y] pairs")
    points: list[Point] = []
    for j, point in enumerate(points_raw):
        if not isinstance(point, list | tuple) or len(point) != 2:
            raise ZonesError(f"{where}: point {j} must be an [x, y] pair")
        at = f"{where} point {j}"
        points.append((_number(point[0], at), _number(point[1], at)))
    if _area(points) < 1e-6:
        raise ZonesError(f"{where}: the polygon has no area")
    labels: frozenset[str] = frozenset()
    if kind == "zone":
        labels_raw = raw.get("labels", [])
        if labels_raw is None:
            labels_raw = []
        if not isinstance(labels_raw, list) or not all(isinstance(v, str) for v in labels_raw):
            raise ZonesError(f"{where}: `labels` must be a list of strings")
        unknown = set(labels_raw) - ZONE_LABELS
        if unknown:
            raise ZonesError(
                f"{where}: unknown labels {sorted(unknown)}; allowed {sorted(ZONE_LABELS)}"
            )
        labels = frozenset(labels_raw)
    return Polygon(id=poly_id, name=name, kind=kind, points=tuple(points), labels=labels)


@dataclass(frozen=True)
class ZoneSet:
    """An immutable set of zones and masks; rasters are made per picture size on demand."""

    zones: tuple[Polygon, ...] = ()
    masks: tuple[Polygon, ...] = ()
    _rasters: dict[tuple[int, int], BoolArray | None] = field(
        default_factory=dict, compare=False, repr=False
    )
    _lock: threading.Lock = field(default_factory=threading.Lock, compare=False, repr=False)

    @classmethod
    def parse(cls, message: Any) -> ZoneSet:
        """A contract-2 ``zones`` message (or just its list); ZonesError when anything is off."""
        items = message.get("zones") if isinstance(message, dict) else message
        if not isinstance(items, list):
            raise ZonesError("`zones` must be a list")
        if len(items) > MAX_POLYGONS:
            raise ZonesError(f"at most {MAX_POLYGONS} polygons, got {len(items)}")
        polygons = [parse_polygon(raw, i) for i, raw in enumerate(items)]
        ids = [p.id for p in polygons]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ZonesError(f"duplicate polygon ids {duplicates}")
        return cls(
            zones=tuple(p for p in polygons if p.kind == "zone"),
            masks=tuple(p for p in polygons if p.kind == "mask"),
        )

    def to_json(self) -> list[dict[str, Any]]:
        """The polygons in the contract-2 list shape (for persistence)."""
        return [p.to_json() for p in (*self.zones, *self.masks)]

    # -- masks ---------------------------------------------------------------------------

    def mask_raster(self, width: int, height: int) -> BoolArray | None:
        """(height, width) booleans, True under a privacy mask; None without masks.

        The array is cached and shared: callers must not modify it.
        """
        if not self.masks:
            return None
        key = (width, height)
        with self._lock:
            if key in self._rasters:
                return self._rasters[key]
        image = Image.new("1", (width, height), 0)
        draw = ImageDraw.Draw(image)
        for mask in self.masks:
            draw.polygon([(x * width, y * height) for x, y in mask.points], fill=1, outline=1)
        raster: BoolArray = np.asarray(image, dtype=bool)
        raster.setflags(write=False)
        with self._lock:
            if len(self._rasters) > 8:  # a few picture sizes at most; bound it anyway
                self._rasters.clear()
            self._rasters[key] = raster
        return raster

    def apply_masks(self, rgb: RgbArray) -> RgbArray:
        """``rgb`` with every masked pixel black (a copy when anything is masked)."""
        raster = self.mask_raster(rgb.shape[1], rgb.shape[0])
        if raster is None:
            return rgb
        out = rgb.copy()
        out[raster] = 0
        return out

    def masked_share(self, box: Box) -> float:
        """The share of ``box`` under privacy masks (0..1), on a 200×200 raster."""
        raster = self.mask_raster(200, 200)
        if raster is None:
            return 0.0
        x0, y0 = int(box[0] * 200), int(box[1] * 200)
        x1, y1 = max(x0 + 1, math.ceil(box[2] * 200)), max(y0 + 1, math.ceil(box[3] * 200))
        region = raster[y0:y1, x0:x1]
        return float(region.mean()) if region.size else 0.0

    # -- zones ---------------------------------------------------------------------------

    def zones_for(self, label: str, box: Box) -> list[str] | None:
        """The names of the zones where ``label`` at ``box`` alerts.

        The anchor is the bottom centre of the box (where a person's feet or a car's
        wheels touch the ground). ``[]`` when there are no zones (the implicit whole-
        picture zone); None when zones exist and none of them takes this detection.
        """
        if not self.zones:
            return []
        x, y = (box[0] + box[2]) / 2, min(box[3], 0.999999)
        names = [z.name for z in self.zones if z.accepts(label) and z.contains(x, y)]
        return names or None


EMPTY = ZoneSet()


class ZoneState:
    """The camera's current ZoneSet: swapped atomically, persisted to ``path`` if given."""

    def __init__(self, camera_id: str, path: Path | None = None) -> None:
        self.camera_id = camera_id
        self.path = path
        self.current: ZoneSet = EMPTY
        self.rejected = 0
        if path is not None:
            self._load(path)

    def _load(self, path: Path) -> None:
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            log.error(
                "saved zones unreadable camera=%s path=%s error=%s", self.camera_id, path, exc
            )
            return
        try:
            self.current = ZoneSet.parse(raw)
        except ZonesError as exc:
            log.error("saved zones invalid camera=%s path=%s error=%s", self.camera_id, path, exc)
            return
        log.info(
            "zones loaded camera=%s zones=%d masks=%d path=%s",
            self.camera_id,
            len(self.current.zones),
            len(self.current.masks),
            path,
        )

    def update(self, message: Any) -> bool:
        """Apply a ``zones`` control message; on any error log it and keep the old set."""
        try:
            zones = ZoneSet.parse(message)
        except ZonesError as exc:
            self.rejected += 1
            log.warning(
                "zones message rejected camera=%s error=%s action='kept the previous zones'",
                self.camera_id,
                exc,
            )
            return False
        if zones.to_json() == self.current.to_json():
            return True
        self.current = zones
        log.info(
            "zones applied camera=%s zones=%s masks=%d",
            self.camera_id,
            ",".join(z.name for z in zones.zones) or "-",
            len(zones.masks),
        )
        if self.path is not None:
            self._save(self.path, zones)
        return True

    def _save(self, path: Path, zones: ZoneSet) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp")
            with tmp.open("w") as f:
                json.dump({"zones": zones.to_json()}, f)
                f.flush()
                os.fsync(f.fileno())
            tmp.replace(path)
        except OSError as exc:
            log.error("zones not saved camera=%s path=%s error=%s", self.camera_id, path, exc)

    def apply_masks(self, rgb: RgbArray) -> RgbArray:
        """The current masks applied to ``rgb`` (a JpegEncoder picture filter)."""
        return self.current.apply_masks(rgb)

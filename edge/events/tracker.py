"""Turns motion and detections into events: one active event per label, start → updates → end.

* A detection counts when its kind makes events (``kinds``), its score reaches the
  kind's threshold, it is not mostly under a privacy mask, it is not a vehicle that has
  stood at the same place for ``stationary_s``, it overlaps something that moved
  (``require_motion``: the parked car next to a passer-by is no event), and it is in a
  zone that alerts for its kind (no zones: anywhere).
* The first one starts an event for its label (with a snapshot). Later ones update it,
  at most every ``update_interval_s`` and only when something changed meaningfully: a
  better score (the new best snapshot goes along), a zone entered, or the box moved
  well away from the one last sent. A better picture seen between updates is kept and
  sent with the next message, so the best snapshot is never lost to the rate limit.
* An event ends when its label has not been seen for ``end_after_s``.
* Motion-only events (label "motion", object null, score = the changed share of the
  picture) follow the motion detector when ``motion_events`` is on: a site without a
  model still gets events; they end when motion stops.

The tracker is a plain state machine driven by capture times (µs, wall clock): it does
no I/O and no threading; every call returns the messages to enqueue, in order.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edge.detect.labels import DEFAULT_THRESHOLDS as DETECTOR_THRESHOLDS
from edge.detect.motion import MotionResult
from edge.detect.types import KINDS, Box, Detection
from edge.detect.zones import EMPTY, ZoneSet
from edge.events.message import EventMessage, Phase
from edge.events.snapshot import caption, render_snapshot

log = logging.getLogger("edge.events")

RgbArray = np.ndarray[Any, np.dtype[np.uint8]]

DETECTION_KINDS = KINDS
#: The detector's thresholds, tuned on real photographs (edge/detect/labels.py).
DEFAULT_THRESHOLDS: dict[str, float] = dict(DETECTOR_THRESHOLDS)
#: "other" (chairs, cups, ...) is off by default: static things would make an event every
#: time something moves in the room.
DEFAULT_KINDS = frozenset({"person", "vehicle", "pet"})


@dataclass(frozen=True, slots=True)
class TrackerSettings:
    """What makes, updates and ends events."""

    thresholds: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_THRESHOLDS))
    kinds: frozenset[str] = DEFAULT_KINDS
    end_after_s: float = 10.0
    update_interval_s: float = 3.0
    min_gain: float = 0.05  # a score this much above the best counts as better
    motion_events: bool = True
    max_masked: float = 0.5  # detections with more of their box under masks are dropped
    require_motion: bool = True  # objects must overlap a moving region to count
    # Vehicles (and "other" things) found at the same place for this long are parked:
    # someone walking past them is no vehicle event. People and pets never are.
    stationary_s: float = 30.0

    def __post_init__(self) -> None:
        for kind, value in self.thresholds.items():
            if kind not in DETECTION_KINDS or not 0.0 <= value <= 1.0:
                raise ValueError(
                    f"threshold {kind}={value!r}: kind must be one of "
                    f"{list(DETECTION_KINDS)} and the value within 0..1"
                )
        unknown = set(self.kinds) - set(DETECTION_KINDS)
        if unknown:
            raise ValueError(f"unknown kinds {sorted(unknown)}; one of {list(DETECTION_KINDS)}")
        if not 0.5 <= self.end_after_s <= 3600:
            raise ValueError(f"end_after_s must be 0.5..3600, got {self.end_after_s}")
        if not 1.0 <= self.stationary_s <= 86400:
            raise ValueError(f"stationary_s must be 1..86400, got {self.stationary_s}")
        if not 0.1 <= self.update_interval_s <= 3600:
            raise ValueError(f"update_interval_s must be 0.1..3600, got {self.update_interval_s}")


@dataclass(frozen=True, slots=True)
class Observation:
    """One label seen in one picture, after filtering."""

    label: str
    object: str | None
    score: float
    box: Box
    zones: tuple[str, ...]


@dataclass(slots=True)
class _Seen:
    """Where a thing of a kind was first seen (for telling parked from passing)."""

    kind: str
    box: Box
    first_us: int
    last_us: int


#: Kinds that can be parked; a person standing still at the door is still an event.
STATIONARY_KINDS = frozenset({"vehicle", "other"})
#: Same place: the box overlaps where it was first seen at least this much.
STATIONARY_IOU = 0.7
#: Places not seen again for this long are forgotten.
STATIONARY_FORGET_S = 600.0


@dataclass
class _Event:
    event_id: str
    label: str
    object: str | None
    started_us: int
    last_seen_us: int
    last_sent_us: int
    best_score: float
    box: Box
    zones: list[str]
    seq: int = 0
    sent_box: Box | None = None
    changed: bool = False  # zones or position changed since the last message
    pending: tuple[RgbArray, Observation] | None = None  # a better picture, not yet sent


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


#: Motion regions are grown by this much (of the picture) before the overlap test: motion
#: often catches only the moving part of an object (legs, a wheel).
MOTION_MARGIN = 0.02
#: A detection overlaps motion when this share of its box is inside a (grown) region.
MOTION_OVERLAP = 0.1


def _overlaps_motion(box: Box, moving: Sequence[Box]) -> bool:
    area = max(1e-9, (box[2] - box[0]) * (box[3] - box[1]))
    for m in moving:
        ix = min(box[2], m[2] + MOTION_MARGIN) - max(box[0], m[0] - MOTION_MARGIN)
        iy = min(box[3], m[3] + MOTION_MARGIN) - max(box[1], m[1] - MOTION_MARGIN)
        if ix > 0 and iy > 0 and ix * iy >= MOTION_OVERLAP * area:
            return True
    return False


def _union(boxes: Sequence[Box]) -> Box:
    return (
        min(b[0] for b in boxes),
        min(b[1] for b in boxes),
        max(b[2] for b in boxes),
        max(b[3] for b in boxes),
    )


class EventTracker:
    """One camera's active events."""

    #: The box moved when its overlap with the last sent one falls below this.
    MOVED_IOU = 0.3

    def __init__(
        self,
        camera_id: str,
        settings: TrackerSettings | None = None,
        zones: Callable[[], ZoneSet] | None = None,
        *,
        new_id: Callable[[], str] | None = None,
    ) -> None:
        self.camera_id = camera_id
        self.settings = settings or TrackerSettings()
        self._zones = zones or (lambda: EMPTY)
        self._new_id = new_id or (lambda: str(uuid.uuid4()))
        self._events: dict[str, _Event] = {}
        self._seen: list[_Seen] = []
        self.started = 0  # events started since start

    @property
    def active_labels(self) -> list[str]:
        """Labels with an active event."""
        return sorted(self._events)

    # -- inputs --------------------------------------------------------------------------

    def accept(
        self,
        detection: Detection,
        zones: ZoneSet,
        moving: Sequence[Box] | None = None,
        now_us: int | None = None,
    ) -> Observation | None:
        """The observation a detection makes, or None when it does not count.

        ``moving``: the changed regions of the picture; with ``require_motion`` a
        detection must overlap one (a parked car is seen, but it is not an event).
        ``now_us``: when it was seen; vehicles (and "other" things) that have stood at
        the same place for ``stationary_s`` do not count even when something moves there.
        """
        s = self.settings
        if detection.kind not in s.kinds:
            return None
        if detection.score < s.thresholds.get(detection.kind, DEFAULT_THRESHOLDS["other"]):
            return None
        if zones.masks and zones.masked_share(detection.box) > s.max_masked:
            return None
        # Remembered whether or not it moved now, so a parked car is known as parked.
        if now_us is not None and self._parked(detection, now_us):
            return None
        if s.require_motion and moving is not None and not _overlaps_motion(detection.box, moving):
            return None
        names = zones.zones_for(detection.kind, detection.box)
        if names is None:
            return None
        return Observation(
            detection.kind, detection.object, detection.score, detection.box, tuple(names)
        )

    def on_detections(
        self,
        detections: Sequence[Detection],
        rgb: RgbArray,
        capture_us: int,
        moving: Sequence[Box] | None = None,
    ) -> list[EventMessage]:
        """Detections in the picture ``rgb`` (privacy masks applied) taken at ``capture_us``;
        ``moving`` are the regions that changed in it (None: not known, all count)."""
        zones = self._zones()
        best: dict[str, Observation] = {}
        for detection in detections:
            obs = self.accept(detection, zones, moving, capture_us)
            if obs is not None and (obs.label not in best or obs.score > best[obs.label].score):
                best[obs.label] = obs
        messages: list[EventMessage] = []
        for obs in best.values():
            messages += self._observe(obs, rgb, capture_us)
        return messages + self.tick(capture_us)

    def _parked(self, detection: Detection, now_us: int) -> bool:
        """Whether this vehicle (or thing) has stood at this place for ``stationary_s``."""
        if detection.kind not in STATIONARY_KINDS:
            return False
        forget_us = STATIONARY_FORGET_S * 1e6
        self._seen = [p for p in self._seen if now_us - p.last_us < forget_us][-200:]
        for place in self._seen:
            if place.kind == detection.kind and iou(place.box, detection.box) >= STATIONARY_IOU:
                place.last_us = now_us
                return now_us - place.first_us >= self.settings.stationary_s * 1e6
        self._seen.append(_Seen(detection.kind, detection.box, now_us, now_us))
        return False

    def on_motion(self, result: MotionResult, rgb: RgbArray, capture_us: int) -> list[EventMessage]:
        """The motion detector's verdict on the picture ``rgb`` taken at ``capture_us``."""
        messages: list[EventMessage] = []
        if self.settings.motion_events:
            if result.moving and result.active:
                obs = self._motion_observation(result)
                if obs is not None:
                    messages += self._observe(obs, rgb, capture_us)
            elif not result.active and "motion" in self._events:
                messages.append(self._end(self._events.pop("motion"), capture_us))
        return messages + self.tick(capture_us)

    def _motion_observation(self, result: MotionResult) -> Observation | None:
        zones = self._zones()
        boxes: list[Box] = []
        names: list[str] = []
        for box in result.boxes:
            found = zones.zones_for("motion", box)
            if found is None:
                continue
            boxes.append(box)
            names += [n for n in found if n not in names]
        if not boxes:
            return None
        return Observation("motion", None, min(1.0, result.fraction), _union(boxes), tuple(names))

    def tick(self, now_us: int) -> list[EventMessage]:
        """End events not seen for ``end_after_s``; send updates the rate limit held back."""
        messages: list[EventMessage] = []
        end_after_us = self.settings.end_after_s * 1e6
        for label in list(self._events):
            event = self._events[label]
            if now_us - event.last_seen_us >= end_after_us:
                messages.append(self._end(self._events.pop(label), now_us))
            else:
                update = self._maybe_update(event, now_us)
                if update is not None:
                    messages.append(update)
        return messages

    def end_all(self, now_us: int) -> list[EventMessage]:
        """End every active event (the camera stops)."""
        messages = [self._end(event, now_us) for event in self._events.values()]
        self._events.clear()
        return messages

    # -- the state machine ---------------------------------------------------------------

    def _better(self, event: _Event, score: float) -> bool:
        if event.label == "motion":  # changed shares are small numbers: compare relatively
            return score > event.best_score * 1.25 + 1e-3
        return score >= event.best_score + self.settings.min_gain

    def _observe(self, obs: Observation, rgb: RgbArray, now_us: int) -> list[EventMessage]:
        event = self._events.get(obs.label)
        if event is None:
            event = _Event(
                event_id=self._new_id(),
                label=obs.label,
                object=obs.object,
                started_us=now_us,
                last_seen_us=now_us,
                last_sent_us=now_us,
                best_score=obs.score,
                box=obs.box,
                zones=list(obs.zones),
                sent_box=obs.box,
            )
            self._events[obs.label] = event
            self.started += 1
            log.info(
                "event started camera=%s event=%s label=%s object=%s score=%.2f zones=%s",
                self.camera_id,
                event.event_id,
                obs.label,
                obs.object or "-",
                obs.score,
                ",".join(obs.zones) or "-",
            )
            return [self._message(event, "start", now_us, snapshot=self._render(rgb, obs))]
        event.last_seen_us = now_us
        event.box = obs.box
        entered = [z for z in obs.zones if z not in event.zones]
        if entered:
            event.zones += entered
            event.changed = True
        if event.sent_box is None or iou(event.sent_box, obs.box) < self.MOVED_IOU:
            event.changed = True
        pending_score = event.pending[1].score if event.pending is not None else -1.0
        if self._better(event, obs.score) and obs.score > pending_score:
            event.pending = (rgb, obs)
        update = self._maybe_update(event, now_us)
        return [] if update is None else [update]

    def _maybe_update(self, event: _Event, now_us: int) -> EventMessage | None:
        if event.pending is None and not event.changed:
            return None
        if now_us - event.last_sent_us < self.settings.update_interval_s * 1e6:
            return None
        return self._message(event, "update", now_us, snapshot=self._take_pending(event))

    def _take_pending(self, event: _Event) -> bytes | None:
        if event.pending is None:
            return None
        rgb, obs = event.pending
        event.pending = None
        event.best_score = obs.score
        event.object = obs.object
        return self._render(rgb, obs)

    def _end(self, event: _Event, now_us: int) -> EventMessage:
        snapshot = self._take_pending(event)
        log.info(
            "event ended camera=%s event=%s label=%s best=%.2f seconds=%.1f",
            self.camera_id,
            event.event_id,
            event.label,
            event.best_score,
            (event.last_seen_us - event.started_us) / 1e6,
        )
        return self._message(event, "end", now_us, snapshot=snapshot, ended_us=event.last_seen_us)

    def _message(
        self,
        event: _Event,
        phase: Phase,
        now_us: int,
        *,
        snapshot: bytes | None,
        ended_us: int | None = None,
    ) -> EventMessage:
        message = EventMessage(
            event_id=event.event_id,
            seq=event.seq,
            phase=phase,
            label=event.label,
            object=event.object,
            score=event.best_score,
            box=event.box,
            zones=tuple(event.zones),
            started_us=event.started_us,
            at_us=now_us,
            ended_us=ended_us,
            snapshot=snapshot,
        )
        event.seq += 1
        event.last_sent_us = now_us
        event.sent_box = event.box
        event.changed = False
        return message

    def _render(self, rgb: RgbArray, obs: Observation) -> bytes:
        return render_snapshot(
            rgb,
            obs.box,
            caption(obs.label, obs.object, obs.score),
            label=obs.label,
            zones=self._zones(),
        )

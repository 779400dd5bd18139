"""edge.events.tracker: start → updates → end, the best snapshot, thresholds, zones, masks."""

from __future__ import annotations

import io
import itertools
from typing import Any

import numpy as np
import pytest
from PIL import Image

from edge.detect.motion import MotionResult
from edge.detect.types import Box, Detection
from edge.detect.zones import ZoneSet
from edge.events.message import EventMessage
from edge.events.tracker import EventTracker, TrackerSettings

S = 1_000_000  # µs
T0 = 1_700_000_000 * S
PERSON_BOX: Box = (0.4, 0.3, 0.6, 0.9)


def picture(shade: int = 120) -> np.ndarray[Any, np.dtype[np.uint8]]:
    rgb = np.full((240, 320, 3), shade, np.uint8)
    rgb.setflags(write=False)
    return rgb


def person(score: float, box: Box = PERSON_BOX) -> Detection:
    return Detection(object="person", kind="person", score=score, box=box)


def car(score: float, box: Box = (0.1, 0.5, 0.4, 0.8), name: str = "car") -> Detection:
    return Detection(object=name, kind="vehicle", score=score, box=box)


def make(zones: ZoneSet | None = None, **settings: Any) -> tuple[EventTracker, list[EventMessage]]:
    counter = itertools.count()
    tracker = EventTracker(
        "cam",
        TrackerSettings(**settings),
        (lambda: zones) if zones is not None else None,
        new_id=lambda: f"ev{next(counter)}",
    )
    return tracker, []


def jpeg_pixels(data: bytes) -> np.ndarray[Any, np.dtype[np.uint8]]:
    image = Image.open(io.BytesIO(data))
    assert image.format == "JPEG"
    return np.asarray(image.convert("RGB"))


def test_start_update_end_with_the_best_snapshot() -> None:
    tracker, out = make(update_interval_s=3, end_after_s=10)
    out += tracker.on_detections([person(0.6)], picture(), T0)
    assert [(m.phase, m.seq, m.label, m.object) for m in out] == [("start", 0, "person", "person")]
    start = out[0]
    assert start.key == "ev0:0"
    assert start.snapshot is not None
    assert start.score == 0.6
    assert start.box == PERSON_BOX
    assert start.zones == ()
    # Better pictures inside the rate limit are held back; the best of them goes next.
    out += tracker.on_detections([person(0.7)], picture(), T0 + 1 * S)
    out += tracker.on_detections([person(0.9)], picture(200), T0 + 2 * S)
    out += tracker.on_detections([person(0.8)], picture(), T0 + 2 * S + 500_000)
    assert len(out) == 1, "at most one message per update interval"
    out += tracker.on_detections([person(0.62)], picture(), T0 + 3 * S)
    update = out[1]
    assert (update.phase, update.seq, update.score) == ("update", 1, 0.9)
    assert update.snapshot is not None
    assert jpeg_pixels(update.snapshot)[5, 5].mean() > 180, "the 0.9 picture (shade 200)"
    # Same person, same place, no better score: nothing to say.
    for t in range(4, 12):
        out += tracker.on_detections([person(0.6)], picture(), T0 + t * S)
    assert len(out) == 2
    # Not seen for end_after_s: the event ends, ended_at = last seen.
    out += tracker.tick(T0 + 20 * S)
    assert len(out) == 2
    out += tracker.tick(T0 + 21 * S)
    end = out[2]
    assert (end.phase, end.seq, end.ended_us, end.at_us) == ("end", 2, T0 + 11 * S, T0 + 21 * S)
    assert end.snapshot is None
    assert end.score == 0.9
    assert {m.event_id for m in out} == {"ev0"}
    assert [m.started_us for m in out] == [T0] * 3
    # Seen again: a new event.
    new = tracker.on_detections([person(0.7)], picture(), T0 + 30 * S)
    assert [(m.event_id, m.phase, m.seq) for m in new] == [("ev1", "start", 0)]


def test_the_snapshot_shows_the_box_and_masks() -> None:
    zones = ZoneSet.parse(
        {"zones": [{"id": "m", "kind": "mask", "points": [[0, 0], [0.2, 0], [0.2, 0.2], [0, 0.2]]}]}
    )
    tracker, _ = make(zones)
    (start,) = tracker.on_detections([person(0.8)], picture(120), T0)
    assert start.snapshot is not None
    pixels = jpeg_pixels(start.snapshot).astype(int)
    assert pixels.shape == (240, 320, 3)
    assert pixels[10, 10].max() < 20, "the mask is black"
    # The box outline (red for a person) runs along x0 = 0.4 * 319 ≈ 128.
    edge = pixels[150, 126:131]
    assert (edge[:, 0] - edge[:, 2]).max() > 80
    assert abs(pixels[150, 160] - 120).max() < 10, "inside the box the picture is untouched"


def test_an_unseen_better_picture_goes_out_with_the_end() -> None:
    tracker, out = make(update_interval_s=30, end_after_s=5)
    out += tracker.on_detections([person(0.6)], picture(), T0)
    out += tracker.on_detections([person(0.95)], picture(), T0 + S)
    out += tracker.tick(T0 + 6 * S)
    assert [m.phase for m in out] == ["start", "end"]
    assert out[1].snapshot is not None
    assert out[1].score == 0.95


@pytest.mark.parametrize(
    ("detection", "counts"),
    [
        (person(0.49), False),  # below the person threshold
        (person(0.5), True),
        (car(0.69), False),  # vehicles need 0.7 here
        (car(0.7), True),
        (Detection("chair", "other", 0.99, (0.1, 0.1, 0.2, 0.2)), False),  # "other" is off
    ],
)
def test_thresholds_per_kind_and_kinds(detection: Detection, counts: bool) -> None:
    tracker, _ = make(thresholds={"person": 0.5, "vehicle": 0.7})
    assert bool(tracker.on_detections([detection], picture(), T0)) == counts


def test_other_kinds_can_be_switched_on() -> None:
    tracker, _ = make(kinds=frozenset({"other"}))
    (start,) = tracker.on_detections(
        [Detection("chair", "other", 0.9, (0.1, 0.1, 0.2, 0.2)), person(0.9)], picture(), T0
    )
    assert (start.label, start.object) == ("other", "chair")


def test_one_event_per_kind_with_the_best_detection_of_the_picture() -> None:
    tracker, _ = make()
    out = tracker.on_detections(
        [person(0.6), person(0.8, (0.7, 0.1, 0.8, 0.5)), car(0.7, name="truck")], picture(), T0
    )
    assert sorted((m.label, m.object, m.score) for m in out) == [
        ("person", "person", 0.8),
        ("vehicle", "truck", 0.7),
    ]
    assert tracker.active_labels == ["person", "vehicle"]


def test_zone_label_filters() -> None:
    zones = ZoneSet.parse(
        {
            "zones": [
                {
                    "id": "d",
                    "name": "Driveway",
                    "kind": "zone",
                    "labels": ["vehicle"],
                    "points": [[0, 0.5], [0.5, 0.5], [0.5, 1], [0, 1]],
                },
                {
                    "id": "g",
                    "name": "Garden",
                    "kind": "zone",
                    "labels": ["person", "pet"],
                    "points": [[0.5, 0], [1, 0], [1, 1], [0.5, 1]],
                },
            ]
        }
    )
    tracker, _ = make(zones)
    # A person in the driveway (feet at x=0.25) does not alert; a car there does.
    out = tracker.on_detections(
        [person(0.9, (0.2, 0.3, 0.3, 0.9)), car(0.9, (0.1, 0.5, 0.4, 0.8))], picture(), T0
    )
    assert [(m.label, m.zones) for m in out] == [("vehicle", ("Driveway",))]
    # The person walks into the garden: an event there.
    out = tracker.on_detections([person(0.9, (0.6, 0.3, 0.8, 0.9))], picture(), T0 + S)
    assert [(m.label, m.zones) for m in out] == [("person", ("Garden",))]


def test_entering_a_zone_or_moving_far_is_an_update() -> None:
    zones = ZoneSet.parse(
        {
            "zones": [
                {
                    "id": "a",
                    "name": "A",
                    "kind": "zone",
                    "points": [[0, 0], [0.5, 0], [0.5, 1], [0, 1]],
                },
                {
                    "id": "b",
                    "name": "B",
                    "kind": "zone",
                    "points": [[0.5, 0], [1, 0], [1, 1], [0.5, 1]],
                },
            ]
        }
    )
    tracker, out = make(zones, update_interval_s=2)
    out += tracker.on_detections([person(0.8, (0.1, 0.2, 0.3, 0.9))], picture(), T0)
    out += tracker.on_detections([person(0.8, (0.6, 0.2, 0.8, 0.9))], picture(), T0 + S)
    assert len(out) == 1
    out += tracker.tick(T0 + 2 * S)
    update = out[1]
    assert (update.phase, update.zones, update.box) == ("update", ("A", "B"), (0.6, 0.2, 0.8, 0.9))
    assert update.snapshot is None, "no better picture: no snapshot"
    assert update.score == 0.8


def test_only_objects_that_moved_count() -> None:
    parked = car(0.9, (0.7, 0.1, 0.95, 0.3))
    walking = person(0.8, (0.2, 0.4, 0.3, 0.9))
    legs: list[Box] = [(0.21, 0.7, 0.29, 0.9)]  # motion caught only the legs
    tracker, _ = make()
    out = tracker.on_detections([parked, walking], picture(), T0, moving=legs)
    assert [m.label for m in out] == ["person"], "the parked car is seen but is no event"
    loose, _ = make(require_motion=False)
    out = loose.on_detections([parked, walking], picture(), T0, moving=legs)
    assert sorted(m.label for m in out) == ["person", "vehicle"]
    unknown, _ = make()
    assert len(unknown.on_detections([parked, walking], picture(), T0)) == 2, "no motion known"


def test_a_parked_car_is_no_event_even_when_someone_walks_past() -> None:
    tracker, out = make(stationary_s=30)
    parked = car(0.9, (0.6, 0.4, 0.9, 0.7))
    around: list[Box] = [(0.5, 0.3, 1.0, 0.8)]  # someone walking in front of it
    nothing: list[Box] = [(0.0, 0.0, 0.1, 0.1)]
    # Seen whenever motion elsewhere runs the detector; not moving, no event.
    for t in range(0, 40, 5):
        out += tracker.on_detections([parked], picture(), T0 + t * S, moving=nothing)
    assert not out
    # 40 s later at the same place (boxes jitter a little): parked, even with motion on it.
    jitter = car(0.9, (0.61, 0.41, 0.9, 0.71))
    assert not tracker.on_detections([jitter], picture(), T0 + 40 * S, moving=around)
    # A car driving through elsewhere is an event.
    driving = car(0.9, (0.1, 0.4, 0.4, 0.7))
    (start,) = tracker.on_detections([driving], picture(), T0 + 41 * S, moving=[driving.box])
    assert (start.label, start.phase) == ("vehicle", "start")


def test_a_person_standing_still_stays_an_event() -> None:
    tracker, out = make(stationary_s=5, update_interval_s=1)
    still = person(0.8)
    for t in range(0, 60, 2):
        out += tracker.on_detections([still], picture(), T0 + t * S, moving=[still.box])
    assert [m.phase for m in out] == ["start"], "one event, never ended, nothing parked"


def test_detections_under_a_mask_are_ignored() -> None:
    zones = ZoneSet.parse(
        {"zones": [{"id": "m", "kind": "mask", "points": [[0, 0], [0.5, 0], [0.5, 1], [0, 1]]}]}
    )
    tracker, _ = make(zones)
    assert not tracker.on_detections([person(0.99, (0.1, 0.2, 0.3, 0.9))], picture(), T0)
    assert tracker.on_detections([person(0.99, (0.6, 0.2, 0.8, 0.9))], picture(), T0)


def moving(fraction: float, box: Box = (0.2, 0.2, 0.4, 0.6), active: bool = True) -> MotionResult:
    return MotionResult(active=active, moving=True, fraction=fraction, boxes=(box,))


def test_motion_events_follow_motion() -> None:
    tracker, out = make(update_interval_s=1)
    out += tracker.on_motion(moving(0.01, active=False), picture(), T0)
    assert not out, "not before motion is debounced"
    out += tracker.on_motion(moving(0.01), picture(), T0 + 200_000)
    out += tracker.on_motion(moving(0.012), picture(), T0 + 400_000)  # not 25 % better
    out += tracker.on_motion(moving(0.05), picture(), T0 + 1_400_000)
    out += tracker.on_motion(MotionResult(True, False, 0.0), picture(), T0 + 2 * S)
    out += tracker.on_motion(MotionResult(False, False, 0.0), picture(), T0 + 5 * S)
    assert [(m.phase, m.label, m.object, m.score) for m in out] == [
        ("start", "motion", None, 0.01),
        ("update", "motion", None, 0.05),
        ("end", "motion", None, 0.05),
    ]
    assert out[1].snapshot is not None
    assert out[2].ended_us == T0 + 1_400_000


def test_motion_events_can_be_off_and_respect_zones() -> None:
    tracker, _ = make(motion_events=False)
    assert not tracker.on_motion(moving(0.2), picture(), T0)
    zones = ZoneSet.parse(
        {
            "zones": [
                {
                    "id": "z",
                    "name": "Door",
                    "kind": "zone",
                    "labels": ["person"],
                    "points": [[0, 0], [1, 0], [1, 1]],
                }
            ]
        }
    )
    tracker, _ = make(zones)
    assert not tracker.on_motion(moving(0.2), picture(), T0), "the zone does not take motion"


def test_end_all_ends_everything() -> None:
    tracker, _ = make()
    tracker.on_detections([person(0.9), car(0.9)], picture(), T0)
    ends = tracker.end_all(T0 + S)
    assert sorted((m.label, m.phase, m.seq) for m in ends) == [
        ("person", "end", 1),
        ("vehicle", "end", 1),
    ]
    assert not tracker.active_labels


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="threshold"):
        TrackerSettings(thresholds={"person": 1.5})
    with pytest.raises(ValueError, match="unknown kinds"):
        TrackerSettings(kinds=frozenset({"ufo"}))
    with pytest.raises(ValueError, match="stationary_s"):
        TrackerSettings(stationary_s=0)


def test_messages_match_the_wire_contract() -> None:
    tracker, _ = make()
    (start,) = tracker.on_detections([person(0.87654)], picture(), T0 + 123_456)
    body = start.body()
    assert body == {
        "key": "ev0:0",
        "event_id": "ev0",
        "seq": 0,
        "phase": "start",
        "label": "person",
        "object": "person",
        "score": 0.8765,
        "box": [0.4, 0.3, 0.6, 0.9],
        "zones": [],
        "started_at": "2023-11-14T22:13:20.123Z",
        "at": "2023-11-14T22:13:20.123Z",
        "ended_at": None,
        "snapshot": None,
    }

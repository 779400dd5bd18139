"""edge.detect.zones: strict parsing, rasterised masks, zone membership, persistence."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge.detect.zones import ZonesError, ZoneSet, ZoneState

SQUARE = [[0.25, 0.25], [0.75, 0.25], [0.75, 0.75], [0.25, 0.75]]
LEFT_HALF = [[0, 0], [0.5, 0], [0.5, 1], [0, 1]]


def zone(
    zid: str = "z1",
    kind: str = "zone",
    points: Any = None,
    name: Any = "Driveway",
    **extra: Any,
) -> dict[str, Any]:
    return {"id": zid, "name": name, "kind": kind, "points": points or SQUARE, **extra}


def message(*polygons: dict[str, Any]) -> dict[str, Any]:
    return {"type": "zones", "zones": list(polygons)}


def test_parses_zones_and_masks() -> None:
    zs = ZoneSet.parse(
        message(
            zone("z1", labels=["person", "vehicle"]),
            zone("m1", "mask", LEFT_HALF, name=None),
        )
    )
    assert [z.name for z in zs.zones] == ["Driveway"]
    assert zs.zones[0].labels == {"person", "vehicle"}
    assert [m.id for m in zs.masks] == ["m1"]
    assert zs.masks[0].name == "m1", "a nameless polygon is called by its id"
    again = ZoneSet.parse(zs.to_json())
    assert again.to_json() == zs.to_json()


@pytest.mark.parametrize(
    ("polygons", "error"),
    [
        ([zone(points=[[0, 0], [1, 0]])], "3..256"),
        ([zone(points=[[0, 0], [1.2, 0], [1, 1]])], "within 0..1"),
        ([zone(points=[[0, 0], [float("nan"), 0], [1, 1]])], "within 0..1"),
        ([zone(points=[[0, 0], ["a", 0], [1, 1]])], "must be numbers"),
        ([zone(points=[[0, 0], [True, 0], [1, 1]])], "must be numbers"),
        ([zone(points=[[0, 0], [0.5, 0.5], [1, 1]])], "no area"),
        ([zone(points=[[0, 0], [1], [1, 1]])], r"\[x, y\] pair"),
        ([zone(kind="window")], "`kind` must be"),
        ([zone(labels=["person", "ufo"])], "unknown labels"),
        ([zone(labels="person")], "list of strings"),
        ([zone(zid="")], "`id`"),
        ([zone(name=7)], "`name`"),
        ([zone("a"), zone("a")], "duplicate polygon ids"),
        (["nope"], "must be an object"),
    ],
)
def test_bad_polygons_are_refused_with_the_reason(polygons: list[Any], error: str) -> None:
    with pytest.raises(ZonesError, match=error):
        ZoneSet.parse(message(*polygons))


def test_the_list_itself_must_be_a_list() -> None:
    with pytest.raises(ZonesError, match="must be a list"):
        ZoneSet.parse({"type": "zones", "zones": {"z1": SQUARE}})
    with pytest.raises(ZonesError, match="at most 64"):
        ZoneSet.parse(message(*[zone(f"z{i}") for i in range(65)]))


def test_masks_are_rasterised_at_any_size_and_black_out_pictures() -> None:
    zs = ZoneSet.parse(message(zone("m", "mask", SQUARE)))
    raster = zs.mask_raster(200, 100)
    assert raster is not None
    assert raster.shape == (100, 200)
    assert raster[50, 100]
    assert not raster[5, 5]
    assert not raster[95, 195]
    assert abs(raster.mean() - 0.25) < 0.02
    assert zs.mask_raster(200, 100) is raster, "cached per size"
    rgb = np.full((100, 200, 3), 200, np.uint8)
    rgb.setflags(write=False)
    out = zs.apply_masks(rgb)
    assert out[50, 100].tolist() == [0, 0, 0]
    assert out[5, 5].tolist() == [200, 200, 200]
    assert rgb[50, 100].tolist() == [200, 200, 200], "the input is not modified"
    assert ZoneSet().apply_masks(rgb) is rgb, "no masks: no copy"


def test_zone_membership_uses_the_bottom_centre_and_the_label_filter() -> None:
    zs = ZoneSet.parse(
        message(
            zone("drive", points=[[0, 0.5], [1, 0.5], [1, 1], [0, 1]], labels=["vehicle"]),
            zone("path", points=LEFT_HALF, name="Path", labels=[]),
        )
    )
    # A person standing on the left, feet in the lower half: only "Path" takes people.
    assert zs.zones_for("person", (0.1, 0.2, 0.3, 0.8)) == ["Path"]
    # A car on the right, wheels in the lower half: the driveway.
    assert zs.zones_for("vehicle", (0.6, 0.3, 0.9, 0.7)) == ["Driveway"]
    assert zs.zones_for("vehicle", (0.1, 0.3, 0.3, 0.7)) == ["Driveway", "Path"]
    # The same person on the right: no zone takes people there.
    assert zs.zones_for("person", (0.6, 0.2, 0.8, 0.8)) is None
    # Head in the zone but feet out of it does not count.
    assert zs.zones_for("vehicle", (0.6, 0.0, 0.9, 0.4)) is None
    assert ZoneSet().zones_for("person", (0.6, 0.2, 0.8, 0.8)) == [], "implicit zone"


def test_masked_share() -> None:
    zs = ZoneSet.parse(message(zone("m", "mask", LEFT_HALF)))
    assert zs.masked_share((0.0, 0.0, 0.4, 1.0)) > 0.95
    assert zs.masked_share((0.6, 0.0, 0.9, 1.0)) == 0.0
    assert 0.4 < zs.masked_share((0.3, 0.0, 0.7, 1.0)) < 0.6


def test_state_keeps_the_previous_zones_on_a_bad_message(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "cam" / "zones.json"
    state = ZoneState("cam", path)
    assert state.update(message(zone("m", "mask")))
    assert len(state.current.masks) == 1
    with caplog.at_level(logging.WARNING, "edge.zones"):
        assert not state.update(message(zone("m", "mask"), zone("bad", points=[[0, 0]])))
    assert "zones message rejected camera=cam" in caplog.text
    assert "kept the previous zones" in caplog.text
    assert len(state.current.masks) == 1, "the mask is still applied"
    assert state.rejected == 1
    # Saved, so a restart masks from the first picture on, server or not.
    saved = json.loads(path.read_text())
    assert saved["zones"][0]["id"] == "m"
    assert len(ZoneState("cam", path).current.masks) == 1
    assert state.update(message())
    assert not ZoneState("cam", path).current.masks


def test_an_unreadable_saved_file_is_logged_and_ignored(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "zones.json"
    path.write_text("{nope")
    with caplog.at_level(logging.ERROR, "edge.zones"):
        state = ZoneState("cam", path)
    assert "saved zones unreadable" in caplog.text
    assert not state.current.masks

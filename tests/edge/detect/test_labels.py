"""COCO class names → the kinds livecam alerts on (contract 1)."""

from __future__ import annotations

from edge.detect.labels import COCO80, DEFAULT_THRESHOLDS, KIND_BY_OBJECT, kind_of
from edge.detect.types import KINDS


def test_every_coco_class_has_a_kind() -> None:
    assert len(COCO80) == len(set(COCO80)) == 80
    assert set(KIND_BY_OBJECT) == set(COCO80)
    assert set(KIND_BY_OBJECT.values()) == set(KINDS)


def test_the_contract_mapping() -> None:
    assert kind_of("person") == "person"
    for name in ("car", "truck", "bus", "motorcycle", "bicycle", "train", "boat", "airplane"):
        assert kind_of(name) == "vehicle", name
    for name in ("dog", "cat", "bird", "horse", "sheep", "cow"):
        assert kind_of(name) == "pet", name
    for name in ("giraffe", "zebra", "bear", "chair", "potted plant", "traffic light"):
        assert kind_of(name) == "other", name


def test_an_unknown_name_is_other() -> None:
    assert kind_of("nonsense") == "other"
    assert kind_of("") == "other"


def test_every_kind_has_a_default_threshold() -> None:
    assert set(DEFAULT_THRESHOLDS) == set(KINDS)
    assert all(0.0 < v < 1.0 for v in DEFAULT_THRESHOLDS.values())

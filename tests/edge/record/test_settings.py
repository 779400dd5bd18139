"""``[camera.record]``: defaults, values, and every mistake named by its key."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.config import ConfigError, load_config
from edge.record.settings import GB, RecordSettings, parse_record

CAMERA = (
    "server = 'http://x'\n[[camera]]\nid = 'door'\ncredential = 'x'\n"
    "source = {kind = 'synthetic'}\n"
)


def test_defaults() -> None:
    s = parse_record({})
    assert s == RecordSettings()
    assert (s.enabled, s.clips, s.segment_s, s.max_age_days) == (True, True, 60.0, 7.0)
    assert (s.pre_roll_s, s.post_roll_s, s.max_clip_s, s.fsync_s) == (5.0, 5.0, 300.0, 2.0)
    assert s.budget_bytes is None
    assert s.reserve_bytes(total_bytes=32 * GB) == 1 * GB


def test_values_and_percentage_reserve() -> None:
    s = parse_record(
        {
            "enabled": False,
            "segment_s": 30,
            "max_age_days": 3,
            "event_max_age_days": 14,
            "max_gb": 20.5,
            "min_free_gb": "10%",
            "pre_roll_s": 2,
            "post_roll_s": 8,
            "max_clip_s": 120,
            "clips": False,
            "fsync_s": 0,
        }
    )
    assert not s.enabled
    assert not s.clips
    assert (s.segment_s, s.max_age_days, s.event_max_age_days) == (30.0, 3.0, 14.0)
    assert s.budget_bytes == 20_500_000_000
    assert s.min_free_percent == 10.0
    assert s.reserve_bytes(total_bytes=8 * GB) == int(0.8 * GB)
    assert (s.pre_roll_s, s.post_roll_s, s.max_clip_s, s.fsync_s) == (2.0, 8.0, 120.0, 0.0)


def test_loaded_from_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "edge.toml"
    path.write_text(CAMERA + "[camera.record]\nenabled = false\nmin_free_gb = 0.5\n")
    (camera,) = load_config(path, env={}).cameras
    assert not camera.record.enabled
    assert camera.record.reserve_bytes(total_bytes=GB) == GB // 2
    path.write_text(CAMERA)
    assert load_config(path, env={}).cameras[0].record == RecordSettings()


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("segment_s = 1", r"record\.segment_s must be a number in 2\.\.3600, got 1"),
        ("segment_s = 'long'", r"record\.segment_s must be a number"),
        ("max_age_days = -1", r"record\.max_age_days must be a number"),
        ("max_gb = true", r"record\.max_gb must be a number"),
        ("min_free_gb = 'lots'", r"record\.min_free_gb must be a number of GB or a percentage"),
        ("min_free_gb = '95%'", r"record\.min_free_gb must be .* 0%\.\.90%"),
        ("min_free_gb = -2", r"record\.min_free_gb must be a number"),
        ("enabled = 'yes'", r"record\.enabled must be true or false"),
        ("clips = 1", r"record\.clips must be true or false"),
        ("fsync_s = 100", r"record\.fsync_s must be a number in 0\.\.60"),
        ("pre_roll_s = 61", r"record\.pre_roll_s must be a number in 0\.\.60"),
        ("max_clip_s = 8", r"record\.max_clip_s \(8\) must be longer than pre_roll_s"),
        ("max_age_days = 40", r"record\.event_max_age_days \(30\) must be ≥ record\.max_age_days"),
        ("segments = 3", r"unknown key record\.segments"),
    ],
)
def test_mistakes_name_the_key(tmp_path: Path, table: str, message: str) -> None:
    path = tmp_path / "edge.toml"
    path.write_text(CAMERA + "[camera.record]\n" + table + "\n")
    with pytest.raises(ConfigError, match=r"camera #1 \(door\): " + message):
        load_config(path, env={})


def test_record_must_be_a_table(tmp_path: Path) -> None:
    path = tmp_path / "edge.toml"
    path.write_text(CAMERA.replace("source =", "record = 5\nsource ="))
    with pytest.raises(ConfigError, match="`record` must be a table"):
        load_config(path, env={})

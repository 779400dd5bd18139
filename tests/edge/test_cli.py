"""edge.cli: detectors shared per model, cameras fall back to motion, a bad data_dir is named."""

from __future__ import annotations

import logging
import tomllib
from pathlib import Path
from typing import Any

import pytest

import edge.cli
from edge.cli import main, open_detectors
from edge.config import parse_config
from edge.pion_publisher import PionUnavailable

BASE = "server = 'http://127.0.0.1:9'\n"


def cameras(tmp_path: Path, *detects: str) -> Any:
    text = BASE
    for i, detect in enumerate(detects):
        text += f"[[camera]]\nid='c{i}'\ncredential='x'\nsource={{kind='synthetic'}}\n"
        text += f"[camera.detect]\n{detect}\n"
    return parse_config(tomllib.loads(text), base=tmp_path, env={}).cameras


class FakeDetector:
    def __init__(self, model: str | None, thresholds: dict[str, float]) -> None:
        self.model = model
        self.thresholds = thresholds

    def detect(self, rgb: Any) -> list[Any]:
        return []


def test_one_detector_per_model_with_the_lowest_thresholds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[FakeDetector] = []

    def load(model: str | None = None, thresholds: dict[str, float] | None = None) -> Any:
        made.append(FakeDetector(model, dict(thresholds or {})))
        return made[-1]

    monkeypatch.setattr(edge.cli, "load_detector", load)
    cams = cameras(
        tmp_path,
        "thresholds = { person = 0.7 }",
        "thresholds = { person = 0.4 }",
        "enabled = false",
        "model = 'other.onnx'",
    )
    detectors = open_detectors(cams)
    assert len(made) == 2, "the default model once, the other model once, none when off"
    default = detectors[None]
    assert isinstance(default, FakeDetector)
    assert default.thresholds["person"] == 0.4, "each tracker applies its own threshold"
    assert detectors[str(tmp_path / "other.onnx")] is made[1]


def test_a_missing_model_leaves_the_cameras_on_motion(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def load(model: str | None = None, thresholds: dict[str, float] | None = None) -> Any:
        raise FileNotFoundError("no model in ~/.cache/livecam/models")

    monkeypatch.setattr(edge.cli, "load_detector", load)
    with caplog.at_level(logging.WARNING, "edge"):
        assert open_detectors(cameras(tmp_path, "fps = 5")) == {}
    assert "object detection unavailable cameras=c0" in caplog.text
    assert "motion events only" in caplog.text
    assert "no model in" in caplog.text


def test_an_unusable_data_dir_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    config = tmp_path / "edge.toml"
    config.write_text(
        BASE + f"data_dir = '{blocker}'\n[[camera]]\nid='c'\ncredential='x'\n"
        "source={kind='synthetic'}\n[camera.detect]\nenabled = false\n"
    )
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        assert main(["run", "--config", str(config)]) == 2
    finally:  # the CLI installs its own log handler; give pytest's back
        root.handlers[:] = handlers
        root.setLevel(level)
    err = capsys.readouterr().err
    assert "cannot use the data directory" in err
    assert f"data_dir={blocker} " in err


def test_pion_without_its_program_says_how_to_build_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIVECAM_PIONPUB_BIN", str(tmp_path / "missing"))
    monkeypatch.setenv("PATH", str(tmp_path))
    config = tmp_path / "edge.toml"
    config.write_text(
        BASE + "publisher = 'pion'\n[[camera]]\nid='c'\ncredential='x'\nsource={kind='synthetic'}\n"
    )
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        assert main(["run", "--config", str(config)]) == 2
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    err = capsys.readouterr().err
    assert "config error" in err
    assert "scripts/setup-pionpub.sh" in err
    assert 'publisher = "libwebrtc"' in err


def test_auto_takes_pion_when_installed_and_falls_back_to_libwebrtc(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(edge.cli, "pionpub_binary", lambda: tmp_path / "pionpub")
    assert edge.cli.choose_pionpub("auto") == tmp_path / "pionpub"
    assert edge.cli.choose_pionpub("pion") == tmp_path / "pionpub"
    assert edge.cli.choose_pionpub("libwebrtc") is None

    def missing() -> Path:
        raise PionUnavailable("no pionpub here")

    monkeypatch.setattr(edge.cli, "pionpub_binary", missing)
    with caplog.at_level(logging.INFO, logger="edge"):
        assert edge.cli.choose_pionpub("auto") is None
    assert "publishing with libwebrtc" in caplog.text
    assert "no pionpub here" in caplog.text
    with pytest.raises(PionUnavailable):
        edge.cli.choose_pionpub("pion")

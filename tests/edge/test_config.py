"""Edge configuration: what loads, and that every mistake is named precisely."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.config import ConfigError, credential_env_name, load_config


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "edge.toml"
    path.write_text(text)
    return path


def test_loads_cameras_with_credentials_from_file_inline_and_env(tmp_path: Path) -> None:
    (tmp_path / "a.credential").write_text("lce_from_file\n")
    path = write(
        tmp_path,
        """
server = "https://cams.example.com/"
heartbeat_interval_s = 2
[[camera]]
id = "a"
credential_file = "a.credential"
source = { kind = "file", path = "clips/x.mp4" }
[[camera]]
id = "back-yard"
credential = "lce_inline"
source = { kind = "synthetic", width = 640, height = 360 }
""",
    )
    cfg = load_config(path, env={credential_env_name("back-yard"): "lce_env"})
    assert cfg.server == "https://cams.example.com"
    assert cfg.heartbeat_interval_s == 2
    a, b = cfg.cameras
    assert (a.id, a.credential, a.kind) == ("a", "lce_from_file", "file")
    assert a.options["path"] == str(tmp_path / "clips" / "x.mp4")
    assert (b.credential, b.options) == ("lce_env", {"width": 640, "height": 360})


def test_environment_overrides_the_server(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'server = "http://a"\n[[camera]]\nid="c"\ncredential="x"\nsource={kind="synthetic"}\n',
    )
    assert load_config(path, env={"LIVECAM_SERVER": "http://b:8080"}).server == "http://b:8080"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("server = 'ftp://x'\n", "must be an http"),
        ("server = 'http://x'\n", "no \\[\\[camera\\]\\]"),
        ("server = 'http://x'\n[[camera]]\nid='Bad Id'\n", "id 'Bad Id' must match"),
        ("server = 'http://x'\n[[camera]]\nid='a'\nsource={kind='synthetic'}\n", "no credential"),
        (
            "server = 'http://x'\n[[camera]]\nid='a'\ncredential='x'\n",
            "must be a table with a `kind`",
        ),
        (
            "server = 'http://x'\n[[camera]]\nid='a'\ncredential='x'\nsource={kind='webcam'}\n",
            "unknown source kind 'webcam'",
        ),
        (
            "server = 'http://x'\n[[camera]]\nid='a'\ncredential='x'\nsource={kind='file'}\n"
            "[[camera]]\nid='a'\ncredential='x'\nsource={kind='file'}\n",
            "duplicate id 'a'",
        ),
        ("server = 'http://x'\n[[camera]]\nid='a'\ncredential_file='missing'\n", "cannot read"),
        ("server = [", "invalid TOML"),
    ],
)
def test_mistakes_are_named(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, text), env={})


def test_missing_file_says_how_to_create_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="python -m edge enroll"):
        load_config(tmp_path / "nope.toml", env={})

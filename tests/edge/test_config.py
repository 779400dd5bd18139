"""Edge configuration: what loads, and that every mistake is named precisely."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.config import ConfigError, credential_env_name, load_config
from edge.detect.labels import DEFAULT_THRESHOLDS


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


BASE = "server = 'http://x'\n[[camera]]\nid='a'\ncredential='x'\nsource={kind='synthetic'}\n"


def test_detection_defaults_and_data_dir(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, BASE), env={"STATE_DIRECTORY": "/run/state:/other"})
    (cam,) = cfg.cameras
    assert cam.detect.enabled
    assert (cam.detect.fps, cam.detect.width, cam.detect.interval_s) == (5.0, 320, 1.0)
    assert cam.detect.tracker.motion_events
    assert cam.detect.tracker.require_motion
    assert cam.detect.tracker.kinds == {"person", "vehicle", "pet"}
    assert cam.detect.model is None
    assert cfg.data_dir == Path("/run/state"), "systemd's StateDirectory="
    home = load_config(write(tmp_path, BASE), env={})
    assert home.data_dir == Path("~/.local/state/livecam-edge").expanduser()
    relative = load_config(write(tmp_path, "data_dir = 'state'\n" + BASE), env={})
    assert relative.data_dir == tmp_path / "state"
    env = load_config(write(tmp_path, BASE), env={"LIVECAM_EDGE_DATA_DIR": "/srv/edge"})
    assert env.data_dir == Path("/srv/edge")


def test_detection_settings_per_camera(tmp_path: Path) -> None:
    text = BASE + (
        "[camera.detect]\nfps = 2\nwidth = 480\ninterval_s = 0.5\nmotion_events = false\n"
        "kinds = ['person', 'other']\nrequire_motion = false\n"
        "motion_threshold = 30\nmotion_min_area = 0.01\n"
        "motion_quiet_s = 5\nend_after_s = 20\nupdate_interval_s = 4\nmodel = 'm/det.onnx'\n"
        "stationary_s = 60\n"
        "[camera.detect.thresholds]\nperson = 0.7\n"
    )
    (cam,) = load_config(write(tmp_path, text), env={}).cameras
    d = cam.detect
    assert (d.fps, d.width, d.interval_s) == (2.0, 480, 0.5)
    assert not d.tracker.motion_events
    assert not d.tracker.require_motion
    assert d.tracker.kinds == {"person", "other"}
    assert d.tracker.thresholds["person"] == 0.7
    assert d.tracker.thresholds["vehicle"] == DEFAULT_THRESHOLDS["vehicle"], "the default"
    assert (d.motion.threshold, d.motion.min_area, d.motion.quiet_s) == (30, 0.01, 5.0)
    assert (d.tracker.end_after_s, d.tracker.update_interval_s) == (20.0, 4.0)
    assert d.tracker.stationary_s == 60.0
    assert d.model == str(tmp_path / "m" / "det.onnx")
    off = load_config(write(tmp_path, BASE + "[camera.detect]\nenabled = false\n"), env={})
    assert not off.cameras[0].detect.enabled


@pytest.mark.parametrize(
    ("detect", "message"),
    [
        ("fps = 0", r"camera #1 \(a\): detect.fps must be a number in 0.2..30"),
        ("width = 320.5", "detect.width must be an integer"),
        ("enabled = 'yes'", "detect.enabled must be true or false"),
        ("motion_events = 1", "detect.motion_events must be true or false"),
        ("fsp = 5", "unknown key detect.fsp"),
        ("kinds = ['people']", "detect.kinds must be a list of"),
        ("thresholds = { cat = 0.5 }", "detect.thresholds.cat: unknown kind"),
        ("thresholds = { person = 2 }", "detect.thresholds.person must be 0..1"),
        ("motion_min_area = 0.9", "detect.motion_min_area must be a number"),
        ("end_after_s = true", "detect.end_after_s must be a number"),
        ("model = ''", "detect.model must be a path"),
    ],
)
def test_detection_mistakes_name_the_key(tmp_path: Path, detect: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, BASE + "[camera.detect]\n" + detect + "\n"), env={})


def test_detect_must_be_a_table(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="`detect` must be a table"):
        load_config(
            write(tmp_path, BASE.replace("source=", "detect=1\nsource=")),
            env={},
        )


def test_publisher_is_auto_unless_one_is_asked_for(tmp_path: Path) -> None:
    body = '[[camera]]\nid = "a"\ncredential = "c"\nsource = { kind = "synthetic" }\n'
    plain = write(tmp_path, 'server = "http://s"\n' + body)
    assert load_config(plain, env={}).publisher == "auto"
    pion = write(tmp_path, 'server = "http://s"\npublisher = "pion"\n' + body)
    assert load_config(pion, env={}).publisher == "pion"
    assert load_config(plain, env={"LIVECAM_EDGE_PUBLISHER": "pion"}).publisher == "pion"
    lib = write(tmp_path, 'server = "http://s"\npublisher = "libwebrtc"\n' + body)
    assert load_config(lib, env={}).publisher == "libwebrtc"
    bad = write(tmp_path, 'server = "http://s"\npublisher = "gstreamer"\n' + body)
    with pytest.raises(ConfigError, match=r"`publisher` must be one of auto, libwebrtc, pion"):
        load_config(bad, env={})

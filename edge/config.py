"""Edge configuration: a TOML file, with the environment for secrets and the server URL.

    server = "https://cams.example.com"
    heartbeat_interval_s = 5

    data_dir = "/var/lib/livecam-edge"          # outbox, zones, recordings, clips
    upload_kbps = 0                             # clip upload limit for all cameras (0: none)
    upload_chunk_kb = 1024                      # clip upload chunk (a resume re-sends < 1)
    [[camera]]
    id = "front-door"
    credential_file = "front-door.credential"   # relative to this file; or credential = "lce_…"
    source = { kind = "picamera2", width = 1920, height = 1080, fps = 30 }
    [camera.detect]                             # optional; every key has a default
    enabled = true                              # motion, objects, events
    fps = 5                                     # analysis pictures per second
    width = 320                                 # analysis (and event snapshot) width
    interval_s = 1.0                            # object detection while motion lasts
    kinds = ["person", "vehicle", "pet"]        # which kinds make events ("other" too)
    thresholds = { person = 0.6 }               # per kind (default: the detector's)
    motion_events = true                        # "motion" events (a site without a model)
    require_motion = true                       # objects must move (no parked-car events)
    stationary_s = 30.0                         # a vehicle this long in one place is parked
    motion_threshold = 20                       # grey levels a pixel must change
    motion_min_area = 0.004                     # share of the picture that must change
    motion_quiet_s = 3.0                        # motion ends after this long without
    end_after_s = 10.0                          # an event ends when unseen this long
    update_interval_s = 3.0                     # at most one update per event this often
    model = "/path/to/model.onnx"               # instead of the detector's default model
    [camera.record]                             # optional; see edge/record/settings.py
    enabled = true                              # continuous fMP4 segments
    segment_s = 60                              # segment length (rolls on a keyframe)
    max_age_days = 7                            # event_max_age_days = 30 for event footage
    max_gb = 0                                  # budget for segments + clips (0: none)
    min_free_gb = 1.0                           # reserve kept free (or "5%")
    clips = true                                # event clips: pre_roll_s, post_roll_s, max_clip_s

Environment: LIVECAM_SERVER overrides ``server``; LIVECAM_EDGE_CREDENTIAL_<ID> (id upper-
cased, "-" → "_") overrides a camera's credential; LIVECAM_EDGE_DATA_DIR overrides
``data_dir``, which otherwise defaults to $STATE_DIRECTORY (systemd's StateDirectory=)
or ~/.local/state/livecam-edge.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.detect.motion import MotionSettings
from edge.events.pipeline import DetectSettings
from edge.events.tracker import DETECTION_KINDS, TrackerSettings
from edge.record.settings import RecordSettings, parse_record
from edge.sources import KINDS

CAMERA_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")


#: How access units reach LiveKit: livekit.rtc's libwebrtc, or edge/pionpub (pion);
#: "auto" is pion when its program is installed, else libwebrtc (edge.cli decides).
PUBLISHERS = ("auto", "libwebrtc", "pion")


class ConfigError(ValueError):
    """The configuration cannot be used; the message names the file and the key."""


@dataclass(frozen=True, slots=True)
class CameraConfig:
    """One camera served by this edge."""

    id: str
    credential: str
    kind: str
    options: dict[str, Any] = field(default_factory=dict)
    detect: DetectSettings = field(default_factory=DetectSettings)
    record: RecordSettings = field(default_factory=RecordSettings)


@dataclass(frozen=True, slots=True)
class EdgeConfig:
    """The whole edge process."""

    server: str
    cameras: tuple[CameraConfig, ...]
    data_dir: Path = field(default_factory=lambda: default_data_dir({}))
    heartbeat_interval_s: float = 5.0
    stall_timeout_s: float = 15.0
    log_level: str = "info"
    upload_kbps: float = 0.0  # 0: no limit
    upload_chunk_kb: int = 1024
    publisher: str = "auto"  # or "libwebrtc", "pion": see edge/pion_publisher.py


def credential_env_name(camera_id: str) -> str:
    """The environment variable that may hold a camera's credential."""
    return "LIVECAM_EDGE_CREDENTIAL_" + camera_id.upper().replace("-", "_")


def default_data_dir(env: Mapping[str, str]) -> Path:
    """$STATE_DIRECTORY (systemd; the first if several) or ~/.local/state/livecam-edge."""
    state = env.get("STATE_DIRECTORY", "").split(":")[0]
    return Path(state) if state else Path("~/.local/state/livecam-edge").expanduser()


def load_config(path: Path, env: Mapping[str, str] | None = None) -> EdgeConfig:
    """Read and validate ``path``; ConfigError says exactly what is wrong."""
    env = os.environ if env is None else env
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(
            f"{path}: no such file (create it, or run `python -m edge enroll`)"
        ) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from exc
    return parse_config(data, base=path.parent, env=env, origin=str(path))


def parse_config(
    data: Mapping[str, Any], *, base: Path, env: Mapping[str, str], origin: str = "config"
) -> EdgeConfig:
    """Validate an already-parsed config mapping."""
    server = str(env.get("LIVECAM_SERVER") or data.get("server") or "")
    if not server.startswith(("http://", "https://")):
        raise ConfigError(f"{origin}: `server` must be an http(s) URL, got {server!r}")
    cameras_raw = data.get("camera", [])
    if not isinstance(cameras_raw, list) or not cameras_raw:
        raise ConfigError(f"{origin}: no [[camera]] tables; add one per camera")
    cameras: list[CameraConfig] = []
    seen: set[str] = set()
    for i, raw in enumerate(cameras_raw):
        where = f"{origin}: camera #{i + 1}"
        if not isinstance(raw, dict):
            raise ConfigError(f"{where}: must be a table")
        cam_id = str(raw.get("id", ""))
        if not CAMERA_ID.match(cam_id):
            raise ConfigError(f"{where}: id {cam_id!r} must match {CAMERA_ID.pattern}")
        if cam_id in seen:
            raise ConfigError(f"{where}: duplicate id {cam_id!r}")
        seen.add(cam_id)
        credential = _credential(raw, cam_id, base, env, where)
        source = raw.get("source")
        if not isinstance(source, dict) or "kind" not in source:
            raise ConfigError(f"{where} ({cam_id}): `source` must be a table with a `kind`")
        options = {k: v for k, v in source.items() if k != "kind"}
        kind = str(source["kind"])
        if kind not in KINDS:
            raise ConfigError(
                f"{where} ({cam_id}): unknown source kind {kind!r}; one of {sorted(KINDS)}"
            )
        if kind == "file" and "path" in options:
            options["path"] = str((base / str(options["path"])).expanduser())
        detect = parse_detect(raw.get("detect", {}), f"{where} ({cam_id})", base)
        try:
            record = parse_record(raw.get("record", {}))
        except ValueError as exc:
            raise ConfigError(f"{where} ({cam_id}): {exc}") from exc
        cameras.append(
            CameraConfig(
                id=cam_id,
                credential=credential,
                kind=kind,
                options=options,
                detect=detect,
                record=record,
            )
        )
    data_dir_raw = env.get("LIVECAM_EDGE_DATA_DIR") or data.get("data_dir")
    if data_dir_raw is not None and (not isinstance(data_dir_raw, str) or not data_dir_raw):
        raise ConfigError(f"{origin}: `data_dir` must be a path string")
    data_dir = (base / Path(data_dir_raw).expanduser()) if data_dir_raw else default_data_dir(env)
    upload_kbps = data.get("upload_kbps", 0)
    if isinstance(upload_kbps, bool) or not isinstance(upload_kbps, int | float):
        raise ConfigError(f"{origin}: `upload_kbps` must be a number (kbit/s; 0 = no limit)")
    if not 0 <= upload_kbps <= 10_000_000:
        raise ConfigError(f"{origin}: `upload_kbps` must be 0..10000000, got {upload_kbps}")
    chunk_kb = data.get("upload_chunk_kb", 1024)
    if isinstance(chunk_kb, bool) or not isinstance(chunk_kb, int) or not 16 <= chunk_kb <= 16384:
        raise ConfigError(f"{origin}: `upload_chunk_kb` must be an integer 16..16384")
    publisher = str(env.get("LIVECAM_EDGE_PUBLISHER") or data.get("publisher", "auto"))
    if publisher not in PUBLISHERS:
        raise ConfigError(
            f"{origin}: `publisher` must be one of {', '.join(PUBLISHERS)}, got {publisher!r}"
        )
    return EdgeConfig(
        server=server.rstrip("/"),
        cameras=tuple(cameras),
        data_dir=data_dir,
        heartbeat_interval_s=float(data.get("heartbeat_interval_s", 5.0)),
        stall_timeout_s=float(data.get("stall_timeout_s", 15.0)),
        log_level=str(env.get("LIVECAM_LOG_LEVEL") or data.get("log_level", "info")),
        upload_kbps=float(upload_kbps),
        upload_chunk_kb=chunk_kb,
        publisher=publisher,
    )


def _credential(
    raw: Mapping[str, Any], cam_id: str, base: Path, env: Mapping[str, str], where: str
) -> str:
    from_env = env.get(credential_env_name(cam_id))
    if from_env:
        return from_env.strip()
    if "credential" in raw:
        return str(raw["credential"]).strip()
    if "credential_file" in raw:
        cred_path = base / str(raw["credential_file"])
        try:
            return cred_path.read_text().strip()
        except OSError as exc:
            raise ConfigError(
                f"{where} ({cam_id}): cannot read credential_file {cred_path}: {exc}"
            ) from exc
    raise ConfigError(
        f"{where} ({cam_id}): no credential; set credential_file, credential or "
        f"{credential_env_name(cam_id)}"
    )


#: ``[camera.detect]`` keys: (type, minimum, maximum) for numbers.
_DETECT_NUMBERS: dict[str, tuple[type, float, float]] = {
    "fps": (float, 0.2, 30.0),
    "width": (int, 64, 1920),
    "interval_s": (float, 0.1, 60.0),
    "motion_threshold": (int, 1, 255),
    "motion_min_area": (float, 0.0001, 0.5),
    "motion_quiet_s": (float, 0.5, 600.0),
    "end_after_s": (float, 0.5, 3600.0),
    "update_interval_s": (float, 0.1, 3600.0),
    "stationary_s": (float, 1.0, 86400.0),
}
_DETECT_KEYS = {
    *_DETECT_NUMBERS,
    "enabled",
    "kinds",
    "thresholds",
    "motion_events",
    "require_motion",
    "model",
}


def _detect_number(raw: Mapping[str, Any], key: str, where: str) -> float | None:
    if key not in raw:
        return None
    kind, low, high = _DETECT_NUMBERS[key]
    value = raw[key]
    ok = isinstance(value, int) if kind is int else isinstance(value, int | float)
    if isinstance(value, bool) or not ok or not low <= value <= high:
        type_name = "an integer" if kind is int else "a number"
        raise ConfigError(
            f"{where}: detect.{key} must be {type_name} in {low:g}..{high:g}, got {value!r}"
        )
    return float(value)


def _detect_bool(raw: Mapping[str, Any], key: str, where: str, default: bool) -> bool:
    value = raw.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{where}: detect.{key} must be true or false, got {value!r}")
    return value


def parse_detect(raw: Any, where: str, base: Path) -> DetectSettings:
    """Validate a camera's ``detect`` table; ConfigError names the key."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: `detect` must be a table")
    unknown = sorted(set(raw) - _DETECT_KEYS)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key detect.{unknown[0]}; known: {sorted(_DETECT_KEYS)}"
        )
    defaults = DetectSettings()
    numbers = {key: _detect_number(raw, key, where) for key in _DETECT_NUMBERS}

    def number(key: str, default: float) -> float:
        value = numbers[key]
        return default if value is None else value

    thresholds = dict(defaults.tracker.thresholds)
    thresholds_raw = raw.get("thresholds", {})
    if not isinstance(thresholds_raw, dict):
        raise ConfigError(f"{where}: detect.thresholds must be a table of kind = score")
    for kind, value in thresholds_raw.items():
        if kind not in DETECTION_KINDS:
            raise ConfigError(
                f"{where}: detect.thresholds.{kind}: unknown kind; one of {list(DETECTION_KINDS)}"
            )
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            raise ConfigError(f"{where}: detect.thresholds.{kind} must be 0..1, got {value!r}")
        thresholds[kind] = float(value)
    kinds_raw = raw.get("kinds", sorted(defaults.tracker.kinds))
    if not isinstance(kinds_raw, list) or not all(k in DETECTION_KINDS for k in kinds_raw):
        raise ConfigError(
            f"{where}: detect.kinds must be a list of {list(DETECTION_KINDS)}, got {kinds_raw!r}"
        )
    model = raw.get("model")
    if model is not None and (not isinstance(model, str) or not model):
        raise ConfigError(f"{where}: detect.model must be a path string")
    motion_defaults = defaults.motion
    try:
        motion = MotionSettings(
            threshold=int(number("motion_threshold", motion_defaults.threshold)),
            min_area=number("motion_min_area", motion_defaults.min_area),
            quiet_s=number("motion_quiet_s", motion_defaults.quiet_s),
        )
        tracker = TrackerSettings(
            thresholds=thresholds,
            kinds=frozenset(kinds_raw),
            end_after_s=number("end_after_s", defaults.tracker.end_after_s),
            update_interval_s=number("update_interval_s", defaults.tracker.update_interval_s),
            stationary_s=number("stationary_s", defaults.tracker.stationary_s),
            motion_events=_detect_bool(raw, "motion_events", where, True),
            require_motion=_detect_bool(raw, "require_motion", where, True),
        )
    except ValueError as exc:
        raise ConfigError(f"{where}: detect: {exc}") from exc
    return DetectSettings(
        enabled=_detect_bool(raw, "enabled", where, True),
        fps=number("fps", defaults.fps),
        width=int(number("width", defaults.width)),
        interval_s=number("interval_s", defaults.interval_s),
        motion=motion,
        tracker=tracker,
        model=None if model is None else str(base / Path(model).expanduser()),
    )

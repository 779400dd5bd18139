"""Edge configuration: a TOML file, with the environment for secrets and the server URL.

    server = "https://cams.example.com"
    heartbeat_interval_s = 5

    [[camera]]
    id = "front-door"
    credential_file = "front-door.credential"   # relative to this file; or credential = "lce_…"
    source = { kind = "picamera2", width = 1920, height = 1080, fps = 30 }

Environment: LIVECAM_SERVER overrides ``server``; LIVECAM_EDGE_CREDENTIAL_<ID> (id upper-
cased, "-" → "_") overrides a camera's credential.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.sources import KINDS

CAMERA_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")


class ConfigError(ValueError):
    """The configuration cannot be used; the message names the file and the key."""


@dataclass(frozen=True, slots=True)
class CameraConfig:
    """One camera served by this edge."""

    id: str
    credential: str
    kind: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EdgeConfig:
    """The whole edge process."""

    server: str
    cameras: tuple[CameraConfig, ...]
    heartbeat_interval_s: float = 5.0
    stall_timeout_s: float = 15.0
    log_level: str = "info"


def credential_env_name(camera_id: str) -> str:
    """The environment variable that may hold a camera's credential."""
    return "LIVECAM_EDGE_CREDENTIAL_" + camera_id.upper().replace("-", "_")


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
        cameras.append(CameraConfig(id=cam_id, credential=credential, kind=kind, options=options))
    return EdgeConfig(
        server=server.rstrip("/"),
        cameras=tuple(cameras),
        heartbeat_interval_s=float(data.get("heartbeat_interval_s", 5.0)),
        stall_timeout_s=float(data.get("stall_timeout_s", 15.0)),
        log_level=str(env.get("LIVECAM_LOG_LEVEL") or data.get("log_level", "info")),
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

"""docker-compose.yml, Dockerfile and webrtc/livekit-production.yaml agree with each other
and with the code (Docker does not run here: these checks are what can fail offline)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.main import create_app
from app.settings import Settings

REPO = Path(__file__).resolve().parents[2]
COMPOSE: dict[str, Any] = yaml.safe_load((REPO / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
DOCKERFILE = (REPO / "Dockerfile").read_text()
LIVEKIT: dict[str, Any] = yaml.safe_load((REPO / "webrtc/livekit-production.yaml").read_text())


def _settings_env_names() -> set[str]:
    return {
        str(field.validation_alias)
        for field in Settings.model_fields.values()
        if field.validation_alias is not None
    }


def test_the_services_issue_6_asks_for() -> None:
    assert {"livekit", "redis", "api", "nginx", "ingress"} <= set(SERVICES)
    assert SERVICES["ingress"]["profiles"] == ["ingress"]
    assert SERVICES["api"]["build"] == "."


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_service_is_pinned_checked_and_restarted(name: str) -> None:
    service = SERVICES[name]
    assert "healthcheck" in service
    assert service["healthcheck"]["test"]
    assert service["restart"] == "unless-stopped"
    image = service["image"]
    tag = image.rsplit(":", 1)[1] if ":" in image else ""
    assert re.search(r"\d", tag) or image.endswith(":local"), f"{name}: pin {image!r}"


def test_named_volumes_are_declared() -> None:
    used = {
        volume.split(":", 1)[0]
        for service in SERVICES.values()
        for volume in service.get("volumes", [])
        if not volume.startswith(("/", "."))
    }
    assert used
    assert used <= set(COMPOSE["volumes"])


def test_bind_mounts_exist() -> None:
    for service in SERVICES.values():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (REPO / source).is_file(), source


def test_api_environment_names_are_real_settings() -> None:
    env = SERVICES["api"]["environment"]
    unknown = set(env) - _settings_env_names()
    assert unknown == set(), f"not read by app/settings.py: {sorted(unknown)}"
    assert env["LIVECAM_HOST"] == "127.0.0.1"
    assert env["LIVEKIT_API_KEY"] == "livecam"


def test_livekit_key_name_matches_everywhere() -> None:
    keys = SERVICES["livekit"]["environment"]["LIVEKIT_KEYS"]
    assert keys.startswith("livecam: ")
    assert LIVEKIT["webhook"]["api_key"] == "livecam"
    ingress = yaml.safe_load(SERVICES["ingress"]["environment"]["INGRESS_CONFIG_BODY"])
    assert ingress["api_key"] == "livecam"
    assert ingress["ws_url"] == f"ws://127.0.0.1:{LIVEKIT['port']}"


def test_ports_agree_with_nginx_and_the_api() -> None:
    nginx = (REPO / "nginx/livecam.conf").read_text()
    assert f"server 127.0.0.1:{LIVEKIT['port']};" in nginx
    assert "server 127.0.0.1:8000;" in nginx
    assert SERVICES["api"]["environment"]["LIVECAM_PORT"] == "8000"
    assert LIVEKIT["webhook"]["urls"] == ["http://127.0.0.1:8000/api/livekit/webhook"]
    assert LIVEKIT["bind_addresses"] == ["127.0.0.1"]


def test_dockerfile_runs_unprivileged_and_checks_health(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LIVECAM_DATA", str(tmp_path))
    monkeypatch.setenv("LIVEKIT_API_KEY", "livecam")
    monkeypatch.setenv("LIVEKIT_API_SECRET", "s" * 32)
    lines = [line.strip() for line in DOCKERFILE.splitlines()]
    users = [line.split()[1] for line in lines if line.startswith("USER ")]
    assert users
    assert users[-1] not in {"root", "0"}
    cmd_at = max(i for i, line in enumerate(lines) if line.startswith("CMD "))
    user_at = max(i for i, line in enumerate(lines) if line.startswith("USER "))
    assert user_at < cmd_at
    assert 'CMD ["python", "-m", "app"]' in lines
    health = DOCKERFILE[DOCKERFILE.index("HEALTHCHECK") :]
    path = re.search(r"http://127\.0\.0\.1:8000(/[\w/]+)", health)
    assert path is not None
    assert path.group(1) in create_app(Settings()).openapi()["paths"]


def test_dockerfile_copies_only_what_exists_and_is_not_ignored() -> None:
    ignore = (REPO / ".dockerignore").read_text().splitlines()
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    for line in DOCKERFILE.splitlines():
        if not line.startswith("COPY ") or "--from=" in line:
            continue
        for source in line.split()[1:-1]:
            assert (REPO / source).exists(), source
            path = Path(source.rstrip("/"))
            included = {path.as_posix()} | {p.as_posix() for p in path.parents}
            assert included & allowed, f"{source} is excluded by .dockerignore"


def test_api_replicas_share_database_redis_and_data() -> None:
    """Every API replica: one PostgreSQL, one Redis (the one LiveKit uses, another db
    number), one data volume; settings that app/settings.py accepts; own port, listed
    (commented) in nginx's upstreams."""
    replicas = [s for s in SERVICES.values() if s.get("image") == "livecam-api:local"]
    assert len(replicas) == 2
    envs = [r["environment"] for r in replicas]
    for env in envs:
        Settings(
            _env_file=None,  # type: ignore[call-arg]
            DATABASE_URL=env["DATABASE_URL"].replace("${POSTGRES_PASSWORD:?", "x${"),
            LIVECAM_REDIS_URL=env["LIVECAM_REDIS_URL"],
            LIVEKIT_API_KEY=env["LIVEKIT_API_KEY"],
            LIVEKIT_API_SECRET="s" * 32,
        )
    for name in ("DATABASE_URL", "LIVECAM_REDIS_URL", "LIVECAM_DATA", "LIVEKIT_PUBLIC_URL"):
        assert len({env[name] for env in envs}) == 1, name
    assert len({env["LIVECAM_PORT"] for env in envs}) == 2
    assert len({tuple(r["volumes"]) for r in replicas}) == 1
    assert envs[0]["DATABASE_URL"].startswith("postgresql+psycopg://livecam:")
    assert "@127.0.0.1:5432/livecam" in envs[0]["DATABASE_URL"]
    pg = SERVICES["postgres"]
    assert pg["environment"]["POSTGRES_USER"] == "livecam"
    assert pg["environment"]["POSTGRES_DB"] == "livecam"
    redis_port = SERVICES["redis"]["command"][SERVICES["redis"]["command"].index("--port") + 1]
    assert envs[0]["LIVECAM_REDIS_URL"].startswith(f"redis://127.0.0.1:{redis_port}/")
    assert SERVICES["livekit"]["command"][-1] == f"127.0.0.1:{redis_port}"
    nginx = (REPO / "nginx/livecam.conf").read_text()
    second = envs[1]["LIVECAM_PORT"]
    assert f"# server 127.0.0.1:{second};" in nginx
    assert f"# server 127.0.0.1:{second} backup;" in nginx


def test_both_livekit_configs_ask_viewers_for_zero_playout_delay() -> None:
    # bench/peers: the playout-delay extension (0/0) is what brings livecam's glass-to-glass
    # latency to go2rtc's; the dev config (tests, demo, benchmarks) must match production.
    dev = yaml.safe_load((REPO / "webrtc/livekit-dev.yaml").read_text().replace("${", "x{"))
    for config in (LIVEKIT, dev):
        assert config["room"]["playout_delay"] == {"enabled": True, "min": 0, "max": 0}

"""app/settings.py: environment names, defaults, and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.settings import ConfigError, load_settings

SECRET = "s" * 32
ENV_NAMES = [
    "LIVECAM_DATA",
    "DATABASE_URL",
    "LIVEKIT_URL",
    "LIVEKIT_PUBLIC_URL",
    "LIVEKIT_API_KEY",
    "LIVEKIT_API_SECRET",
    "LIVECAM_HOST",
    "LIVECAM_PORT",
    "LIVECAM_LOG_LEVEL",
    "LIVECAM_VIEWER_TOKEN_TTL",
    "LIVECAM_EDGE_TOKEN_TTL",
    "LIVECAM_HEARTBEAT_TIMEOUT",
    "LIVECAM_ENROLLMENT_TTL",
]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def test_missing_livekit_keys_names_both(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings()
    assert "LIVEKIT_API_KEY and LIVEKIT_API_SECRET must be set" in str(raised.value)
    monkeypatch.setenv("LIVEKIT_API_KEY", "devkey")
    with pytest.raises(ConfigError, match="LIVEKIT_API_SECRET must be set"):
        load_settings()


def test_short_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIVEKIT_API_KEY", "devkey")
    monkeypatch.setenv("LIVEKIT_API_SECRET", "s" * 31)
    with pytest.raises(ConfigError, match="at least 32 characters"):
        load_settings()


def test_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LIVEKIT_API_KEY", "devkey")
    monkeypatch.setenv("LIVEKIT_API_SECRET", SECRET)
    settings = load_settings()
    assert settings.data_dir == tmp_path.resolve() / "data"
    assert settings.database_url == f"sqlite:///{tmp_path.resolve() / 'data' / 'livecam.db'}"
    assert settings.livekit_url == "ws://127.0.0.1:7880"
    assert settings.livekit_public_url == "ws://127.0.0.1:7880"
    assert (settings.host, settings.port, settings.log_level) == ("127.0.0.1", 8080, "info")
    assert settings.viewer_token_ttl == 600
    assert settings.edge_token_ttl == 21600
    assert settings.heartbeat_timeout == 30
    assert settings.enrollment_ttl == 86400
    assert SECRET not in repr(settings)
    assert not settings.data_dir.exists()
    settings.ensure_data_dir()
    assert settings.data_dir.is_dir()


def test_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    values = {
        "LIVECAM_DATA": str(tmp_path / "elsewhere"),
        "DATABASE_URL": "postgresql+psycopg://livecam:pw@db/livecam",
        "LIVEKIT_URL": "ws://livekit:7880",
        "LIVEKIT_PUBLIC_URL": "wss://cams.example.com",
        "LIVEKIT_API_KEY": "prodkey",
        "LIVEKIT_API_SECRET": SECRET,
        "LIVECAM_HOST": "192.0.2.10",
        "LIVECAM_PORT": "9000",
        "LIVECAM_LOG_LEVEL": "DEBUG",
        "LIVECAM_VIEWER_TOKEN_TTL": "60",
        "LIVECAM_EDGE_TOKEN_TTL": "120",
        "LIVECAM_HEARTBEAT_TIMEOUT": "12.5",
        "LIVECAM_ENROLLMENT_TTL": "300",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert settings.data_dir == tmp_path / "elsewhere"
    assert settings.database_url == values["DATABASE_URL"]
    assert settings.livekit_url == "ws://livekit:7880"
    assert settings.livekit_public_url == "wss://cams.example.com"
    assert settings.livekit_api_key == "prodkey"
    assert settings.livekit_api_secret.get_secret_value() == SECRET
    assert (settings.host, settings.port, settings.log_level) == ("192.0.2.10", 9000, "debug")
    assert (settings.viewer_token_ttl, settings.edge_token_ttl) == (60, 120)
    assert (settings.heartbeat_timeout, settings.enrollment_ttl) == (12.5, 300)


def test_dotenv_file(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        f"LIVEKIT_API_KEY=fromfile\nLIVEKIT_API_SECRET={SECRET}\nLIVECAM_PORT=8181\n"
    )
    settings = load_settings()
    assert settings.livekit_api_key == "fromfile"
    assert settings.port == 8181


def test_environment_beats_dotenv(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(f"LIVEKIT_API_KEY=fromfile\nLIVEKIT_API_SECRET={SECRET}\n")
    monkeypatch.setenv("LIVEKIT_API_KEY", "fromenv")
    assert load_settings().livekit_api_key == "fromenv"


@pytest.mark.parametrize(
    ("name", "value"),
    [("LIVECAM_PORT", "eighty"), ("LIVECAM_LOG_LEVEL", "loud"), ("LIVECAM_VIEWER_TOKEN_TTL", "0")],
)
def test_invalid_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv("LIVEKIT_API_KEY", "devkey")
    monkeypatch.setenv("LIVEKIT_API_SECRET", SECRET)
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=name):
        load_settings()

"""Server settings, read from the environment and a `.env` file in the working directory."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

LogLevel = Literal["debug", "info", "warning", "error", "critical"]

# LiveKit rejects HS256 secrets shorter than this.
MIN_SECRET_LENGTH = 32


class ConfigError(Exception):
    """The settings are missing or invalid; the message says which and how to fix it."""


class Settings(BaseSettings):
    """Every setting has an environment variable; see the aliases below."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        validate_by_name=True,
        validate_by_alias=True,
    )

    data_dir: Path = Field(default=Path("data"), validation_alias="LIVECAM_DATA")
    database_url: str = Field(default="", validation_alias="DATABASE_URL")
    # Several API replicas: their Redis (app/cluster.py). Empty: one process, no Redis.
    redis_url: str = Field(default="", validation_alias="LIVECAM_REDIS_URL")

    livekit_url: str = Field(default="ws://127.0.0.1:7880", validation_alias="LIVEKIT_URL")
    livekit_public_url: str = Field(default="", validation_alias="LIVEKIT_PUBLIC_URL")
    livekit_api_key: str = Field(default="", validation_alias="LIVEKIT_API_KEY")
    livekit_api_secret: SecretStr = Field(
        default=SecretStr(""), validation_alias="LIVEKIT_API_SECRET"
    )

    host: str = Field(default="127.0.0.1", validation_alias="LIVECAM_HOST")
    port: int = Field(default=8080, ge=0, le=65535, validation_alias="LIVECAM_PORT")
    log_level: LogLevel = Field(default="info", validation_alias="LIVECAM_LOG_LEVEL")

    viewer_token_ttl: int = Field(default=600, ge=1, validation_alias="LIVECAM_VIEWER_TOKEN_TTL")
    edge_token_ttl: int = Field(default=21600, ge=1, validation_alias="LIVECAM_EDGE_TOKEN_TTL")
    heartbeat_timeout: float = Field(
        default=30.0, gt=0, validation_alias="LIVECAM_HEARTBEAT_TIMEOUT"
    )
    enrollment_ttl: int = Field(default=86400, ge=1, validation_alias="LIVECAM_ENROLLMENT_TTL")
    mjpeg_fps: float = Field(default=5.0, gt=0, le=30, validation_alias="LIVECAM_MJPEG_FPS")
    mjpeg_max_width: int = Field(
        default=640, ge=64, le=3840, validation_alias="LIVECAM_MJPEG_MAX_WIDTH"
    )

    # Events (app/events.py): retention, snapshot size, the SSE keepalive.
    event_retention_days: int = Field(
        default=30, ge=1, le=3650, validation_alias="LIVECAM_EVENT_RETENTION_DAYS"
    )
    event_prune_interval: float = Field(
        default=3600.0, gt=0, validation_alias="LIVECAM_EVENT_PRUNE_INTERVAL"
    )
    event_snapshot_max_bytes: int = Field(
        default=2 * 1024 * 1024,
        ge=1024,
        le=16 * 1024 * 1024,
        validation_alias="LIVECAM_EVENT_SNAPSHOT_MAX_BYTES",
    )
    event_stream_keepalive: float = Field(
        default=15.0, gt=0, le=300, validation_alias="LIVECAM_EVENT_STREAM_KEEPALIVE"
    )

    # Clips (app/uploads.py, app/clips.py, app/media_store.py): upload limit, retention,
    # and where media lives ($LIVECAM_DATA/media, or S3 when LIVECAM_S3_BUCKET is set).
    clip_max_bytes: int = Field(
        default=4 * 1024**3, ge=1024, validation_alias="LIVECAM_CLIP_MAX_BYTES"
    )
    clip_retention_days: int = Field(
        default=30, ge=1, le=3650, validation_alias="LIVECAM_CLIP_RETENTION_DAYS"
    )
    media_max_gb: float = Field(
        default=0.0, ge=0, description="0: no budget", validation_alias="LIVECAM_MEDIA_MAX_GB"
    )
    upload_stale_hours: float = Field(
        default=48.0, gt=0, validation_alias="LIVECAM_UPLOAD_STALE_HOURS"
    )
    s3_bucket: str = Field(default="", validation_alias="LIVECAM_S3_BUCKET")
    s3_prefix: str = Field(default="", validation_alias="LIVECAM_S3_PREFIX")
    s3_endpoint_url: str = Field(default="", validation_alias="LIVECAM_S3_ENDPOINT_URL")
    s3_region: str = Field(default="", validation_alias="LIVECAM_S3_REGION")
    s3_access_key_id: str = Field(default="", validation_alias="LIVECAM_S3_ACCESS_KEY_ID")
    s3_secret_access_key: SecretStr = Field(
        default=SecretStr(""), validation_alias="LIVECAM_S3_SECRET_ACCESS_KEY"
    )

    # Web Push (app/push.py). The subject tells push services whom to contact.
    vapid_subject: str = Field(
        default="mailto:admin@localhost", validation_alias="LIVECAM_VAPID_SUBJECT"
    )
    push_allow_insecure: bool = Field(default=False, validation_alias="LIVECAM_PUSH_ALLOW_INSECURE")
    push_ttl: int = Field(default=3600, ge=0, le=86400 * 28, validation_alias="LIVECAM_PUSH_TTL")
    push_min_interval: float = Field(
        default=60.0, ge=0, validation_alias="LIVECAM_PUSH_MIN_INTERVAL"
    )
    push_max_per_hour: int = Field(default=30, ge=1, validation_alias="LIVECAM_PUSH_MAX_PER_HOUR")
    push_concurrency: int = Field(
        default=8, ge=1, le=256, validation_alias="LIVECAM_PUSH_CONCURRENCY"
    )
    push_timeout: float = Field(default=10.0, gt=0, le=120, validation_alias="LIVECAM_PUSH_TIMEOUT")
    push_retries: int = Field(default=3, ge=0, le=10, validation_alias="LIVECAM_PUSH_RETRIES")
    push_retry_delay: float = Field(
        default=2.0, ge=0, le=300, validation_alias="LIVECAM_PUSH_RETRY_DELAY"
    )
    push_max_event_age: float = Field(
        default=900.0, gt=0, validation_alias="LIVECAM_PUSH_MAX_EVENT_AGE"
    )

    # Largest request body outside the edge's media uploads (app/auth/body_limit.py).
    max_body_kb: int = Field(default=1024, ge=16, le=65536, validation_alias="LIVECAM_MAX_BODY_KB")

    # Sign-in (app/auth): sessions, cookies, login throttling.
    session_ttl: int = Field(
        default=7 * 86400, ge=60, le=90 * 86400, validation_alias="LIVECAM_SESSION_TTL"
    )
    # Plain-http development only: the session cookie without the Secure flag.
    insecure_cookies: bool = Field(default=False, validation_alias="LIVECAM_INSECURE_COOKIES")
    login_max_failures: int = Field(
        default=5, ge=1, le=100, validation_alias="LIVECAM_LOGIN_MAX_FAILURES"
    )
    login_lockout_minutes: float = Field(
        default=15.0, gt=0, le=1440, validation_alias="LIVECAM_LOGIN_LOCKOUT_MINUTES"
    )

    # Cloudflare Access (app/auth/cloudflare_access.py): on when both the team domain and
    # the application AUD are set. The certs URL defaults to the team's JWKS.
    cf_access_team_domain: str = Field(default="", validation_alias="LIVECAM_CF_ACCESS_TEAM_DOMAIN")
    cf_access_aud: str = Field(default="", validation_alias="LIVECAM_CF_ACCESS_AUD")
    cf_access_certs_url: str = Field(default="", validation_alias="LIVECAM_CF_ACCESS_CERTS_URL")
    cf_access_auto_create: bool = Field(
        default=False, validation_alias="LIVECAM_CF_ACCESS_AUTO_CREATE"
    )

    @model_validator(mode="before")
    @classmethod
    def _lower_log_level(cls, data: object) -> object:
        if isinstance(data, dict):
            for key in ("LIVECAM_LOG_LEVEL", "log_level"):
                if isinstance(data.get(key), str):
                    data[key] = data[key].strip().lower()
        return data

    @model_validator(mode="after")
    def _complete(self) -> Settings:
        missing = [
            name
            for name, value in (
                ("LIVEKIT_API_KEY", self.livekit_api_key),
                ("LIVEKIT_API_SECRET", self.livekit_api_secret.get_secret_value()),
            )
            if not value
        ]
        if missing:
            raise ValueError(
                f"{' and '.join(missing)} must be set, in the environment or in .env "
                "(LIVEKIT_API_KEY and LIVEKIT_API_SECRET are the API key pair that "
                "livekit-server is configured with)"
            )
        if len(self.livekit_api_secret.get_secret_value()) < MIN_SECRET_LENGTH:
            raise ValueError(
                f"LIVEKIT_API_SECRET must be at least {MIN_SECRET_LENGTH} characters long "
                "(LiveKit requires it)"
            )
        if bool(self.s3_access_key_id) != bool(self.s3_secret_access_key.get_secret_value()):
            raise ValueError(
                "LIVECAM_S3_ACCESS_KEY_ID and LIVECAM_S3_SECRET_ACCESS_KEY go together: set "
                "both, or neither to use boto3's usual credential chain"
            )
        if self.redis_url and not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(
                "LIVECAM_REDIS_URL must be a redis://, rediss:// or unix:// URL, "
                "e.g. redis://127.0.0.1:6379/0"
            )
        self.vapid_subject = check_vapid_subject(self.vapid_subject)
        self.data_dir = self.data_dir.expanduser().resolve()
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'livecam.db'}"
        if not self.livekit_public_url:
            self.livekit_public_url = self.livekit_url
        return self

    def ensure_data_dir(self) -> Path:
        """Creates LIVECAM_DATA if it is missing and returns it."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return self.data_dir


# What push services (and pywebpush's signer) accept: a mail address or an https origin
# on a dotted host name (or localhost), nothing more.
_HOST = r"(localhost|[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+)"
_MAILTO = re.compile(rf"^mailto:[^@\s/:]+@{_HOST}$", re.IGNORECASE)
_HTTPS = re.compile(rf"^https://{_HOST}$", re.IGNORECASE)


def check_vapid_subject(value: str) -> str:
    """The VAPID subject (``mailto:you@example.org`` or ``https://example.org``), stripped;
    raises ValueError otherwise (push services refuse anything else)."""
    subject = value.strip()
    if not (_MAILTO.match(subject) or _HTTPS.match(subject)):
        raise ValueError(
            "LIVECAM_VAPID_SUBJECT must be a mailto: address or an https:// origin (no path) "
            f"where push services can reach the operator, e.g. mailto:admin@example.org; "
            f"got {value!r}"
        )
    return subject


def load_settings() -> Settings:
    """Reads the settings from the environment and `.env`; raises ConfigError when invalid."""
    try:
        return Settings()
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc)) from None


def describe_validation_error(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        name = ".".join(str(part) for part in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        lines.append(f"{name}: {message}" if name else message)
    return "invalid configuration: " + "; ".join(lines)

"""`python -m app`: configure, migrate, make sure an admin key exists, serve."""

from __future__ import annotations

import logging
import sys

import uvicorn
from fastapi import FastAPI

from app import __version__
from app.admin_keys import ADMIN_KEY_FILE, banner, bootstrap_admin_key
from app.clock import utc_now
from app.db import make_engine, make_session_factory, startup_lock
from app.logs import configure_logging
from app.main import create_app
from app.migrations import upgrade
from app.settings import ConfigError, Settings, load_settings

log = logging.getLogger("app")

GRACEFUL_SHUTDOWN_S = 3


def prepare(settings: Settings) -> tuple[str | None, FastAPI]:
    """Migrates, makes sure an admin key exists and builds the app (which creates the
    server's secrets in the data directory). Replicas starting together on one
    PostgreSQL take turns (app.db.startup_lock); returns the new admin key, if made."""
    engine = make_engine(settings.database_url)
    try:
        with startup_lock(engine):
            upgrade(engine)
            with make_session_factory(engine)() as session:
                key = bootstrap_admin_key(session, settings.data_dir, utc_now())
            app = create_app(settings)
    finally:
        engine.dispose()
    return key, app


def main() -> int:
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"livecam: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    data_dir = settings.ensure_data_dir()
    log.info(
        "starting livecam",
        extra={"version": __version__, "data": str(data_dir), "livekit": settings.livekit_url},
    )

    key, app = prepare(settings)
    if key is not None:
        print(banner(key, settings.data_dir / ADMIN_KEY_FILE), flush=True)

    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        log_level=settings.log_level,
        # MJPEG streams never end on their own: on shutdown, give requests this long
        # to finish, then cut what is left (edges' websockets are closed at once).
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

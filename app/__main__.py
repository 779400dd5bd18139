"""`python -m app`: configure, migrate, make sure an admin key exists, serve."""

from __future__ import annotations

import logging
import sys

import uvicorn

from app import __version__
from app.admin_keys import ADMIN_KEY_FILE, banner, bootstrap_admin_key
from app.clock import utc_now
from app.db import make_engine, make_session_factory
from app.logs import configure_logging
from app.main import create_app
from app.migrations import upgrade
from app.settings import ConfigError, load_settings

log = logging.getLogger("app")

GRACEFUL_SHUTDOWN_S = 3


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

    engine = make_engine(settings.database_url)
    try:
        upgrade(engine)
        with make_session_factory(engine)() as session:
            key = bootstrap_admin_key(session, data_dir, utc_now())
    finally:
        engine.dispose()
    if key is not None:
        print(banner(key, data_dir / ADMIN_KEY_FILE), flush=True)

    uvicorn.run(
        create_app(settings),
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

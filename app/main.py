"""The FastAPI application."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import FastAPI

from app import __version__
from app.api import auth as auth_api
from app.api import cameras, dashboard, edge, health, media, push, uploads, webhook
from app.api import events as events_api
from app.api import install as install_api
from app.api import users as users_api
from app.api import zones as zones_api
from app.auth.body_limit import BodyLimitMiddleware
from app.auth.headers import SecurityHeadersMiddleware, dashboard_csp
from app.clip_retention import ClipRetention
from app.clock import utc_now
from app.cluster import ClusterLink
from app.db import make_engine, make_session_factory
from app.errors import install_error_handlers
from app.event_relay import RoomEventRelay
from app.event_snapshots import EventSnapshotStore
from app.eventbus import EventBus
from app.events import EventIngest, EventPruner
from app.media import LocalMediaRelay
from app.media_store import MediaStore, MediaStoreError, make_media_store
from app.push import PushConfig, PushDispatcher, start_push
from app.push_vapid import load_vapid_key
from app.rooms import LiveKitProbe, LiveKitRoomData, LiveKitRooms
from app.schemas import ErrorResponse
from app.settings import Settings, load_settings
from app.tickets import TicketSigner, load_server_secret
from app.uploads import UploadManager
from app.zones import ZonesNotifier

log = logging.getLogger(__name__)

DESCRIPTION = """\
Identity, tokens, cameras, enrollment and health for livecam.

Admin endpoints take `Authorization: Bearer <admin key>`; edge endpoints take
`Authorization: Bearer <edge credential>`. Every error is
`{"error": {"code": "...", "message": "..."}}`.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    """Builds the app. The database must already be migrated (`python -m app` does it).

    Swappable parts live on `app.state`: `clock` (returns aware UTC datetimes),
    `rooms` (LiveKit RoomService), `livekit_probe`, `media` (the MJPEG relay),
    `tickets` (MJPEG ticket signer), `event_bus`, `room_data` (LiveKit data messages
    for the event overlay), `zones_notifier`, `media_store` (clips: a local directory or
    S3) and `uploads` (clip uploads; built at startup from `media_store`).
    """
    settings = settings or load_settings()
    settings.ensure_data_dir()
    engine = make_engine(settings.database_url)
    media_relay = LocalMediaRelay(
        settings.data_dir / "snapshots", fps=settings.mjpeg_fps, max_width=settings.mjpeg_max_width
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # Read from app.state here, not earlier: tests swap parts before startup.
        store: MediaStore = _app.state.media_store
        try:
            await asyncio.to_thread(store.check)
        except MediaStoreError as exc:
            # Startup fails; this line says why (uvicorn's traceback follows).
            log.error("media storage is not usable: %s", exc, extra={"store": store.kind})
            raise
        log.info("media storage", extra={"store": store.kind, "where": store.describe()})
        upload_manager = UploadManager(
            settings.data_dir / "uploads",
            store,
            _app.state.session_factory,
            _app.state.event_ingest,
            lambda: _app.state.clock(),
            max_bytes=settings.clip_max_bytes,
            stale_after=timedelta(hours=settings.upload_stale_hours),
        )
        await upload_manager.load()
        _app.state.uploads = upload_manager
        _app.state.clip_retention = ClipRetention(
            _app.state.session_factory,
            store,
            _app.state.event_ingest,
            upload_manager,
            lambda: _app.state.clock(),
            retention_days=settings.clip_retention_days,
            event_retention_days=settings.event_retention_days,
            max_bytes=int(settings.media_max_gb * 1e9),
        )
        relay = RoomEventRelay(_app.state.room_data)
        relay.start(_app.state.event_bus)
        _app.state.event_relay = relay
        pruner = EventPruner(
            _app.state.session_factory,
            _app.state.event_snapshots,
            lambda: _app.state.clock(),
            settings.event_retention_days,
            settings.event_prune_interval,
            before=[lambda: _app.state.clip_retention.run_once()],
        )
        pruner.start()
        _app.state.event_pruner = pruner
        start_push(_app)
        cluster: ClusterLink | None = None
        if settings.redis_url:
            cluster = ClusterLink(
                settings.redis_url, _app.state.event_bus, _app.state.zones_notifier
            )
            await cluster.start()
        _app.state.cluster = cluster
        yield
        if cluster is not None:
            await cluster.aclose()
        await _app.state.push.aclose()
        await pruner.aclose()
        await relay.aclose()
        await _app.state.media.aclose()
        engine.dispose()

    app = FastAPI(title="livecam", version=__version__, description=DESCRIPTION, lifespan=lifespan)
    app.state.settings = settings
    app.state.cluster = None  # app/cluster.py, started with the app when LIVECAM_REDIS_URL
    app.state.engine = engine
    app.state.session_factory = make_session_factory(engine)
    app.state.clock = utc_now
    app.state.rooms = LiveKitRooms(
        settings.livekit_url,
        settings.livekit_api_key,
        settings.livekit_api_secret.get_secret_value(),
    )
    app.state.livekit_probe = LiveKitProbe(timeout_s=2.0, ttl_s=5.0)
    app.state.media = media_relay
    app.state.tickets = TicketSigner(load_server_secret(settings.data_dir))
    app.state.event_bus = EventBus()
    app.state.event_snapshots = EventSnapshotStore(settings.data_dir / "events")
    app.state.event_ingest = EventIngest(
        app.state.session_factory, app.state.event_snapshots, app.state.event_bus
    )
    app.state.zones_notifier = ZonesNotifier()
    app.state.media_store = make_media_store(settings)
    # Room data for the live overlay (app/event_relay.py); tests put a fake here.
    app.state.room_data = LiveKitRoomData(
        settings.livekit_url,
        settings.livekit_api_key,
        settings.livekit_api_secret.get_secret_value(),
    )
    app.state.vapid = load_vapid_key(settings.data_dir)
    app.state.push = PushDispatcher(
        app.state.session_factory,
        app.state.vapid,
        app.state.tickets,
        PushConfig.from_settings(settings),
        clock=lambda: app.state.clock(),  # read at call time: tests swap the clock
    )

    install_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_kb * 1024)
    app.add_middleware(SecurityHeadersMiddleware, csp=dashboard_csp(settings.livekit_public_url))
    # Documents our error shape instead of FastAPI's default 422 body.
    invalid: dict[int | str, dict[str, object]] = {
        422: {"model": ErrorResponse, "description": "Invalid request"}
    }
    app.include_router(cameras.router, responses=invalid)
    app.include_router(edge.router, responses=invalid)
    app.include_router(uploads.router, responses=invalid)
    app.include_router(health.router)
    app.include_router(webhook.router, responses=invalid)
    app.include_router(dashboard.router)
    app.include_router(install_api.router)
    app.include_router(media.router, responses=invalid)
    app.include_router(push.router, responses=invalid)
    app.include_router(events_api.router, responses=invalid)
    app.include_router(zones_api.router, responses=invalid)
    app.include_router(auth_api.router, responses=invalid)
    app.include_router(users_api.router, responses=invalid)
    app.include_router(users_api.audit_router, responses=invalid)
    return app

"""Service health, for load balancers and people: database, LiveKit, camera counts."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy import select, text

from app.api.deps import ClockDep, ProbeDep, RoomsDep, SessionFactoryDep, SettingsDep
from app.cluster import ClusterLink
from app.models import Camera
from app.presence import is_online
from app.rooms import describe_error
from app.schemas import CameraCounts, ClusterHealth, DatabaseHealth, HealthOut, LiveKitHealth

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api", tags=["health"])


@router.get(
    "/health",
    response_model=HealthOut,
    summary="Health of the server, its database and LiveKit",
    description=(
        "200 while the database works (status `degraded` if LiveKit is unreachable, or "
        "with several replicas, Redis); "
        "503 when the database does not answer. No authentication."
    ),
    responses={503: {"model": HealthOut, "description": "The database is down"}},
)
async def health(
    request: Request,
    settings: SettingsDep,
    factory: SessionFactoryDep,
    clock: ClockDep,
    rooms: RoomsDep,
    probe: ProbeDep,
) -> JSONResponse:
    def check_db() -> tuple[DatabaseHealth, CameraCounts]:
        now = clock()
        try:
            with factory() as session:
                session.execute(text("SELECT 1"))
                cameras = list(session.scalars(select(Camera)))
        except Exception as exc:
            log.warning("database check failed", extra={"error": describe_error(exc)})
            return DatabaseHealth(ok=False, error=describe_error(exc)), CameraCounts(
                online=0, total=0
            )
        online = sum(1 for c in cameras if is_online(c, now, settings.heartbeat_timeout))
        return DatabaseHealth(ok=True, error=None), CameraCounts(online=online, total=len(cameras))

    db, counts = await run_in_threadpool(check_db)
    lk = await probe.check(rooms)
    link: ClusterLink | None = request.app.state.cluster
    cluster = (
        None
        if link is None
        else ClusterHealth(
            ok=link.connected, node=link.node_id, sent=link.sent, received=link.received
        )
    )
    body = HealthOut(
        status="ok" if db.ok and lk.ok and (cluster is None or cluster.ok) else "degraded",
        cluster=cluster,
        livekit=LiveKitHealth(
            ok=lk.ok, url=settings.livekit_url, latency_ms=lk.latency_ms, error=lk.error
        ),
        db=db,
        cameras=counts,
    )
    return JSONResponse(body.model_dump(mode="json"), status_code=200 if db.ok else 503)

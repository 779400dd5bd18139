"""Web Push: the server's VAPID public key and browsers' subscriptions (admin).

GET    /api/push/vapid-public-key          → {"key": base64url}   (public by nature)
POST   /api/push/subscriptions             admin → 201 created / 200 same endpoint updated
GET    /api/push/subscriptions             admin → list
GET    /api/push/subscriptions/{id}        admin
PATCH  /api/push/subscriptions/{id}        admin; only the fields sent change
DELETE /api/push/subscriptions/{id}        admin → 204
POST   /api/push/subscriptions/{id}/test   admin → sends a test notification now
GET    /api/push/stats                     admin → dispatcher counters
"""

from __future__ import annotations

import hashlib
import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.api.deps import AdminPrincipal, ClockDep, SessionDep, SessionFactoryDep, SettingsDep
from app.errors import ApiError
from app.models import Camera, PushSubscription
from app.push import PushDispatcher, new_subscription_id
from app.push_prefs import check_endpoint, endpoint_host
from app.push_schemas import (
    PushStatsOut,
    PushTestResult,
    QuietHoursOut,
    SubscriptionCreate,
    SubscriptionOut,
    SubscriptionUpdate,
    VapidPublicKey,
)
from app.push_sender import SendError
from app.push_vapid import VapidKey
from app.schemas import ErrorResponse

log = logging.getLogger(__name__)

_AUTH_ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorResponse, "description": "Missing or invalid admin key"},
}
_SUBSCRIPTION_ERRORS: dict[int | str, dict[str, object]] = {
    **_AUTH_ERRORS,
    404: {"model": ErrorResponse, "description": "No such subscription"},
}

router = APIRouter(prefix="/api/push", tags=["push"])


def get_vapid(request: Request) -> VapidKey:
    vapid: VapidKey = request.app.state.vapid
    return vapid


def get_push(request: Request) -> PushDispatcher:
    push: PushDispatcher = request.app.state.push
    return push


VapidDep = Annotated[VapidKey, Depends(get_vapid)]
PushDep = Annotated[PushDispatcher, Depends(get_push)]


def subscription_out(row: PushSubscription) -> SubscriptionOut:
    return SubscriptionOut(
        id=row.id,
        device=row.device,
        endpoint=row.endpoint,
        endpoint_host=endpoint_host(row.endpoint),
        cameras=row.cameras,
        labels=row.labels,
        quiet_hours=QuietHoursOut(**row.quiet_hours) if row.quiet_hours else None,
        tz=row.tz,
        created_at=row.created_at,
        updated_at=row.updated_at,
        last_sent_at=row.last_sent_at,
        last_error=row.last_error,
    )


def _invalid(field: str, problem: str) -> ApiError:
    return ApiError(422, "validation_error", f"Invalid request: {field}: {problem}.")


def _check_cameras(session: Session, cameras: list[str] | None) -> None:
    if cameras is None:
        return
    known = set(session.scalars(select(Camera.id).where(Camera.id.in_(cameras))))
    unknown = [c for c in cameras if c not in known]
    if unknown:
        raise ApiError(
            422,
            "unknown_camera",
            f"No camera with id {unknown[0]!r}; cameras must name existing cameras "
            "(or be null for all).",
        )


def _not_found(subscription_id: str) -> ApiError:
    return ApiError(
        404, "subscription_not_found", f"No push subscription with id {subscription_id!r}."
    )


def _get_or_404(session: Session, subscription_id: str) -> PushSubscription:
    row = session.get(PushSubscription, subscription_id)
    if row is None:
        raise _not_found(subscription_id)
    return row


@router.get(
    "/vapid-public-key",
    summary="The server's VAPID public key (PushManager.subscribe's applicationServerKey)",
)
def vapid_public_key(vapid: VapidDep) -> VapidPublicKey:
    return VapidPublicKey(key=vapid.public_key_b64)


@router.post(
    "/subscriptions",
    status_code=status.HTTP_201_CREATED,
    summary="Subscribe a browser (the same endpoint again updates it)",
    responses={
        **_AUTH_ERRORS,
        200: {"model": SubscriptionOut, "description": "The endpoint was known; updated"},
    },
)
def create_subscription(
    body: SubscriptionCreate,
    _admin: AdminPrincipal,
    session: SessionDep,
    settings: SettingsDep,
    clock: ClockDep,
    response: Response,
) -> SubscriptionOut:
    try:
        endpoint = check_endpoint(body.subscription.endpoint, settings.push_allow_insecure)
    except ValueError as exc:
        raise _invalid("subscription.endpoint", str(exc)) from None
    _check_cameras(session, body.cameras)
    now = clock()
    endpoint_hash = hashlib.sha256(endpoint.encode()).hexdigest()
    values = {
        "p256dh": body.subscription.keys.p256dh,
        "auth": body.subscription.keys.auth,
        "device": body.device,
        "cameras": body.cameras,
        "labels": list(body.labels),
        "quiet_hours": body.quiet_hours.model_dump() if body.quiet_hours else None,
        "tz": body.tz,
        "updated_at": now,
    }
    for _ in range(2):  # a concurrent POST of the same endpoint wins the insert: update it
        row = session.scalars(
            select(PushSubscription).where(PushSubscription.endpoint_hash == endpoint_hash)
        ).one_or_none()
        created = row is None
        if row is None:
            row = PushSubscription(
                id=new_subscription_id(),
                endpoint=endpoint,
                endpoint_hash=endpoint_hash,
                created_at=now,
                last_error=None,
                last_sent_at=None,
            )
            session.add(row)
        for key, value in values.items():
            setattr(row, key, value)
        try:
            session.commit()
        except IntegrityError:
            session.rollback()
            continue
        break
    else:
        raise ApiError(409, "conflict", "The subscription changed meanwhile; send it again.")
    if not created:
        response.status_code = status.HTTP_200_OK
    log.info(
        "push subscription " + ("created" if created else "updated"),
        extra={
            "subscription": row.id,
            "device": row.device,
            "push_host": endpoint_host(endpoint),
            "labels": ",".join(row.labels),
            "cameras": "all" if row.cameras is None else ",".join(row.cameras),
        },
    )
    return subscription_out(row)


@router.get("/subscriptions", summary="List push subscriptions", responses=_AUTH_ERRORS)
def list_subscriptions(_admin: AdminPrincipal, session: SessionDep) -> list[SubscriptionOut]:
    rows = session.scalars(
        select(PushSubscription).order_by(PushSubscription.created_at, PushSubscription.id)
    )
    return [subscription_out(row) for row in rows]


@router.get(
    "/subscriptions/{subscription_id}",
    summary="Get a push subscription",
    responses=_SUBSCRIPTION_ERRORS,
)
def get_subscription(
    subscription_id: str, _admin: AdminPrincipal, session: SessionDep
) -> SubscriptionOut:
    return subscription_out(_get_or_404(session, subscription_id))


@router.patch(
    "/subscriptions/{subscription_id}",
    summary="Change a subscription's device name, cameras, labels, quiet hours or zone",
    responses=_SUBSCRIPTION_ERRORS,
)
def update_subscription(
    subscription_id: str,
    body: SubscriptionUpdate,
    _admin: AdminPrincipal,
    session: SessionDep,
    clock: ClockDep,
) -> SubscriptionOut:
    row = _get_or_404(session, subscription_id)
    sent = body.model_fields_set
    for required in ("device", "labels"):
        if required in sent and getattr(body, required) is None:
            raise _invalid(required, "may not be null")
    if "cameras" in sent:
        _check_cameras(session, body.cameras)
        row.cameras = body.cameras
    if body.device is not None:
        row.device = body.device
    if body.labels is not None:
        row.labels = list(body.labels)
    if "quiet_hours" in sent:
        row.quiet_hours = body.quiet_hours.model_dump() if body.quiet_hours else None
    if "tz" in sent:
        row.tz = body.tz
    row.updated_at = clock()
    session.commit()
    log.info(
        "push subscription updated",
        extra={"subscription": row.id, "fields": ",".join(sorted(sent))},
    )
    return subscription_out(row)


@router.delete(
    "/subscriptions/{subscription_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a push subscription",
    responses=_SUBSCRIPTION_ERRORS,
)
def delete_subscription(
    subscription_id: str, _admin: AdminPrincipal, session: SessionDep, push: PushDep
) -> Response:
    row = _get_or_404(session, subscription_id)
    session.delete(row)
    session.commit()
    push.forget(subscription_id)
    log.info("push subscription deleted", extra={"subscription": subscription_id})
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/subscriptions/{subscription_id}/test",
    summary="Send a test notification to one subscription now",
    responses={
        **_SUBSCRIPTION_ERRORS,
        502: {"model": ErrorResponse, "description": "The push service refused or failed"},
    },
)
async def send_test_notification(
    subscription_id: str, factory: SessionFactoryDep, push: PushDep, _admin: AdminPrincipal
) -> PushTestResult:
    def load() -> PushSubscription:
        with factory() as session:
            return _get_or_404(session, subscription_id)

    row = await run_in_threadpool(load)
    try:
        answer = await push.send_test(row, row.device)
    except SendError as exc:
        raise ApiError(
            502,
            "push_unreachable",
            f"The push service at {endpoint_host(row.endpoint)} did not answer ({exc}).",
        ) from None
    if answer.status in (404, 410):
        raise ApiError(
            502,
            "subscription_gone",
            "The push service says this subscription no longer exists; it was deleted. "
            "Subscribe the browser again.",
        )
    if not answer.ok:
        raise ApiError(
            502,
            "push_refused",
            f"The push service at {endpoint_host(row.endpoint)} answered HTTP {answer.status}.",
        )
    return PushTestResult(status="sent", push_status=answer.status)


@router.get("/stats", summary="Web Push counters since the server started", responses=_AUTH_ERRORS)
def push_stats(_admin: AdminPrincipal, push: PushDep) -> PushStatsOut:
    return PushStatsOut(**push.stats.as_dict(), pending=push.pending)

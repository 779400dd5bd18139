"""Enrollment: one-time codes that an edge trades for its long-lived credential."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, Result, select, update
from sqlalchemy.orm import Session

from app.errors import ApiError
from app.models import Camera, EdgeCredential, EnrollmentCode
from app.security import (
    hash_secret,
    new_edge_credential,
    new_enrollment_code,
    normalize_enrollment_code,
    secrets_equal,
)

log = logging.getLogger(__name__)


def _rowcount(result: Result[Any]) -> int:
    """Rows matched by an UPDATE (session.execute types it as a plain Result)."""
    return int(cast(CursorResult[Any], result).rowcount)


@dataclass(frozen=True)
class IssuedCode:
    code: str
    expires_at: datetime


@dataclass(frozen=True)
class Enrolled:
    camera: Camera
    credential: str


def issue_code(session: Session, camera: Camera, now: datetime, ttl_s: int) -> IssuedCode:
    """A new one-time code for `camera`; older unused codes stop working. Not committed."""
    superseded = session.execute(
        update(EnrollmentCode)
        .where(
            EnrollmentCode.camera_id == camera.id,
            EnrollmentCode.used_at.is_(None),
            EnrollmentCode.revoked_at.is_(None),
        )
        .values(revoked_at=now)
    )
    code = new_enrollment_code()
    expires_at = now + timedelta(seconds=ttl_s)
    session.add(
        EnrollmentCode(
            camera_id=camera.id,
            code_hash=hash_secret(normalize_enrollment_code(code)),
            created_at=now,
            expires_at=expires_at,
        )
    )
    log.info(
        "enrollment code issued",
        extra={
            "camera": camera.id,
            "expires_at": expires_at.isoformat(),
            "superseded": _rowcount(superseded),
        },
    )
    return IssuedCode(code=code, expires_at=expires_at)


def redeem_code(session: Session, code: str, now: datetime) -> Enrolled:
    """Trades a valid code for a new edge credential. Commits.

    The camera's earlier credentials are revoked: one camera has one edge, and an edge
    that enrols again (a re-imaged Pi) should leave no working secret behind.
    """
    code_hash = hash_secret(normalize_enrollment_code(code))
    row = session.scalars(
        select(EnrollmentCode).where(EnrollmentCode.code_hash == code_hash)
    ).one_or_none()
    if row is None or not secrets_equal(row.code_hash, code_hash):
        log.warning("enrollment rejected", extra={"reason": "unknown code"})
        raise ApiError(401, "invalid_enrollment_code", "This enrollment code is not valid.")
    camera_id = row.camera_id
    if row.used_at is not None:
        log.warning("enrollment rejected", extra={"camera": camera_id, "reason": "code used"})
        raise ApiError(
            410,
            "enrollment_code_used",
            "This enrollment code has already been used; ask for a new one.",
        )
    if row.revoked_at is not None:
        log.warning("enrollment rejected", extra={"camera": camera_id, "reason": "code replaced"})
        raise ApiError(
            410,
            "enrollment_code_replaced",
            "This enrollment code was replaced by a newer one; use the newest code.",
        )
    if row.expires_at <= now:
        log.warning("enrollment rejected", extra={"camera": camera_id, "reason": "code expired"})
        raise ApiError(
            410, "enrollment_code_expired", "This enrollment code has expired; ask for a new one."
        )

    # Claim the code atomically, so two concurrent requests cannot both redeem it.
    claimed = session.execute(
        update(EnrollmentCode)
        .where(
            EnrollmentCode.id == row.id,
            EnrollmentCode.used_at.is_(None),
            EnrollmentCode.revoked_at.is_(None),
        )
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    if _rowcount(claimed) != 1:
        session.rollback()
        raise ApiError(
            410,
            "enrollment_code_used",
            "This enrollment code has already been used; ask for a new one.",
        )

    revoked = session.execute(
        update(EdgeCredential)
        .where(EdgeCredential.camera_id == camera_id, EdgeCredential.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    credential = new_edge_credential()
    session.add(
        EdgeCredential(camera_id=camera_id, secret_hash=hash_secret(credential), created_at=now)
    )
    session.commit()
    camera = session.get_one(Camera, camera_id)
    log.info(
        "edge enrolled", extra={"camera": camera_id, "revoked_credentials": _rowcount(revoked)}
    )
    return Enrolled(camera=camera, credential=credential)


def revoke_credentials(session: Session, camera: Camera, now: datetime) -> int:
    """Revokes every active credential of `camera`; returns how many. Not committed."""
    result = session.execute(
        update(EdgeCredential)
        .where(EdgeCredential.camera_id == camera.id, EdgeCredential.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    count = _rowcount(result)
    log.info("edge credentials revoked", extra={"camera": camera.id, "count": count})
    return count

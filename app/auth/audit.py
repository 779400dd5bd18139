"""The audit log: sign-ins, tokens minted, admin changes. Read with GET /api/audit.

Entries go into the caller's database session and are committed with the change they
describe, so a change and its entry are never apart; failed sign-ins commit their own.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.auth.principals import Principal
from app.models import AuditEntry


def client_ip(request: Request) -> str | None:
    """The peer address as seen by the server (the proxy's, behind one)."""
    return request.client.host if request.client else None


def record(
    session: Session,
    now: datetime,
    action: str,
    actor: str,
    *,
    outcome: str = "ok",
    ip: str | None = None,
    camera_id: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Adds an entry to `session` (the caller commits)."""
    session.add(
        AuditEntry(
            at=now,
            action=action,
            actor=actor[:200],
            outcome=outcome,
            ip=ip,
            camera_id=camera_id,
            detail=detail,
        )
    )


def record_by(
    session: Session,
    now: datetime,
    principal: Principal,
    action: str,
    request: Request | None = None,
    *,
    camera_id: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Adds an entry for an act of `principal` (the caller commits)."""
    record(
        session,
        now,
        action,
        principal.name,
        ip=client_ip(request) if request is not None else None,
        camera_id=camera_id,
        detail=detail,
    )


def recent(session: Session, limit: int, before: int | None) -> list[AuditEntry]:
    """Entries newest first, below id `before` when given."""
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if before is not None:
        query = query.where(AuditEntry.id < before)
    return list(session.scalars(query))

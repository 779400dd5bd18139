"""Camera grants: which cameras a viewer may see."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.models import CameraGrant


def granted_camera_ids(session: Session, user_id: int) -> set[str]:
    """The camera ids granted to a user."""
    return set(session.scalars(select(CameraGrant.camera_id).where(CameraGrant.user_id == user_id)))


def set_grants(session: Session, user_id: int, camera_ids: set[str], now: datetime) -> None:
    """Replaces a user's grants with `camera_ids` (the caller commits)."""
    session.execute(delete(CameraGrant).where(CameraGrant.user_id == user_id))
    for camera_id in sorted(camera_ids):
        session.add(CameraGrant(user_id=user_id, camera_id=camera_id, created_at=now))

"""LiveKit access tokens for viewers and edges. Only the server holds the API secret."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
from livekit.api import AccessToken, VideoGrants

from app.models import room_name
from app.security import new_viewer_identity
from app.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MintedToken:
    url: str
    token: str
    room: str
    identity: str
    expires_at: datetime


def viewer_grants(room: str) -> VideoGrants:
    """Subscribe-only access to one room."""
    return VideoGrants(
        room_join=True,
        room=room,
        can_subscribe=True,
        can_publish=False,
        can_publish_data=False,
    )


def edge_grants(room: str) -> VideoGrants:
    """Publish-only access to one room, camera track and data only."""
    return VideoGrants(
        room_join=True,
        room=room,
        can_publish=True,
        can_publish_sources=["camera"],
        can_subscribe=False,
        can_publish_data=True,
    )


def edge_identity(camera_id: str) -> str:
    return f"edge-{camera_id}"


def _mint(
    settings: Settings, *, camera_id: str, identity: str, grants: VideoGrants, ttl_s: int, kind: str
) -> MintedToken:
    token = (
        AccessToken(settings.livekit_api_key, settings.livekit_api_secret.get_secret_value())
        .with_identity(identity)
        .with_grants(grants)
        .with_ttl(timedelta(seconds=ttl_s))
        .to_jwt()
    )
    # Read back the exact expiry AccessToken wrote, rather than recomputing it.
    claims = jwt.decode(token, options={"verify_signature": False})
    expires_at = datetime.fromtimestamp(int(claims["exp"]), UTC)
    log.info(
        f"{kind} token minted",
        extra={"camera": camera_id, "identity": identity, "room": grants.room, "ttl": ttl_s},
    )
    return MintedToken(
        url=settings.livekit_public_url,
        token=token,
        room=grants.room,
        identity=identity,
        expires_at=expires_at,
    )


def mint_viewer_token(settings: Settings, camera_id: str) -> MintedToken:
    return _mint(
        settings,
        camera_id=camera_id,
        identity=new_viewer_identity(),
        grants=viewer_grants(room_name(camera_id)),
        ttl_s=settings.viewer_token_ttl,
        kind="viewer",
    )


def mint_edge_token(settings: Settings, camera_id: str) -> MintedToken:
    return _mint(
        settings,
        camera_id=camera_id,
        identity=edge_identity(camera_id),
        grants=edge_grants(room_name(camera_id)),
        ttl_s=settings.edge_token_ttl,
        kind="edge",
    )

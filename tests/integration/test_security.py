"""Tokens are enforced by the real SFU, not just by our own code."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from livekit import api, rtc

from scripts.devstack import Stack, create_camera
from tests.integration.conftest import EdgeFactory, viewer_token, watch

pytestmark = pytest.mark.live


async def test_viewer_token_cannot_publish(stack: Stack, start_cameras: EdgeFactory) -> None:
    (cam,), _ = start_cameras({"kind": "synthetic", "width": 160, "height": 120, "fps": 10})
    tok = viewer_token(stack, cam)
    room = rtc.Room()
    await room.connect(tok["url"], tok["token"])
    try:
        # The SFU ignores a publish request without the grant; the SDK then gives up.
        source = rtc.VideoSource(160, 120)
        track = rtc.LocalVideoTrack.create_video_track("intruder", source)
        with pytest.raises(Exception, match=r"(?i)permission|not allowed|denied|timed out"):
            await asyncio.wait_for(
                room.local_participant.publish_track(
                    track, rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_CAMERA)
                ),
                15,
            )
    finally:
        await room.disconnect()
    # The SFU's own view: the viewer has no publish permission.
    async with api.LiveKitAPI(
        stack.livekit.http_url, stack.livekit.api_key, stack.livekit.api_secret
    ) as lk:
        parts = await lk.room.list_participants(api.ListParticipantsRequest(room=f"camera-{cam}"))
        viewers = [p for p in parts.participants if p.identity.startswith("viewer-")]
        assert all(not p.permission.can_publish for p in viewers)
        assert all(not p.tracks for p in viewers)


async def test_edge_token_only_opens_its_own_room(stack: Stack) -> None:
    cam_a, cred_a = create_camera(stack.api, "A")
    cam_b, _ = create_camera(stack.api, "B")
    with httpx.Client(base_url=stack.api.url, timeout=10) as c:
        # Asking for another room is ignored: the credential decides the room.
        resp = c.post(
            "/api/edge/token",
            json={"room": f"camera-{cam_b}"},
            headers={"Authorization": f"Bearer {cred_a}"},
        )
        assert resp.status_code == 200
        tok = resp.json()
    assert tok["room"] == f"camera-{cam_a}"
    claims = api.TokenVerifier(stack.livekit.api_key, stack.livekit.api_secret).verify(tok["token"])
    assert claims.video is not None
    assert claims.video.room == f"camera-{cam_a}"
    assert claims.video.can_subscribe is False

    room = rtc.Room()
    await room.connect(tok["url"], tok["token"])
    try:
        assert room.name == f"camera-{cam_a}"
        viewer_b = await watch(stack, cam_b)
        try:
            await asyncio.sleep(0)  # let participant events flush
            assert f"edge-{cam_a}" not in {
                p.identity for p in viewer_b.room.remote_participants.values()
            }
        finally:
            await viewer_b.close()
    finally:
        await room.disconnect()


async def test_token_signed_with_another_secret_is_refused_by_the_sfu(stack: Stack) -> None:
    cam, _ = create_camera(stack.api, "C")
    forged = (
        api.AccessToken(stack.livekit.api_key, "x" * 40)
        .with_identity(f"edge-{cam}")
        .with_grants(api.VideoGrants(room_join=True, room=f"camera-{cam}", can_publish=True))
        .to_jwt()
    )
    room = rtc.Room()
    with pytest.raises(Exception):  # noqa: B017,PT011 - the SDK raises a generic ConnectError
        await asyncio.wait_for(room.connect(stack.livekit.url, forged), 15)


def test_real_webhooks_mark_the_camera_online_and_forged_ones_are_refused(
    stack: Stack,
) -> None:
    cam, _ = create_camera(stack.api, "D")
    with httpx.Client(base_url=stack.api.url, timeout=10) as c:
        resp = c.post(
            "/api/livekit/webhook",
            content=b'{"event":"track_published","participant":{"identity":"edge-'
            + cam.encode()
            + b'"}}',
            headers={"Authorization": "forged", "Content-Type": "application/webhook+json"},
        )
        assert resp.status_code == 401
        assert resp.json()["error"]["code"]
        assert c.get("/api/cameras").status_code == 401
    with stack.api.client() as c:
        assert c.get(f"/api/cameras/{cam}/status").json()["online"] is False

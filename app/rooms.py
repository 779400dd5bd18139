"""LiveKit RoomService calls the server makes: a reachability probe, room deletion, and
data messages into a room (the live event overlay)."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Protocol

import aiohttp
from livekit.api import LiveKitAPI, ServerError
from livekit.protocol.models import DataPacket
from livekit.protocol.room import DeleteRoomRequest, ListRoomsRequest, SendDataRequest

log = logging.getLogger(__name__)


class RoomAdmin(Protocol):
    """What the server needs from LiveKit; tests substitute their own."""

    async def list_rooms(self) -> int: ...

    async def delete_room(self, room: str) -> None: ...


class LiveKitRooms:
    """RoomService over HTTP (Twirp), signed with the server's API key."""

    def __init__(self, url: str, api_key: str, api_secret: str, timeout_s: float = 2.0) -> None:
        self._url = url
        self._api_key = api_key
        self._api_secret = api_secret
        self._timeout_s = timeout_s

    def _api(self) -> LiveKitAPI:
        return LiveKitAPI(
            self._url,
            self._api_key,
            self._api_secret,
            timeout=aiohttp.ClientTimeout(total=self._timeout_s),
        )

    async def list_rooms(self) -> int:
        """The number of active rooms; proves the URL and the key pair work."""
        async with self._api() as lk, asyncio.timeout(self._timeout_s):
            response = await lk.room.list_rooms(ListRoomsRequest())
        return len(response.rooms)

    async def delete_room(self, room: str) -> None:
        """Deletes `room`, disconnecting everyone in it. A room that does not exist is fine."""
        try:
            async with self._api() as lk, asyncio.timeout(self._timeout_s):
                await lk.room.delete_room(DeleteRoomRequest(room=room))
        except ServerError as exc:
            if exc.status == 404 or exc.code == "not_found":
                return
            raise


class RoomDataSender(Protocol):
    """Sends data messages into LiveKit rooms; tests substitute their own."""

    async def send_data(self, room: str, data: bytes, topic: str) -> None: ...

    async def aclose(self) -> None: ...


class LiveKitRoomData:
    """RoomService SendData over one kept-open HTTP session (events can come in bursts).

    Messages are sent reliable, to everyone in the room. A room nobody is in does not
    exist in LiveKit; that raises ``ServerError`` (see ``is_missing_room``).
    """

    def __init__(self, url: str, api_key: str, api_secret: str, timeout_s: float = 2.0) -> None:
        self._url = url
        self._api_key = api_key
        self._api_secret = api_secret
        self.timeout_s = timeout_s
        self._lk: LiveKitAPI | None = None

    async def send_data(self, room: str, data: bytes, topic: str) -> None:
        """Sends ``data`` to every participant of ``room`` on ``topic`` (reliable)."""
        if self._lk is None:
            # Made on first use: its HTTP session belongs to the running event loop.
            self._lk = LiveKitAPI(
                self._url,
                self._api_key,
                self._api_secret,
                timeout=aiohttp.ClientTimeout(total=self.timeout_s),
            )
        request = SendDataRequest(room=room, data=data, kind=DataPacket.Kind.RELIABLE, topic=topic)
        async with asyncio.timeout(self.timeout_s):
            await self._lk.room.send_data(request)

    async def aclose(self) -> None:
        if self._lk is not None:
            lk, self._lk = self._lk, None
            await lk.aclose()


def is_missing_room(exc: BaseException) -> bool:
    """Whether a RoomService error means the room does not exist (nobody is in it)."""
    return isinstance(exc, ServerError) and (
        exc.status == 404 or exc.code == "not_found" or "does not exist" in exc.message
    )


def describe_error(exc: BaseException, timeout_s: float | None = None) -> str:
    """A one-line human description of a LiveKit call failure."""
    if isinstance(exc, TimeoutError):
        return f"timed out after {timeout_s:g} s" if timeout_s else "timed out"
    if isinstance(exc, ServerError):
        return f"LiveKit answered {exc.status} {exc.code}: {exc.message}".rstrip(": ")
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@dataclass(frozen=True)
class ProbeResult:
    ok: bool
    latency_ms: float | None
    error: str | None


class LiveKitProbe:
    """Checks LiveKit with a RoomService call, caching the answer for `ttl_s`."""

    def __init__(self, timeout_s: float = 2.0, ttl_s: float = 5.0) -> None:
        self.timeout_s = timeout_s
        self.ttl_s = ttl_s
        self._cached: ProbeResult | None = None
        self._cached_at = 0.0

    async def check(self, rooms: RoomAdmin) -> ProbeResult:
        if self._cached is not None and time.monotonic() - self._cached_at < self.ttl_s:
            return self._cached
        started = time.monotonic()
        try:
            async with asyncio.timeout(self.timeout_s):
                await rooms.list_rooms()
        except Exception as exc:
            result = ProbeResult(
                ok=False, latency_ms=None, error=describe_error(exc, self.timeout_s)
            )
            if self._cached is None or self._cached.ok:
                log.warning("livekit unreachable", extra={"error": result.error})
        else:
            latency_ms = round((time.monotonic() - started) * 1000, 1)
            result = ProbeResult(ok=True, latency_ms=latency_ms, error=None)
            if self._cached is not None and not self._cached.ok:
                log.info("livekit reachable again", extra={"latency_ms": latency_ms})
        self._cached = result
        self._cached_at = time.monotonic()
        return result

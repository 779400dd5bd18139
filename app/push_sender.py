"""Sends one Web Push message: encrypts it for the browser (RFC 8291, aes128gcm), signs
the request with the server's VAPID key (RFC 8292) and POSTs it to the push service.

pywebpush does the encryption and signing; this module gives it one shared aiohttp
session, a hard timeout, and turns every outcome into a ``PushResponse`` or a
``SendError`` whose text never contains the endpoint URL or the keys.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from dataclasses import dataclass
from datetime import UTC
from typing import Any, Protocol
from urllib.parse import urlsplit

import aiohttp
from py_vapid import Vapid02  # type: ignore[import-untyped]
from pywebpush import WebPushException, webpush_async  # type: ignore[import-untyped]

from app.push_vapid import VapidKey

#: Lifetime of the VAPID JWT; push services refuse more than 24 h.
JWT_LIFETIME_S = 12 * 3600
MAX_RETRY_AFTER_S = 300.0


@dataclass(frozen=True, slots=True)
class Target:
    """Where one notification goes: a stored subscription."""

    subscription_id: str
    endpoint: str
    p256dh: str
    auth: str


@dataclass(frozen=True, slots=True)
class PushResponse:
    """What the push service answered."""

    status: int
    retry_after_s: float | None = None

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class SendError(Exception):
    """The request did not get an HTTP answer (connection refused, timeout, TLS, ...)."""


class PushSender(Protocol):
    """Sends one encrypted notification."""

    async def send(self, target: Target, data: str, *, ttl: int, urgency: str) -> PushResponse:
        """Delivers ``data`` to ``target``; raises SendError when there is no HTTP answer."""
        ...

    async def aclose(self) -> None: ...


def origin(endpoint: str) -> str:
    """scheme://host[:port] of an endpoint: the VAPID JWT's audience."""
    parts = urlsplit(endpoint)
    return f"{parts.scheme}://{parts.netloc}"


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Retry-After as seconds from now (delay-seconds or an HTTP date), capped; None if absent
    or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_S)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now = time.time() if now is None else now
    return min(max(0.0, when.timestamp() - now), MAX_RETRY_AFTER_S)


def _describe(exc: BaseException) -> str:
    # Exception texts may quote the URL (and so the endpoint's secret path): name the
    # kind of failure only, plus the OS's reason when there is one.
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return "timeout"
    reason = getattr(exc, "strerror", None) or getattr(
        getattr(exc, "os_error", None), "strerror", None
    )
    return f"{type(exc).__name__}: {reason}" if reason else type(exc).__name__


class WebPushSender:
    """Sends through pywebpush over one aiohttp session (made on first use, in the loop)."""

    def __init__(
        self, vapid: VapidKey, subject: str, timeout_s: float, max_connections: int
    ) -> None:
        self._vapid: Any = Vapid02(private_key=vapid.private_key)
        self._subject = subject
        self._timeout_s = timeout_s
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._max_connections),
                timeout=aiohttp.ClientTimeout(total=self._timeout_s),
            )
        return self._session

    async def send(self, target: Target, data: str, *, ttl: int, urgency: str) -> PushResponse:
        claims: dict[str, str | int] = {
            "sub": self._subject,
            "aud": origin(target.endpoint),
            # Real time, not the app's clock: the push service checks it against its own.
            "exp": int(time.time()) + JWT_LIFETIME_S,
        }
        subscription = {
            "endpoint": target.endpoint,
            "keys": {"p256dh": target.p256dh, "auth": target.auth},
        }
        try:
            # pywebpush's own timeout covers the request; this one covers everything.
            async with asyncio.timeout(self._timeout_s + 1.0):
                response = await webpush_async(
                    subscription_info=subscription,
                    data=data,
                    vapid_private_key=self._vapid,
                    vapid_claims=claims,
                    content_encoding="aes128gcm",
                    timeout=self._timeout_s,
                    ttl=ttl,
                    headers={"Urgency": urgency},
                    aiohttp_session=self._client(),
                )
        except WebPushException as exc:
            if exc.response is None:
                raise SendError("WebPushException") from None
            return PushResponse(int(exc.status_code or 0), parse_retry_after(exc.retry_after))
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            raise SendError(_describe(exc)) from None
        return PushResponse(int(response.status))

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

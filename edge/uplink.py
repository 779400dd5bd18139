"""The edge's HTTPS client for the livecam server: enrollment, LiveKit tokens, heartbeats,
event delivery (edge.events.delivery decides what to retry).

The control websocket (JPEG demand and JPEGs) lives in edge.control; it takes its URL
and credential from here.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

import httpx

log = logging.getLogger("edge.uplink")


class ServerError(RuntimeError):
    """The server could not be reached or answered with an error."""

    def __init__(
        self,
        message: str,
        status: int | None = None,
        *,
        retry_after_s: float | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status  # None: the server was not reached (or gave no answer)
        self.retry_after_s = retry_after_s  # the server's Retry-After, when it sent one
        self.data = data or {}  # the error's JSON body, when it had one

    @property
    def code(self) -> str:
        """The machine-readable error code of the reply (``{"error": "..."}``), or ""."""
        error = self.data.get("error")
        if isinstance(error, dict):
            return str(error.get("code", ""))
        return str(error or "")


class CredentialRejected(ServerError):
    """401/403: the edge credential was revoked or the camera deleted; re-enroll."""


@dataclass(frozen=True, slots=True)
class LiveKitToken:
    """A publish token for this camera's room, minted by the server."""

    url: str
    token: str
    room: str
    identity: str
    expires_at: dt.datetime

    def valid_for(self, seconds: float) -> bool:
        """True when the token is still valid ``seconds`` from now."""
        remaining = (self.expires_at - dt.datetime.now(dt.UTC)).total_seconds()
        return remaining > seconds


@dataclass(frozen=True, slots=True)
class Enrollment:
    """What the server returns for a one-time enrollment code."""

    camera_id: str
    credential: str
    room: str


def _error_message(resp: httpx.Response) -> str:
    try:
        body = resp.json()
        error = body["error"]
        return str(error["message"] if isinstance(error, dict) else error)
    except (ValueError, KeyError, TypeError):
        return resp.text[:200] or resp.reason_phrase


def _error_data(resp: httpx.Response) -> dict[str, Any]:
    try:
        body = resp.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _retry_after(resp: httpx.Response) -> float | None:
    value = resp.headers.get("Retry-After", "")
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None  # an HTTP date: rare from an API, the backoff serves


def _check(resp: httpx.Response, what: str) -> dict[str, Any]:
    if resp.status_code in (401, 403):
        raise CredentialRejected(f"{what}: {_error_message(resp)}", resp.status_code)
    if resp.status_code >= 400:
        raise ServerError(
            f"{what}: HTTP {resp.status_code}: {_error_message(resp)}",
            resp.status_code,
            retry_after_s=_retry_after(resp),
            data=_error_data(resp),
        )
    try:
        data = resp.json()
    except ValueError as exc:
        raise ServerError(f"{what}: the reply is not JSON: {resp.text[:100]!r}") from exc
    if not isinstance(data, dict):
        raise ServerError(f"{what}: unexpected response {data!r:.100}")
    return data


def _parse_time(value: Any) -> dt.datetime:
    when = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


async def enroll(server: str, code: str, *, timeout: float = 10.0) -> Enrollment:
    """Exchange a one-time enrollment code for this edge's long-lived credential."""
    async with httpx.AsyncClient(base_url=server, timeout=timeout) as client:
        try:
            resp = await client.post("/api/edge/enroll", json={"code": code})
        except httpx.HTTPError as exc:
            raise ServerError(f"enroll: cannot reach {server}: {exc}") from exc
    data = _check(resp, "enroll")
    return Enrollment(
        camera_id=str(data["camera_id"]), credential=str(data["credential"]), room=str(data["room"])
    )


class ServerClient:
    """Authenticated calls for one camera (the credential is per camera)."""

    def __init__(self, server: str, camera_id: str, credential: str, *, timeout: float = 5.0):
        self.server = server
        self.camera_id = camera_id
        self._credential = credential
        self._client = httpx.AsyncClient(
            base_url=server,
            timeout=timeout,
            headers={"Authorization": f"Bearer {credential}"},
        )
        self._token: LiveKitToken | None = None

    async def _post(
        self,
        path: str,
        what: str,
        body: dict[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        try:
            if timeout is None:
                resp = await self._client.post(path, json=body or {})
            else:
                resp = await self._client.post(path, json=body or {}, timeout=timeout)
        except httpx.HTTPError as exc:
            raise ServerError(f"{what}: cannot reach {self.server}: {exc!r}") from exc
        return _check(resp, what)

    async def edge_token(self) -> LiveKitToken:
        """A fresh publish token; when the server is down, the last one if still valid.

        The edge keeps streaming while the API restarts: only a reconnect to LiveKit
        needs a token, and a cached one good for another minute serves.
        """
        try:
            data = await self._post("/api/edge/token", "edge token")
        except CredentialRejected:
            self._token = None
            raise
        except ServerError:
            if self._token is not None and self._token.valid_for(60):
                log.warning(
                    "server unreachable, reusing cached LiveKit token camera=%s", self.camera_id
                )
                return self._token
            raise
        self._token = LiveKitToken(
            url=str(data["url"]),
            token=str(data["token"]),
            room=str(data["room"]),
            identity=str(data["identity"]),
            expires_at=_parse_time(data["expires_at"]),
        )
        return self._token

    @property
    def auth_headers(self) -> dict[str, str]:
        """The edge credential as an Authorization header (for the control websocket)."""
        return {"Authorization": f"Bearer {self._credential}"}

    def websocket_url(self, path: str) -> str:
        """``path`` on the server as a ws:// (http) or wss:// (https) URL."""
        base = self.server.rstrip("/")
        if base.startswith("https://"):
            base = "wss://" + base.removeprefix("https://")
        elif base.startswith("http://"):
            base = "ws://" + base.removeprefix("http://")
        return base + path

    async def heartbeat(self, body: dict[str, Any]) -> dict[str, Any]:
        """Report health; the reply carries the server's wishes (e.g. MJPEG wanted)."""
        return await self._post("/api/edge/heartbeat", "heartbeat", body)

    async def post_event(self, body: dict[str, Any]) -> dict[str, Any]:
        """Deliver one event message (contract 3) to ``POST /api/edge/events``.

        Returns the server's JSON (``{"status": "stored" | "duplicate", ...}``); raises
        CredentialRejected (401/403) or ServerError with ``status`` (None when the server
        was not reached) and ``retry_after_s``.
        """
        # A snapshot makes the body tens of kB: allow a slow uplink more than a heartbeat.
        return await self._post("/api/edge/events", "event", body, timeout=30.0)

    async def start_upload(self, body: dict[str, Any]) -> dict[str, Any]:
        """Start or resume a clip upload (contract 5): ``{"upload_id", "offset", "complete"}``."""
        return await self._post("/api/edge/uploads", "upload start", body, timeout=30.0)

    async def upload_chunk(
        self, upload_id: str, start: int, chunk: bytes, total: int, chunk_sha256: str
    ) -> dict[str, Any]:
        """Append ``chunk`` at ``start`` of upload ``upload_id``: ``{"offset", "complete"}``."""
        what = "upload chunk"
        headers = {
            "Content-Range": f"bytes {start}-{start + len(chunk) - 1}/{total}",
            "X-Chunk-SHA256": chunk_sha256,
            "Content-Type": "application/octet-stream",
        }
        try:
            # A chunk on a slow uplink: allow it time (the bandwidth limit paces the rest).
            resp = await self._client.put(
                f"/api/edge/uploads/{upload_id}", content=chunk, headers=headers, timeout=120.0
            )
        except httpx.HTTPError as exc:
            raise ServerError(f"{what}: cannot reach {self.server}: {exc!r}") from exc
        return _check(resp, what)

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        await self._client.aclose()

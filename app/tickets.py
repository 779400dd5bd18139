"""Short-lived signed tickets that let a browser open one camera's MJPEG stream.

An ``<img src>`` cannot carry an Authorization header and the admin key must never sit
in a URL (logs, history, Referer), so the dashboard trades its key for a ticket:

    v1.<expires>.<mac>
    expires = unix seconds
    mac     = base64url(HMAC-SHA256(server secret, "mjpeg" NUL camera id NUL expires))

The ticket names no camera itself; the camera id in the URL is part of what is signed,
so a ticket for one camera is worthless for another. It only has to be valid when the
stream is opened; the stream may outlive it.

The same signer issues long-lived tickets for one event's snapshot (Web Push puts one
in the notification's image URL, which the browser fetches without any header): scope
``event-snapshot`` instead of ``mjpeg``, the event id instead of the camera id, 24 h by
default. A ticket of one scope is worthless for the other.

The server secret is 32 random bytes made on first start into
``$LIVECAM_DATA/server.secret`` (mode 0600), independent of the LiveKit key pair.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import logging
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

log = logging.getLogger(__name__)

SERVER_SECRET_FILE = "server.secret"  # noqa: S105 (a file name)
TICKET_TTL_S = 60
_VERSION = "v1"

MJPEG_SCOPE = "mjpeg"
EVENT_SNAPSHOT_SCOPE = "event-snapshot"
#: A notification may be opened hours after it arrived; its picture must still load.
EVENT_SNAPSHOT_TICKET_TTL_S = 86400


def load_server_secret(data_dir: Path) -> bytes:
    """The server's signing secret, created (0600) on first use.

    Creation is race-free between processes sharing the data directory: the secret is
    written to a private temporary file and hard-linked into place, which fails if
    another process got there first; then everyone reads the one file.
    """
    path = data_dir / SERVER_SECRET_FILE
    if not path.exists():
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="ascii") as f:
                f.write(secrets.token_hex(32) + "\n")
                f.flush()
                os.fsync(f.fileno())
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
                log.info("server secret created", extra={"file": str(path)})
        finally:
            tmp.unlink(missing_ok=True)
    text = path.read_text(encoding="ascii").strip()
    try:
        secret = bytes.fromhex(text)
    except ValueError:
        secret = b""
    if len(secret) < 32:
        raise RuntimeError(f"{path} must hold at least 32 random bytes as hex; delete it to renew")
    return secret


@dataclass(frozen=True, slots=True)
class Ticket:
    value: str
    expires_at: datetime


class TicketSigner:
    """Issues and checks MJPEG tickets with one secret."""

    def __init__(self, secret: bytes, ttl_s: int = TICKET_TTL_S) -> None:
        if len(secret) < 32:
            raise ValueError("the ticket secret must be at least 32 bytes")
        self._secret = secret
        self.ttl_s = ttl_s

    def _mac(self, scope: str, subject: str, expires: int) -> str:
        message = f"{scope}\0{subject}\0{expires}".encode()
        digest = hmac.new(self._secret, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def issue(
        self, camera_id: str, now: datetime, *, scope: str = MJPEG_SCOPE, ttl_s: int | None = None
    ) -> Ticket:
        """A ticket for ``camera_id`` (or, with another ``scope``, that scope's subject)
        valid for ``ttl_s`` (default: the signer's) seconds from ``now``."""
        expires = int(now.timestamp()) + (self.ttl_s if ttl_s is None else ttl_s)
        value = f"{_VERSION}.{expires}.{self._mac(scope, camera_id, expires)}"
        return Ticket(value, datetime.fromtimestamp(expires, UTC))

    def verify(
        self, ticket: str, camera_id: str, now: datetime, *, scope: str = MJPEG_SCOPE
    ) -> bool:
        """True when ``ticket`` was issued by this server for ``camera_id`` (in ``scope``)
        and has not expired."""
        parts = ticket.split(".")
        if len(parts) != 3 or parts[0] != _VERSION or not parts[1].isdigit():
            return False
        expires = int(parts[1])
        expected = self._mac(scope, camera_id, expires)
        if not hmac.compare_digest(parts[2].encode(), expected.encode()):
            return False
        return now.timestamp() < expires


def issue_event_snapshot_ticket(
    signer: TicketSigner, event_id: str, now: datetime, ttl_s: int = EVENT_SNAPSHOT_TICKET_TTL_S
) -> Ticket:
    """A ticket that opens ``GET /api/events/<event_id>/snapshot.jpg?ticket=…`` until it expires."""
    return signer.issue(event_id, now, scope=EVENT_SNAPSHOT_SCOPE, ttl_s=ttl_s)


def verify_event_snapshot_ticket(
    signer: TicketSigner, ticket: str, event_id: str, now: datetime
) -> bool:
    """True when ``ticket`` was issued for this event's snapshot and has not expired.

    The snapshot endpoint accepts this instead of the admin key (an <img> or a
    notification image cannot send a header).
    """
    return signer.verify(ticket, event_id, now, scope=EVENT_SNAPSHOT_SCOPE)

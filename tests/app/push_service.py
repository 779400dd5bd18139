"""A Web Push service on loopback for tests, and the browser side of a subscription.

``LocalPushService`` is a real HTTP server (its own thread) that plays a push service:
every POST to ``/push/<name>`` is recorded with its headers and body, then answered as
that subscriber is told to (201, a status sequence, or hanging until the test ends).

``Browser`` holds what a browser makes when it subscribes: an EC P-256 key pair and a
16-byte auth secret. It verifies a request's VAPID header (RFC 8292, with PyJWT) and
decrypts its body (RFC 8291 aes128gcm, written out here with ``cryptography`` so the
check does not reuse the sender's own library).
"""

from __future__ import annotations

import base64
import json
import secrets
import struct
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives import hashes, hmac, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Received:
    """One request the push service got, and what it answered."""

    name: str
    headers: dict[str, str]
    body: bytes
    status: int
    at: float


@dataclass
class _Behaviour:
    statuses: list[int] = field(default_factory=list)  # answered in turn, then `then`
    then: int = 201
    hang: bool = False
    retry_after: str | None = None


class LocalPushService:
    """A push service on 127.0.0.1 (a free port), recording what it receives."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._received: list[Received] = []
        self._behaviour: dict[str, _Behaviour] = {}
        self._released = threading.Event()
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                name = self.path.removeprefix("/push/")
                status, retry_after = service._answer(name)
                if status == 0:  # hang: never answer while the test runs
                    service._released.wait()
                    return
                with service._lock:
                    service._received.append(
                        Received(
                            name,
                            {k.lower(): v for k, v in self.headers.items()},
                            body,
                            status,
                            time.monotonic(),
                        )
                    )
                    service._lock.notify_all()
                self.send_response(status)
                if retry_after is not None:
                    self.send_header("Retry-After", retry_after)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self.origin = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="push-service", daemon=True
        )
        self._thread.start()

    def _answer(self, name: str) -> tuple[int, str | None]:
        with self._lock:
            behaviour = self._behaviour.setdefault(name, _Behaviour())
            if behaviour.hang:
                return 0, None
            status = behaviour.statuses.pop(0) if behaviour.statuses else behaviour.then
            return status, behaviour.retry_after if status == 429 else None

    def endpoint(self, name: str) -> str:
        return f"{self.origin}/push/{name}"

    def behave(
        self,
        name: str,
        *,
        statuses: list[int] | None = None,
        then: int = 201,
        hang: bool = False,
        retry_after: str | None = None,
    ) -> None:
        """How requests for ``name`` are answered: ``statuses`` in turn, then ``then``;
        or, with ``hang``, never."""
        with self._lock:
            self._behaviour[name] = _Behaviour(list(statuses or []), then, hang, retry_after)

    def received(self, name: str | None = None) -> list[Received]:
        with self._lock:
            return [r for r in self._received if name is None or r.name == name]

    def wait_for(self, name: str, count: int = 1, timeout: float = 20.0) -> list[Received]:
        """Waits until ``count`` requests for ``name`` were answered; returns them."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                got = [r for r in self._received if r.name == name]
                if len(got) >= count:
                    return got
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"push service got {len(got)}/{count} requests for {name!r}"
                    )
                self._lock.wait(left)

    def close(self) -> None:
        self._released.set()
        self._server.shutdown()
        self._server.server_close()


class Browser:
    """One subscribing browser: its keys, its subscription JSON, and the checks it needs."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.private_key = ec.generate_private_key(ec.SECP256R1())
        self.public_raw = self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        self.auth_secret = secrets.token_bytes(16)

    def subscription(self) -> dict[str, Any]:
        """What ``PushSubscription.toJSON()`` gives."""
        return {
            "endpoint": self.endpoint,
            "expirationTime": None,
            "keys": {"p256dh": b64url(self.public_raw), "auth": b64url(self.auth_secret)},
        }

    def decrypt(self, body: bytes) -> bytes:
        """RFC 8291 / RFC 8188 aes128gcm, one record."""
        salt, rs, idlen = body[:16], struct.unpack(">I", body[16:20])[0], body[20]
        sender_raw = body[21 : 21 + idlen]
        ciphertext = body[21 + idlen :]
        assert idlen == 65, "keyid is the sender's P-256 key"
        assert len(ciphertext) <= rs, "one record"
        sender = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), sender_raw)
        shared = self.private_key.exchange(ec.ECDH(), sender)
        prk_key = _hkdf_extract(self.auth_secret, shared)
        ikm = _hkdf_expand(prk_key, b"WebPush: info\x00" + self.public_raw + sender_raw, 32)
        prk = _hkdf_extract(salt, ikm)
        cek = _hkdf_expand(prk, b"Content-Encoding: aes128gcm\x00", 16)
        nonce = _hkdf_expand(prk, b"Content-Encoding: nonce\x00", 12)
        padded = AESGCM(cek).decrypt(nonce, ciphertext, None)
        end = len(padded.rstrip(b"\x00")) - 1
        assert padded[end] == 2, "the last record's delimiter is 0x02"
        return padded[:end]

    def payload(self, received: Received) -> dict[str, Any]:
        """Checks the request's encoding headers, decrypts it and parses the JSON."""
        assert received.headers.get("content-encoding") == "aes128gcm"
        data: dict[str, Any] = json.loads(self.decrypt(received.body))
        return data


def _hkdf_extract(salt: bytes, ikm: bytes) -> bytes:
    mac = hmac.HMAC(salt, hashes.SHA256())
    mac.update(ikm)
    return mac.finalize()


def _hkdf_expand(prk: bytes, info: bytes, length: int) -> bytes:
    return HKDFExpand(hashes.SHA256(), length, info).derive(prk)


def verify_vapid(received: Received, server_key_b64: str, audience: str) -> dict[str, Any]:
    """Checks ``Authorization: vapid t=<JWT>,k=<key>``: k is the server's key, the JWT is
    ES256-signed by it, for ``audience``, unexpired (and under 24 h); returns the claims."""
    scheme, _, params = received.headers["authorization"].partition(" ")
    assert scheme.lower() == "vapid", received.headers["authorization"][:20]
    values = dict(part.split("=", 1) for part in params.split(","))
    assert values["k"] == server_key_b64, "k is the server's VAPID public key"
    public = ec.EllipticCurvePublicKey.from_encoded_point(
        ec.SECP256R1(), b64url_decode(values["k"])
    )
    header = jwt.get_unverified_header(values["t"])
    assert header["alg"] == "ES256"
    claims: dict[str, Any] = jwt.decode(
        values["t"],
        public,
        algorithms=["ES256"],
        audience=audience,
        options={"require": ["exp", "aud", "sub"]},
    )
    assert time.time() < claims["exp"] <= time.time() + 86400
    return claims

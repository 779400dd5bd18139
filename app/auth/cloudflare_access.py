"""Cloudflare Access: verifying the `Cf-Access-Jwt-Assertion` header (RS256 JWTs).

Verified with `cryptography` directly (no JWT library at runtime): the header must name
RS256 and a key id from the team's JWKS (https://<team>/cdn-cgi/access/certs); the
signature, `aud` (must contain our application AUD), `exp` and `nbf` are checked. Keys
are cached; an unknown key id triggers a refresh, at most once per minute, so a flood
of forged tokens cannot make us hammer Cloudflare.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
import urllib.request
from collections.abc import Callable
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

log = logging.getLogger(__name__)

HEADER = "Cf-Access-Jwt-Assertion"
REFRESH_INTERVAL_S = 60.0
FETCH_TIMEOUT_S = 5.0
#: Clock skew tolerated on exp and nbf.
LEEWAY_S = 30
MAX_TOKEN_LENGTH = 16384


class AccessError(Exception):
    """The token is not acceptable; the message says why (for logs, not for callers)."""


def certs_url_for(team_domain: str) -> str:
    """The JWKS URL of a Cloudflare Access team (`myteam.cloudflareaccess.com`)."""
    host = team_domain.removeprefix("https://").rstrip("/")
    return f"https://{host}/cdn-cgi/access/certs"


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _b64int(text: str) -> int:
    return int.from_bytes(_b64decode(text), "big")


def parse_jwks(document: dict[str, Any]) -> dict[str, rsa.RSAPublicKey]:
    """The RSA keys of a JWKS document, by key id."""
    keys: dict[str, rsa.RSAPublicKey] = {}
    for jwk in document.get("keys", []):
        if not isinstance(jwk, dict) or jwk.get("kty") != "RSA" or "kid" not in jwk:
            continue
        numbers = rsa.RSAPublicNumbers(_b64int(jwk["e"]), _b64int(jwk["n"]))
        keys[str(jwk["kid"])] = numbers.public_key()
    return keys


def fetch_jwks(url: str) -> dict[str, rsa.RSAPublicKey]:
    """Downloads and parses the JWKS at `url`."""
    with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT_S) as response:  # noqa: S310
        document = json.loads(response.read(1_000_000))
    if not isinstance(document, dict):
        raise ValueError("the JWKS is not a JSON object")
    return parse_jwks(document)


class AccessVerifier:
    """Verifies Access JWTs for one application AUD against one JWKS URL."""

    def __init__(
        self,
        certs_url: str,
        audience: str,
        fetch: Callable[[str], dict[str, rsa.RSAPublicKey]] = fetch_jwks,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.certs_url = certs_url
        self.audience = audience
        self._fetch = fetch
        self._monotonic = monotonic
        self._keys: dict[str, rsa.RSAPublicKey] = {}
        self._fetched_at: float | None = None
        self._lock = threading.Lock()

    def _key(self, kid: str) -> rsa.RSAPublicKey:
        with self._lock:
            key = self._keys.get(kid)
            if key is not None:
                return key
            now = self._monotonic()
            if self._fetched_at is not None and now - self._fetched_at < REFRESH_INTERVAL_S:
                raise AccessError(f"unknown key id {kid!r} (keys refreshed recently)")
            self._fetched_at = now
            try:
                self._keys = self._fetch(self.certs_url)
            except Exception as exc:
                log.warning(
                    "could not fetch the Cloudflare Access keys",
                    extra={"url": self.certs_url, "error": str(exc) or type(exc).__name__},
                )
                raise AccessError("the Access keys could not be fetched") from exc
            log.info("Cloudflare Access keys fetched", extra={"keys": len(self._keys)})
            key = self._keys.get(kid)
            if key is None:
                raise AccessError(f"unknown key id {kid!r}")
            return key

    def verify(self, token: str, now: float) -> dict[str, Any]:
        """The claims of a valid token (`now`: Unix time); AccessError otherwise."""
        if len(token) > MAX_TOKEN_LENGTH:
            raise AccessError("token too long")
        try:
            header_b64, payload_b64, signature_b64 = token.split(".")
            header = json.loads(_b64decode(header_b64))
            claims = json.loads(_b64decode(payload_b64))
            signature = _b64decode(signature_b64)
        except ValueError as exc:
            raise AccessError("malformed token") from exc
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise AccessError("malformed token")
        if header.get("alg") != "RS256":
            raise AccessError(f"algorithm {header.get('alg')!r} is not RS256")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise AccessError("no key id")
        key = self._key(kid)
        signed = f"{header_b64}.{payload_b64}".encode()
        try:
            key.verify(signature, signed, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            raise AccessError("bad signature") from None
        _check_claims(claims, self.audience, now)
        return claims


def _check_claims(claims: dict[str, Any], audience: str, now: float) -> None:
    aud = claims.get("aud")
    audiences = aud if isinstance(aud, list) else [aud]
    if audience not in audiences:
        raise AccessError("wrong audience")
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or now > exp + LEEWAY_S:
        raise AccessError("expired")
    nbf = claims.get("nbf")
    if nbf is not None and (not isinstance(nbf, int | float) or now + LEEWAY_S < nbf):
        raise AccessError("not yet valid")
    if not isinstance(claims.get("email"), str) or not claims["email"]:
        raise AccessError("no email claim")

"""The server's VAPID key pair (RFC 8292): it signs every Web Push request, and browsers
subscribe with its public key, so a push service only accepts messages from this server.

The private key is an EC P-256 key made on first start into ``$LIVECAM_DATA/vapid.pem``
(PKCS#8 PEM, mode 0600). Losing or replacing it invalidates every subscription: browsers
must subscribe again with the new public key.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

log = logging.getLogger(__name__)

VAPID_KEY_FILE = "vapid.pem"


def b64url(data: bytes) -> str:
    """Unpadded base64url, the encoding Web Push uses for keys."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decodes base64url with or without padding; raises ValueError on anything else."""
    if not text or any(c not in _B64URL for c in text.rstrip("=")):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text.rstrip("=") + "=" * (-len(text.rstrip("=")) % 4))


_B64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


@dataclass(frozen=True)
class VapidKey:
    """The VAPID private key and the public key browsers subscribe with."""

    private_key: ec.EllipticCurvePrivateKey
    path: Path

    @property
    def public_key_raw(self) -> bytes:
        """The public key as an uncompressed P-256 point (65 bytes, 0x04 first)."""
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )

    @property
    def public_key_b64(self) -> str:
        """What ``PushManager.subscribe({applicationServerKey})`` wants, base64url."""
        return b64url(self.public_key_raw)


def load_vapid_key(data_dir: Path) -> VapidKey:
    """Reads ``vapid.pem`` from ``data_dir``, making it on first use.

    Creation is atomic and race-free between processes sharing the data directory: the
    key is written to a private temporary file and hard-linked into place, which fails if
    another process got there first; then everyone reads the one file.
    """
    path = data_dir / VAPID_KEY_FILE
    if not path.exists():
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(pem)
                f.flush()
                os.fsync(f.fileno())
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
                log.info("vapid key created", extra={"file": str(path)})
        finally:
            tmp.unlink(missing_ok=True)
    try:
        loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise RuntimeError(
            f"{path} is not an unencrypted PEM private key ({exc}); restore it from a backup "
            "or delete it to make a new one (every browser must then subscribe again)"
        ) from None
    if not isinstance(loaded, ec.EllipticCurvePrivateKey) or not isinstance(
        loaded.curve, ec.SECP256R1
    ):
        raise RuntimeError(
            f"{path} must hold an EC P-256 (prime256v1) key as VAPID requires; restore it "
            "from a backup or delete it to make a new one"
        )
    return VapidKey(loaded, path)

"""Secrets: generation, hashing of high-entropy tokens, constant-time comparison.

Only sha256 digests of admin keys, edge credentials and enrollment codes are stored.
A plain (unsalted) hash is enough because every secret here is random and long, or, for
enrollment codes, random, one-time and short-lived.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string

ADMIN_KEY_PREFIX = "lca_"
EDGE_CREDENTIAL_PREFIX = "lce_"

# Unambiguous when read aloud or typed: no 0/O, 1/I/L, U (Crockford-style, minus U).
ENROLLMENT_ALPHABET = "ABCDEFGHJKMNPQRSTVWXYZ23456789"
ENROLLMENT_GROUPS = 3
ENROLLMENT_GROUP_LENGTH = 4

_ID_ALPHABET = string.ascii_lowercase + string.digits


def new_admin_key() -> str:
    """`lca_` + 40 URL-safe random characters (240 bits)."""
    return ADMIN_KEY_PREFIX + secrets.token_urlsafe(30)


def new_edge_credential() -> str:
    """`lce_` + 43 URL-safe random characters (256 bits)."""
    return EDGE_CREDENTIAL_PREFIX + secrets.token_urlsafe(32)


def new_enrollment_code() -> str:
    """A one-time code such as `K7QM-3XHT-9WZB` (about 59 bits)."""
    groups = (
        "".join(secrets.choice(ENROLLMENT_ALPHABET) for _ in range(ENROLLMENT_GROUP_LENGTH))
        for _ in range(ENROLLMENT_GROUPS)
    )
    return "-".join(groups)


def normalize_enrollment_code(text: str) -> str:
    """Canonical form for hashing: upper case, without separators or spaces."""
    return "".join(c for c in text.upper() if c not in "- \t\r\n")


def new_camera_id() -> str:
    """8 lowercase letters and digits."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(8))


def new_viewer_identity() -> str:
    return "viewer-" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(10))


def hash_secret(value: str) -> str:
    """Hex sha256 of a high-entropy secret."""
    return hashlib.sha256(value.encode()).hexdigest()


def secrets_equal(a: str, b: str) -> bool:
    """Constant-time comparison."""
    return hmac.compare_digest(a.encode(), b.encode())

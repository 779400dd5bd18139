"""Password hashing with Argon2id (RFC 9106), via `cryptography`.

Stored form: `argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt b64>$<hash b64>`, so the
cost can be raised later and old hashes still verify.
"""

from __future__ import annotations

import base64
import hmac
import os

from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

# RFC 9106's second recommended option (64 MiB, 3 passes), 4 lanes.
MEMORY_KIB = 65536
ITERATIONS = 3
LANES = 4
SALT_BYTES = 16
HASH_BYTES = 32
MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def _derive(password: str, salt: bytes, memory: int, iterations: int, lanes: int) -> bytes:
    kdf = Argon2id(
        salt=salt,
        length=HASH_BYTES,
        iterations=iterations,
        lanes=lanes,
        memory_cost=memory,
    )
    return kdf.derive(password.encode())


def hash_password(password: str) -> str:
    """The stored form of `password` (a new random salt each time)."""
    salt = os.urandom(SALT_BYTES)
    digest = _derive(password, salt, MEMORY_KIB, ITERATIONS, LANES)
    return f"argon2id$v=19$m={MEMORY_KIB},t={ITERATIONS},p={LANES}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    """Whether `password` matches `stored`; False for a malformed stored hash."""
    try:
        algorithm, version, params, salt_b64, hash_b64 = stored.split("$")
        values = dict(item.split("=", 1) for item in params.split(","))
        memory, iterations, lanes = int(values["m"]), int(values["t"]), int(values["p"])
        salt, expected = _unb64(salt_b64), _unb64(hash_b64)
    except (ValueError, KeyError):
        return False
    if algorithm != "argon2id" or version != "v=19":
        return False
    if len(password) > MAX_PASSWORD_LENGTH:
        return False
    return hmac.compare_digest(_derive(password, salt, memory, iterations, lanes), expected)

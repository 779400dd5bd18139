"""Backup keys: random key files, passphrase-derived keys, and the keyring that holds them.

Two kinds of 256-bit key, both named by a 16-byte key id that every backup file carries
in its header (so a keyring finds the key a file needs, and old backups keep restoring
after the current key changed):

* **Key file** (``python -m app.backup keygen --key-file PATH``): 32 random bytes and a
  random key id, in a small text file created with mode 0600. A key file that group or
  others may read is refused: it may already have leaked.
* **Passphrase**: scrypt(passphrase, salt, n=2**17, r=8, p=1) → 32 bytes (128 MiB and
  about half a second here, per derivation). The salt and the cost parameters go into
  the header of every file; the key id is a hash of the derived key, so a wrong
  passphrase is told apart from a damaged file. One salt per backup run: a run derives
  once, not once per file.

A ``Keyring`` holds several keys. The *current* key encrypts new backups (the first key
file given, or the newest in a key directory; a passphrase when no key file is given);
any key in the ring decrypts. Rotation: make a new key file, put it first, keep the old
ones in the ring for as long as their backups are kept.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import stat
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from app.backup.errors import KeyFilePermissionError, KeyProblem, WrongKeyError

KEY_BYTES = 32
KEY_ID_BYTES = 16
SALT_BYTES = 16
KEY_FILE_MAGIC = "livecam-backup-key"
KEY_FILE_VERSION = 1
PASSPHRASE_ENV = "LIVECAM_BACKUP_PASSPHRASE"  # noqa: S105 (a variable name, not a secret)
MIN_PASSPHRASE_CHARS = 8

#: scrypt cost for new passphrase keys: 2**17 × 8 × 128 B = 128 MiB, ~0.5 s on one core.
DEFAULT_SCRYPT_LOG2_N = 17
DEFAULT_SCRYPT_R = 8
DEFAULT_SCRYPT_P = 1
#: The most memory a header may make us spend on scrypt. The header is authenticated only
#: after the key is derived, so a forged header must not be able to ask for gigabytes.
MAX_SCRYPT_MEMORY = 1024 * 1024 * 1024
MAX_SCRYPT_P = 16


@dataclass(frozen=True, slots=True)
class ScryptParams:
    """How a passphrase key was derived: stored in the header of every file it encrypts."""

    salt: bytes
    log2_n: int = DEFAULT_SCRYPT_LOG2_N
    r: int = DEFAULT_SCRYPT_R
    p: int = DEFAULT_SCRYPT_P

    def check(self) -> None:
        """Raises KeyProblem when the parameters are unusable or would cost too much."""
        if len(self.salt) != SALT_BYTES:
            raise KeyProblem(f"scrypt salt must be {SALT_BYTES} bytes, not {len(self.salt)}")
        if not (1 <= self.log2_n <= 30 and 1 <= self.r <= 255 and 1 <= self.p <= MAX_SCRYPT_P):
            raise KeyProblem(
                f"scrypt parameters out of range: n=2**{self.log2_n} r={self.r} p={self.p}"
            )
        memory = 128 * self.r * (1 << self.log2_n)
        if memory > MAX_SCRYPT_MEMORY:
            raise KeyProblem(
                f"scrypt parameters n=2**{self.log2_n} r={self.r} would need "
                f"{memory // 2**20} MiB; at most {MAX_SCRYPT_MEMORY // 2**20} MiB is allowed"
            )


@dataclass(frozen=True, slots=True)
class BackupKey:
    """A 256-bit key and its id. ``scrypt`` is set for passphrase keys (its salt and cost
    go into every header); ``origin`` says where the key came from, for messages."""

    key_id: bytes
    secret: bytes = field(repr=False)
    origin: str
    scrypt: ScryptParams | None = None
    created: str = ""

    def __post_init__(self) -> None:
        if len(self.secret) != KEY_BYTES:
            raise KeyProblem(f"{self.origin}: a key must be {KEY_BYTES} bytes")
        if len(self.key_id) != KEY_ID_BYTES:
            raise KeyProblem(f"{self.origin}: a key id must be {KEY_ID_BYTES} bytes")

    @property
    def key_id_hex(self) -> str:
        """The key id as 32 hex digits (how messages and ``list`` name a key)."""
        return self.key_id.hex()


def _utc_now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_random_key(origin: str = "random key") -> BackupKey:
    """A fresh random key with a random key id (in memory; ``generate_key_file`` saves
    one). Benchmarks and tests use it."""
    return BackupKey(
        key_id=secrets.token_bytes(KEY_ID_BYTES),
        secret=secrets.token_bytes(KEY_BYTES),
        origin=origin,
        created=_utc_now_text(),
    )


def generate_key_file(path: Path) -> BackupKey:
    """Creates a new random key in ``path`` (mode 0600) and returns it. Refuses to
    overwrite an existing file (KeyProblem): that would lose the key of every backup made
    with it."""
    key = new_random_key(f"key file {path}")
    text = (
        "# livecam backup key. Keep it secret, and keep a copy somewhere safe OFF this\n"
        "# machine: without it, the backups made with it cannot be restored.\n"
        f"{KEY_FILE_MAGIC}: {KEY_FILE_VERSION}\n"
        f"id: {key.key_id.hex()}\n"
        f"created: {key.created}\n"
        f"key: {key.secret.hex()}\n"
    )
    try:
        # O_EXCL: never replace a key; 0600 from the start, not chmod after the write.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeyProblem(
            f"{path} already exists; refusing to overwrite a key (backups made with it "
            "would become unrecoverable). Choose another path."
        ) from None
    except OSError as exc:
        raise KeyProblem(f"cannot create key file {path}: {exc.strerror}") from None
    try:
        os.write(fd, text.encode("ascii"))
        os.fsync(fd)
    except OSError as exc:
        os.close(fd)
        path.unlink(missing_ok=True)
        raise KeyProblem(f"cannot write key file {path}: {exc.strerror}") from None
    os.close(fd)
    _fsync_dir(path.parent)
    return key


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load_key_file(path: Path) -> BackupKey:
    """Reads a key file made by ``generate_key_file``. KeyFilePermissionError when group or
    others may read or write it; KeyProblem when it is missing or malformed."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise KeyProblem(f"key file {path} does not exist") from None
    except OSError as exc:
        raise KeyProblem(f"cannot read key file {path}: {exc.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise KeyProblem(f"key file {path} is not a regular file")
    if info.st_mode & 0o077:
        raise KeyFilePermissionError(
            f"key file {path} has mode {stat.S_IMODE(info.st_mode):04o}: group or others may "
            f"access it, so it may have leaked. Refusing to use it. If only you can have "
            f"read it, fix it with: chmod 600 {path}"
        )
    try:
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyProblem(f"cannot read key file {path}: {exc}") from None
    fields: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise KeyProblem(f"key file {path}: malformed line {line[:20]!r}")
        fields[name.strip()] = value.strip()
    if fields.get(KEY_FILE_MAGIC) != str(KEY_FILE_VERSION):
        raise KeyProblem(
            f"{path} is not a livecam backup key file (version {KEY_FILE_VERSION}); make one "
            "with: python -m app.backup keygen --key-file PATH"
        )
    try:
        key_id = bytes.fromhex(fields["id"])
        secret = bytes.fromhex(fields["key"])
    except (KeyError, ValueError):
        raise KeyProblem(f"key file {path}: the id or key line is missing or not hex") from None
    return BackupKey(key_id, secret, f"key file {path}", created=fields.get("created", ""))


def normalize_passphrase(passphrase: str) -> bytes:
    """The bytes scrypt gets: NFC-normalized UTF-8, so the same passphrase typed on another
    system (composed or decomposed accents) gives the same key."""
    if len(passphrase) < MIN_PASSPHRASE_CHARS:
        raise KeyProblem(f"the passphrase must have at least {MIN_PASSPHRASE_CHARS} characters")
    return unicodedata.normalize("NFC", passphrase).encode("utf-8")


def passphrase_key_id(secret: bytes) -> bytes:
    """The key id of a passphrase key: a hash of the derived key (reveals nothing usable
    about a 256-bit key, and lets a wrong passphrase be recognized as such)."""
    return hashlib.sha256(b"livecam-backup passphrase key id\x00" + secret).digest()[:KEY_ID_BYTES]


def derive_passphrase_key(passphrase: str, params: ScryptParams) -> BackupKey:
    """The key scrypt derives from ``passphrase`` with ``params`` (salt and cost)."""
    params.check()
    secret = Scrypt(
        salt=params.salt, length=KEY_BYTES, n=1 << params.log2_n, r=params.r, p=params.p
    ).derive(normalize_passphrase(passphrase))
    return BackupKey(passphrase_key_id(secret), secret, "passphrase", scrypt=params)


def new_passphrase_key(
    passphrase: str,
    log2_n: int = DEFAULT_SCRYPT_LOG2_N,
    r: int = DEFAULT_SCRYPT_R,
    p: int = DEFAULT_SCRYPT_P,
) -> BackupKey:
    """A passphrase key with a fresh random salt (one per backup run)."""
    return derive_passphrase_key(
        passphrase, ScryptParams(secrets.token_bytes(SALT_BYTES), log2_n, r, p)
    )


class Keyring:
    """The keys at hand: ``current`` encrypts, ``key_for`` finds the key a header names.

    ``keys`` are key-file keys, current first. ``passphrase`` (optional) adds passphrase
    keys: derived on demand for each salt a header names (cached), and used as the current
    key when there is no key file."""

    def __init__(
        self,
        keys: Sequence[BackupKey] = (),
        passphrase: str | None = None,
        *,
        scrypt_log2_n: int = DEFAULT_SCRYPT_LOG2_N,
    ) -> None:
        if not keys and passphrase is None:
            raise KeyProblem("no key: give --key-file, --key-dir or --passphrase")
        if passphrase is not None:
            normalize_passphrase(passphrase)  # refuse a too short one now, not mid-run
        self._keys: dict[bytes, BackupKey] = {}
        for key in keys:
            self._keys.setdefault(key.key_id, key)
        self._order = list(keys)
        self._passphrase = passphrase
        self._scrypt_log2_n = scrypt_log2_n
        self._derived: dict[ScryptParams, BackupKey] = {}
        self._current: BackupKey | None = self._order[0] if self._order else None

    @property
    def current(self) -> BackupKey:
        """The key new backups are encrypted with (a passphrase key gets one salt per
        Keyring, i.e. per run)."""
        if self._current is None:
            assert self._passphrase is not None
            key = new_passphrase_key(self._passphrase, log2_n=self._scrypt_log2_n)
            assert key.scrypt is not None
            self._derived[key.scrypt] = key
            self._current = key
        return self._current

    def adopt_passphrase_key(self, key_id: bytes, scrypt: ScryptParams) -> bool:
        """Makes an earlier run's passphrase key current when the passphrase still derives
        it (same salt, so this run can list that run's unchanged objects instead of
        storing them again). False when key files are given or the passphrase changed."""
        if self._order or self._passphrase is None or self._current is not None:
            return False
        try:
            self._current = self.key_for(key_id, scrypt)
        except WrongKeyError:
            return False
        return True

    def key_ids(self) -> list[str]:
        """Hex ids of the key-file keys, and "passphrase" when one is set (for messages)."""
        ids = [key.key_id_hex for key in self._order]
        if self._passphrase is not None:
            ids.append("passphrase")
        return ids

    def key_for(self, key_id: bytes, scrypt: ScryptParams | None) -> BackupKey:
        """The key with ``key_id``; for a passphrase header (``scrypt`` set) the key derived
        from the passphrase. WrongKeyError, naming the wanted key id, when none fits."""
        if scrypt is None:
            key = self._keys.get(key_id)
            if key is not None:
                return key
            raise WrongKeyError(
                f"this backup needs key id {key_id.hex()}, which is not in the keyring "
                f"(keys given: {', '.join(self.key_ids()) or 'none'}); add its key file "
                "with --key-file or --key-dir",
                key_id.hex(),
            )
        if self._passphrase is None:
            raise WrongKeyError(
                f"this backup was encrypted with a passphrase (key id {key_id.hex()}); "
                f"give it with --passphrase (from ${PASSPHRASE_ENV} or a prompt)",
                key_id.hex(),
            )
        derived = self._derived.get(scrypt)
        if derived is None:
            derived = derive_passphrase_key(self._passphrase, scrypt)
            self._derived[scrypt] = derived
        if not secrets.compare_digest(derived.key_id, key_id):
            raise WrongKeyError(
                f"wrong passphrase: this backup was encrypted with passphrase key id "
                f"{key_id.hex()}, the passphrase given derives {derived.key_id_hex}",
                key_id.hex(),
            )
        return derived


def load_keyring(
    key_files: Sequence[Path] = (),
    key_dirs: Sequence[Path] = (),
    passphrase: str | None = None,
) -> Keyring:
    """A keyring from key files (the first is current), key directories (every ``*.key``
    in them; the newest by its ``created`` line is current when no key file is given)
    and an optional passphrase."""
    keys = [load_key_file(path) for path in key_files]
    from_dirs: list[BackupKey] = []
    for directory in key_dirs:
        if not directory.is_dir():
            raise KeyProblem(f"key directory {directory} does not exist")
        found = [load_key_file(path) for path in sorted(directory.glob("*.key"))]
        if not found:
            raise KeyProblem(f"key directory {directory} holds no *.key file")
        from_dirs.extend(found)
    # Newest first; ties (same second) by origin, so the choice does not depend on luck.
    from_dirs.sort(key=lambda k: (k.created, k.origin), reverse=True)
    return Keyring([*keys, *from_dirs], passphrase)

"""Admin API keys: the bootstrap key created on first start, and key lookup."""

from __future__ import annotations

import logging
import os
import secrets
from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import AdminApiKey
from app.security import hash_secret, new_admin_key, secrets_equal

log = logging.getLogger(__name__)

ADMIN_KEY_FILE = "admin.key"


def has_active_admin_key(session: Session) -> bool:
    found = session.scalars(
        select(AdminApiKey.id).where(AdminApiKey.revoked_at.is_(None)).limit(1)
    ).first()
    return found is not None


def find_admin_key(session: Session, key: str) -> AdminApiKey | None:
    """The active admin key matching `key`, if any."""
    key_hash = hash_secret(key)
    row = session.scalars(
        select(AdminApiKey).where(
            AdminApiKey.key_hash == key_hash, AdminApiKey.revoked_at.is_(None)
        )
    ).one_or_none()
    if row is None or not secrets_equal(row.key_hash, key_hash):
        return None
    return row


def write_secret_file(path: Path, content: str) -> None:
    """Writes `content` to `path` with mode 0600, never through a pre-existing file.

    The file is created exclusively (O_CREAT|O_EXCL) under a random name in the same
    directory and renamed over `path`, so a symlink or a stale file at `path` is replaced,
    not followed.
    """
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            fd = -1
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        tmp.unlink(missing_ok=True)
        raise


def bootstrap_admin_key(session: Session, data_dir: Path, now: datetime) -> str | None:
    """Creates the first admin key when there is no active one; returns it, else None.

    Only its sha256 is stored; the key itself goes to `<data_dir>/admin.key` (mode 0600).
    """
    if has_active_admin_key(session):
        return None
    key = new_admin_key()
    path = data_dir / ADMIN_KEY_FILE
    write_secret_file(path, key + "\n")
    session.add(AdminApiKey(key_hash=hash_secret(key), name="bootstrap", created_at=now))
    session.commit()
    log.info("bootstrap admin key created", extra={"file": str(path)})
    return key


def banner(key: str, path: Path) -> str:
    """The one-time announcement of a new admin key, for stdout."""
    rule = "=" * 72
    return "\n".join(
        [
            rule,
            "livecam: created the first admin API key. It is shown only this once:",
            "",
            f"    {key}",
            "",
            f"It is also saved in {path} (mode 0600).",
            f"Send it as:  Authorization: Bearer {key[:8]}...",
            rule,
        ]
    )

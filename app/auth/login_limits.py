"""Login throttling: after N failures for a username or from an IP, refuse for M minutes.

Kept in memory (one server process); a restart forgets it, which only ever helps the
legitimate user. Both keys count, so spraying many usernames from one address and
guessing one username from many addresses are both slowed.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta

log = logging.getLogger(__name__)


@dataclass
class _Record:
    failures: list[datetime] = field(default_factory=list)
    locked_until: datetime | None = None


class LoginLimiter:
    """Counts failed sign-ins per key ("ip:…", "user:…") within the lockout window."""

    def __init__(self, max_failures: int, lockout: timedelta) -> None:
        self._max = max_failures
        self._lockout = lockout
        self._records: dict[str, _Record] = {}
        self._lock = threading.Lock()

    def locked_until(self, keys: list[str], now: datetime) -> datetime | None:
        """The latest lockout end among `keys` still in force, if any."""
        with self._lock:
            ends = [
                r.locked_until
                for k in keys
                if (r := self._records.get(k)) is not None
                and r.locked_until is not None
                and r.locked_until > now
            ]
        return max(ends) if ends else None

    def failed(self, keys: list[str], now: datetime) -> None:
        """Records one failure for each key; locks a key reaching the limit."""
        with self._lock:
            for key in keys:
                record = self._records.setdefault(key, _Record())
                record.failures = [t for t in record.failures if now - t < self._lockout]
                record.failures.append(now)
                if len(record.failures) >= self._max:
                    record.locked_until = now + self._lockout
                    record.failures.clear()
                    log.warning(
                        "sign-in locked after repeated failures",
                        extra={"key": key, "until": record.locked_until.isoformat()},
                    )

    def succeeded(self, keys: list[str]) -> None:
        """Forgets the failures of `keys` after a good sign-in."""
        with self._lock:
            for key in keys:
                self._records.pop(key, None)

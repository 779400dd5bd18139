"""What to delete so the recording fits: by age, by the disk budget, and by the reserve.

Rules, in this order:

1. Age: a segment is deleted once it ended ``max_age_days`` ago, or ``event_max_age_days``
   ago when it overlaps an event (protected); a clip ``event_max_age_days`` after it was
   written.
2. Pressure: while the footage uses more than ``max_gb`` (segments and clips together),
   or the file system has less free than the reserve (``min_free_gb`` or
   ``min_free_percent``; plus room for one more segment after a full disk), files go
   in this order: unprotected segments oldest first, then protected segments oldest
   first, then clips oldest first (a clip may not have reached the server yet).

The segment being written is never deleted. ``plan`` only decides (a pure function, so
the order is easy to test); the recorder deletes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from edge.record.settings import RecordSettings

DAY_US = 86_400 * 1_000_000


@dataclass(frozen=True, slots=True)
class Footage:
    """A file retention may delete."""

    kind: Literal["segment", "clip"]
    path: Path
    start_us: int
    end_us: int  # for a clip: when it was written
    bytes: int
    protected: bool = False  # overlaps an event (segments; clips are event footage anyway)
    segment_id: int | None = None


@dataclass(frozen=True, slots=True)
class Deletion:
    """One file to delete and why: "age", "budget" or "reserve"."""

    item: Footage
    reason: str


@dataclass(frozen=True, slots=True)
class Plan:
    """What to delete, and how many bytes would still be missing after that."""

    deletions: list[Deletion]
    shortfall: int  # > 0: even deleting every candidate does not meet budget and reserve


def plan(
    items: Sequence[Footage],
    settings: RecordSettings,
    *,
    now_us: int,
    free_bytes: int,
    total_bytes: int,
    extra_bytes: int = 0,
    in_use_bytes: int = 0,
) -> Plan:
    """Decide what to delete. ``items`` excludes the open segment, whose size is
    ``in_use_bytes``; ``extra_bytes`` is room wanted beyond the reserve."""
    deletions: list[Deletion] = []
    kept: list[Footage] = []
    for item in sorted(items, key=lambda f: (f.end_us, f.start_us)):
        long_kept = item.protected or item.kind == "clip"
        days = settings.event_max_age_days if long_kept else settings.max_age_days
        if item.end_us < now_us - days * DAY_US:
            deletions.append(Deletion(item, "age"))
            free_bytes += item.bytes
        else:
            kept.append(item)
    used = in_use_bytes + sum(f.bytes for f in kept)
    budget = settings.budget_bytes
    over_budget = used - budget if budget is not None else 0
    below_reserve = settings.reserve_bytes(total_bytes) + extra_bytes - free_bytes
    order = (
        [f for f in kept if f.kind == "segment" and not f.protected]
        + [f for f in kept if f.kind == "segment" and f.protected]
        + [f for f in kept if f.kind == "clip"]
    )
    for item in order:
        if over_budget <= 0 and below_reserve <= 0:
            break
        deletions.append(Deletion(item, "budget" if over_budget > 0 else "reserve"))
        over_budget -= item.bytes
        below_reserve -= item.bytes
    return Plan(deletions=deletions, shortfall=max(0, over_budget, below_reserve))

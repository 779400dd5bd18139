"""Retention decisions: age, budget, reserve, and the order files go in."""

from __future__ import annotations

from pathlib import Path

from edge.record.retention import DAY_US, Footage, plan
from edge.record.settings import GB, RecordSettings

NOW = 1_800_000_000_000_000
MB = 1_000_000


def seg(n: int, *, age_days: float, size: int = 100 * MB, protected: bool = False) -> Footage:
    end = NOW - round(age_days * DAY_US)
    return Footage("segment", Path(f"s{n}.mp4"), end - 60_000_000, end, size, protected, n)


def clip(n: int, *, age_days: float, size: int = 10 * MB) -> Footage:
    when = NOW - round(age_days * DAY_US)
    return Footage("clip", Path(f"c{n}.mp4"), when, when, size)


def names(p: object) -> list[str]:
    return [d.item.path.name for d in p.deletions]  # type: ignore[attr-defined]


ROOMY = {"free_bytes": 100 * GB, "total_bytes": 200 * GB}


def test_age_unprotected_after_max_age_protected_and_clips_after_event_max_age() -> None:
    s = RecordSettings(max_age_days=7, event_max_age_days=30)
    items = [
        seg(1, age_days=31, protected=True),
        seg(2, age_days=8),
        seg(3, age_days=8, protected=True),
        seg(4, age_days=6.9),
        clip(5, age_days=29),
        clip(6, age_days=31),
    ]
    p = plan(items, s, now_us=NOW, **ROOMY)
    assert names(p) == ["s1.mp4", "c6.mp4", "s2.mp4"]  # oldest first
    assert {d.reason for d in p.deletions} == {"age"}
    assert p.shortfall == 0


def test_budget_takes_unprotected_oldest_first_then_protected_then_clips() -> None:
    s = RecordSettings(max_gb=0.5, min_free_gb=0)
    items = [
        clip(0, age_days=5),
        seg(1, age_days=5, protected=True),
        seg(2, age_days=4),
        seg(3, age_days=3, protected=True),
        seg(4, age_days=2),
        seg(5, age_days=1),
    ]
    # 510 MB used + 50 MB open segment: 60 MB over the budget → one segment goes.
    p = plan(items, s, now_us=NOW, in_use_bytes=50 * MB, **ROOMY)
    assert names(p) == ["s2.mp4"]
    assert p.deletions[0].reason == "budget"
    # A budget of 0.1 GB: every unprotected segment, then protected ones, oldest first.
    p = plan(items, RecordSettings(max_gb=0.1, min_free_gb=0), now_us=NOW, **ROOMY)
    assert names(p) == ["s2.mp4", "s4.mp4", "s5.mp4", "s1.mp4", "s3.mp4"]
    # Nothing else left: clips go last, and a shortfall is reported when even that fails.
    p = plan(
        items, RecordSettings(max_gb=0.001, min_free_gb=0), now_us=NOW, in_use_bytes=2 * MB, **ROOMY
    )
    assert names(p)[-1] == "c0.mp4"
    assert len(p.deletions) == 6
    assert p.shortfall == 1 * MB


def test_reserve_in_gb_or_percent_and_extra_room() -> None:
    items = [seg(1, age_days=3), seg(2, age_days=2, protected=True), seg(3, age_days=1)]
    s = RecordSettings(min_free_gb=1.0)
    assert plan(items, s, now_us=NOW, free_bytes=GB, total_bytes=8 * GB).deletions == []
    p = plan(items, s, now_us=NOW, free_bytes=GB - 150 * MB, total_bytes=8 * GB)
    assert names(p) == ["s1.mp4", "s3.mp4"]
    assert {d.reason for d in p.deletions} == {"reserve"}
    # 10 % of 8 GB = 800 MB; after a full disk, room for one more 100 MB segment too.
    pct = RecordSettings(min_free_percent=10)
    assert plan(items, pct, now_us=NOW, free_bytes=800 * MB, total_bytes=8 * GB).deletions == []
    p = plan(items, pct, now_us=NOW, free_bytes=800 * MB, total_bytes=8 * GB, extra_bytes=100 * MB)
    assert names(p) == ["s1.mp4"]
    # Age deletions count towards the reserve.
    old = [*items, seg(0, age_days=9, size=500 * MB)]
    p = plan(old, s, now_us=NOW, free_bytes=GB - 400 * MB, total_bytes=8 * GB)
    assert names(p) == ["s0.mp4"]

"""``[camera.record]``: continuous recording, retention and event clips of one camera.

    [camera.record]             # optional; every key has a default
    enabled = true              # continuous segments (false: clips only, retention still runs)
    segment_s = 60              # a segment rolls at the first keyframe after this long
    max_age_days = 7            # segments without an event are deleted after this long
    event_max_age_days = 30     # segments overlapping an event (and clips) after this long
    max_gb = 0                  # disk budget for segments + clips, 10^9 bytes; 0: no budget
    min_free_gb = 1.0           # reserve kept free on the file system; or "5%" of its size
    fsync_s = 2.0               # fsync the open segment at most this often (0: every fragment)
    clips = true                # cut a clip for every event
    pre_roll_s = 5              # seconds of video before the event starts
    post_roll_s = 5             # seconds after it ends
    max_clip_s = 300            # a clip never gets longer than this

Recording is on by default: a camera that keeps nothing is a toy. A test harness that
runs many cameras at once turns it off per camera with ``enabled = false`` (clips are
separate: ``clips = false``).

Sizes are decimal gigabytes (10^9 bytes, as SD cards are sold). The reserve is
card-wide free space (statvfs): each camera's recorder deletes its own oldest footage
until the reserve is free again, and never writes into it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

GB = 1_000_000_000


@dataclass(frozen=True, slots=True)
class RecordSettings:
    """What and how long a camera records; validated on construction."""

    enabled: bool = True
    segment_s: float = 60.0
    max_age_days: float = 7.0
    event_max_age_days: float = 30.0
    max_gb: float = 0.0
    min_free_gb: float = 1.0
    min_free_percent: float | None = None  # when set, the reserve is this share instead
    fsync_s: float = 2.0
    clips: bool = True
    pre_roll_s: float = 5.0
    post_roll_s: float = 5.0
    max_clip_s: float = 300.0
    # Not in the config file: internal bounds, changed by tests and benchmarks.
    pre_roll_max_bytes: int = 32 * 1024 * 1024  # the pre-roll ring buffer never holds more
    queue_max_frames: int = 300  # frames waiting for the writer (10 s at 30 fps)
    queue_max_bytes: int = 64 * 1024 * 1024
    retention_interval_s: float = 60.0  # retention also runs this often between rolls
    retry_s: float = 5.0  # after a full disk, try again this often
    max_gap_s: float = 5.0  # a capture-time jump (either way) longer than this starts a segment

    def __post_init__(self) -> None:
        for key, (low, high) in NUMBER_RANGES.items():
            value = getattr(self, key)
            if value is None and key == "min_free_percent":
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"record.{key} must be a number, got {value!r}")
            if not low <= value <= high:
                raise ValueError(f"record.{key} must be in {low:g}..{high:g}, got {value!r}")
        if self.event_max_age_days < self.max_age_days:
            raise ValueError(
                f"record.event_max_age_days ({self.event_max_age_days:g}) must be ≥ "
                f"record.max_age_days ({self.max_age_days:g}): event footage is kept longer"
            )
        if self.post_roll_s + self.pre_roll_s >= self.max_clip_s:
            raise ValueError(
                f"record.max_clip_s ({self.max_clip_s:g}) must be longer than pre_roll_s + "
                f"post_roll_s ({self.pre_roll_s + self.post_roll_s:g})"
            )
        if self.pre_roll_max_bytes < 1024 * 1024 or self.queue_max_frames < 10:
            raise ValueError("pre_roll_max_bytes must be ≥ 1 MiB and queue_max_frames ≥ 10")

    def reserve_bytes(self, total_bytes: int) -> int:
        """The free space to keep on a file system of ``total_bytes``."""
        if self.min_free_percent is not None:
            return int(total_bytes * self.min_free_percent / 100)
        return int(self.min_free_gb * GB)

    @property
    def budget_bytes(self) -> int | None:
        """The most segments and clips may use together, or None (reserve only)."""
        return int(self.max_gb * GB) if self.max_gb > 0 else None


#: Config keys holding numbers: (minimum, maximum).
NUMBER_RANGES: dict[str, tuple[float, float]] = {
    "segment_s": (2.0, 3600.0),
    "max_age_days": (0.001, 3650.0),
    "event_max_age_days": (0.001, 3650.0),
    "max_gb": (0.0, 1_000_000.0),
    "min_free_gb": (0.0, 10_000.0),
    "min_free_percent": (0.0, 90.0),
    "fsync_s": (0.0, 60.0),
    "pre_roll_s": (0.0, 60.0),
    "post_roll_s": (0.0, 600.0),
    "max_clip_s": (2.0, 3600.0),
    "retention_interval_s": (0.01, 86400.0),
    "retry_s": (0.01, 3600.0),
    "max_gap_s": (0.5, 3600.0),
}
_FILE_NUMBERS = (
    "segment_s",
    "max_age_days",
    "event_max_age_days",
    "max_gb",
    "fsync_s",
    "pre_roll_s",
    "post_roll_s",
    "max_clip_s",
)
_BOOLS = ("enabled", "clips")
KEYS = frozenset((*_FILE_NUMBERS, *_BOOLS, "min_free_gb"))


def parse_record(raw: Any) -> RecordSettings:
    """Validate a camera's ``record`` table (already parsed TOML).

    Raises:
        ValueError: the message names the key (``record.<key>``) and what it must be.
    """
    if not isinstance(raw, Mapping):
        raise ValueError("`record` must be a table")
    unknown = sorted(set(raw) - KEYS)
    if unknown:
        raise ValueError(f"unknown key record.{unknown[0]}; known: {sorted(KEYS)}")
    values: dict[str, Any] = {}
    for key in _BOOLS:
        if key in raw:
            if not isinstance(raw[key], bool):
                raise ValueError(f"record.{key} must be true or false, got {raw[key]!r}")
            values[key] = raw[key]
    for key in _FILE_NUMBERS:
        if key in raw:
            values[key] = _number(key, raw[key])
    if "min_free_gb" in raw:
        reserve = raw["min_free_gb"]
        if isinstance(reserve, str):
            low, high = NUMBER_RANGES["min_free_percent"]
            try:
                percent = float(reserve.strip().removesuffix("%"))
            except ValueError:
                percent = -1.0
            if not reserve.strip().endswith("%") or not low <= percent <= high:
                raise ValueError(
                    f"record.min_free_gb must be a number of GB or a percentage "
                    f'{low:g}%..{high:g}% like "5%", got {reserve!r}'
                )
            values["min_free_percent"] = percent
        else:
            values["min_free_gb"] = _number("min_free_gb", reserve)
    return RecordSettings(**values)


def _number(key: str, value: Any) -> float:
    low, high = NUMBER_RANGES[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        hint = ' or a percentage like "5%"' if key == "min_free_gb" else ""
        raise ValueError(f"record.{key} must be a number in {low:g}..{high:g}{hint}, got {value!r}")
    return float(value)

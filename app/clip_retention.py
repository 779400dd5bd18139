"""Retention of clips on the server: by age, by a storage budget, and leftovers.

One pass (run by the event pruner's loop before it prunes events, so a clip leaves the
store before its event's row takes the clip row along):

1. Clips that started more than ``LIVECAM_CLIP_RETENTION_DAYS`` ago (or the event
   retention, if shorter: those events are about to go) are deleted from the database and
   the store; their events stay, with ``"clip": null`` (announced on the event bus).
2. With ``LIVECAM_MEDIA_MAX_GB`` > 0 (GB = 10^9 bytes), the oldest clips go until the
   rest fits.
3. Objects in the store that no clip row points at (a camera deleted with its events, a
   crash between storing and recording) are deleted once older than ``orphan_grace_s``;
   so are interrupted puts (temp files, S3 multipart uploads).
4. Unfinished uploads untouched for ``LIVECAM_UPLOAD_STALE_HOURS`` are removed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from app.clips import (
    CLIPS_FOLDER,
    ClipInfo,
    clips_before,
    detach_clip,
    oldest_clips,
    stored_keys,
    total_clip_bytes,
)
from app.db import SessionFactory
from app.events import EventIngest
from app.media_store import MediaStore
from app.uploads import UploadManager

log = logging.getLogger(__name__)

_BATCH = 200


@dataclass
class RetentionResult:
    """What one pass removed."""

    expired: int = 0
    expired_bytes: int = 0
    over_budget: int = 0
    over_budget_bytes: int = 0
    orphans: int = 0
    orphan_bytes: int = 0
    partial: int = 0
    stale_uploads: int = 0
    stale_bytes: int = 0

    @property
    def bytes_freed(self) -> int:
        return self.expired_bytes + self.over_budget_bytes + self.orphan_bytes + self.stale_bytes

    @property
    def anything(self) -> bool:
        return bool(
            self.expired or self.over_budget or self.orphans or self.partial or self.stale_uploads
        )


class ClipRetention:
    """One retention pass over clips, the media store and the staging directory."""

    def __init__(
        self,
        factory: SessionFactory,
        store: MediaStore,
        ingest: EventIngest,
        uploads: UploadManager,
        clock: Callable[[], datetime],
        *,
        retention_days: int,
        event_retention_days: int,
        max_bytes: int,
        orphan_grace_s: float = 3600.0,
    ) -> None:
        self._factory = factory
        self.store = store
        self._ingest = ingest
        self.uploads = uploads
        self._clock = clock
        self.retention = timedelta(days=min(retention_days, event_retention_days))
        self.max_bytes = max_bytes
        self.orphan_grace_s = orphan_grace_s

    async def run_once(self) -> RetentionResult:
        """One pass; logs what it removed."""
        result = RetentionResult()
        cutoff = self._clock() - self.retention
        result.expired, result.expired_bytes = await asyncio.to_thread(self._expire, cutoff)
        if self.max_bytes > 0:
            result.over_budget, result.over_budget_bytes = await asyncio.to_thread(self._fit_budget)
        result.orphans, result.orphan_bytes, result.partial = await asyncio.to_thread(
            self._sweep_orphans
        )
        result.stale_uploads, result.stale_bytes = await self.uploads.prune_stale()
        if result.anything:
            log.info(
                "clip retention",
                extra={
                    "expired": result.expired,
                    "over_budget": result.over_budget,
                    "orphans": result.orphans,
                    "partial": result.partial,
                    "stale_uploads": result.stale_uploads,
                    "bytes_freed": result.bytes_freed,
                    "cutoff": cutoff.isoformat(timespec="seconds"),
                    "store": self.store.kind,
                },
            )
        return result

    def _remove(self, clip: ClipInfo) -> bool:
        if not detach_clip(self._ingest, clip):
            return False
        self.store.delete(clip.storage_key)
        return True

    def _expire(self, cutoff: datetime) -> tuple[int, int]:
        count = freed = 0
        while True:
            batch = clips_before(self._factory, cutoff, _BATCH)
            removed = [c for c in batch if self._remove(c)]
            count += len(removed)
            freed += sum(c.size for c in removed)
            if len(batch) < _BATCH or not removed:
                return count, freed

    def _fit_budget(self) -> tuple[int, int]:
        count = freed = 0
        excess = total_clip_bytes(self._factory) - self.max_bytes
        while excess > 0:
            batch = oldest_clips(self._factory, _BATCH)
            progressed = False
            for clip in batch:
                if excess <= 0:
                    break
                if self._remove(clip):
                    progressed = True
                    count += 1
                    freed += clip.size
                    excess -= clip.size
            if not progressed:
                break
        return count, freed

    def _sweep_orphans(self) -> tuple[int, int, int]:
        # Keys first, objects second: an object stored after the keys were read is young
        # and protected by the grace period.
        known = stored_keys(self._factory)
        limit = time.time() - self.orphan_grace_s
        count = freed = 0
        for obj in list(self.store.list_objects(CLIPS_FOLDER)):
            if obj.key in known or obj.modified >= limit:
                continue
            if self.store.delete(obj.key):
                log.info("orphan media deleted", extra={"key": obj.key, "bytes": obj.size})
                count += 1
                freed += obj.size
        partial = self.store.sweep_partial(CLIPS_FOLDER, self.orphan_grace_s)
        return count, freed, partial

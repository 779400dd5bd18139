"""Continuous recording of one camera into fragmented MP4 segments, with retention.

    source thread ──on_frame──▶ bounded queue ──▶ worker thread: Fmp4Writer → segment files
                                                       └─ retention (on every roll, every
                                                          minute, after a full disk)

The source thread only appends to a queue. When the writer falls behind (a slow card),
the queue is bounded: frames are dropped, counted and logged, and recording goes on at
the next keyframe that fits (a GOP cannot be cut in the middle).

Segments start on a keyframe and roll at the first keyframe after ``segment_s``, when
the SPS (resolution, profile) changes, and when capture time jumps by more than
``max_gap_s`` (a source restarted). They are named ``<camera>-YYYYMMDDTHHMMSSZ.mp4``
(UTC of the first frame) in ``<directory>/segments/<YYYY-MM-DD>/`` and listed in
``<directory>/segments/index.sqlite3``.

Crash safety: see ``edge.record.files`` (fsync policy) and ``edge.record.repair``. On
``start`` the recorder repairs the segments a crash left open, records where they really
end, and then records into new segments.

A full disk (ENOSPC, also from SQLite) is logged once with the free space; the segment
is closed (repaired to its last whole fragment), retention makes room, and recording
pauses and tries again every ``retry_s``. Recording also pauses (rather than writing
into the reserve) when retention cannot free the reserve. Nothing of this raises.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.record.files import FileOpener, SyncedFile, disk_space, fsync_dir, is_disk_full
from edge.record.fmp4 import Fmp4Writer
from edge.record.index import SegmentIndex, SegmentRow
from edge.record.repair import media_span, repair
from edge.record.retention import Footage, plan
from edge.record.settings import RecordSettings
from edge.sources.base import CapturedFrame, wall_us

log = logging.getLogger("edge.record")

INDEX_NAME = "index.sqlite3"


@dataclass
class RecorderStats:
    """Counters since start (the heartbeat and tests read them)."""

    handled: int = 0  # frames the worker took from the queue
    frames: int = 0  # frames written into segments
    segments: int = 0  # segments opened
    dropped_frames: int = 0  # the queue was full (writer behind)
    skipped_frames: int = 0  # waiting for a keyframe, or paused (disk full)
    write_errors: int = 0  # a segment ended early because of an error
    disk_full: int = 0  # disk-full episodes
    repaired: int = 0  # segments repaired on start
    deleted: int = 0  # files deleted by retention


def segment_name(camera_id: str, start_us: int) -> tuple[str, str]:
    """(date directory, file name) of a segment starting at ``start_us``."""
    when = dt.datetime.fromtimestamp(start_us / 1e6, tz=dt.UTC)
    return when.strftime("%Y-%m-%d"), f"{camera_id}-{when.strftime('%Y%m%dT%H%M%SZ')}.mp4"


def parse_segment_start(name: str) -> int | None:
    """The start (µs, to the second) encoded in a segment's file name, or None."""
    stem = name.removesuffix(".mp4")
    for part in reversed(stem.split("-")):
        try:
            when = dt.datetime.strptime(part, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
        except ValueError:
            continue
        return int(when.timestamp()) * 1_000_000
    return None


class Recorder:
    """Records one camera; ``start`` it, feed ``on_frame`` from the source, ``close`` it."""

    def __init__(
        self,
        camera_id: str,
        directory: Path,
        settings: RecordSettings,
        *,
        opener: FileOpener = SyncedFile,
    ) -> None:
        self.camera_id = camera_id
        self.directory = directory
        self.settings = settings
        self.segments_dir = directory / "segments"
        self.clips_dir = directory / "clips"
        self.stats = RecorderStats()
        self.last_error: str | None = None
        self.disk_full = False
        self._opener = opener
        self._index: SegmentIndex | None = None
        self._cond = threading.Condition()
        self._queue: collections.deque[CapturedFrame] = collections.deque()
        self._queued_bytes = 0
        self._dropping = False
        self._accepting = False
        self._closing = False
        self._thread: threading.Thread | None = None
        self._protect_lock = threading.Lock()
        self._pending_protections: list[tuple[int, int]] = []
        # Worker-thread state.
        self._writer: Fmp4Writer | None = None
        self._segment_id: int | None = None
        self._segment_path: Path | None = None
        self._paused_until: float | None = None
        self._retention_due = 0.0
        self._stored_bytes = 0  # closed segments + clips, as of the last retention run
        self._free_bytes: int | None = None
        self._short_logged = False

    # -- life cycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Open the index, repair what a crash left, and start the worker thread.

        Blocks while repairing (demuxing a cut segment takes a moment): call it from a
        thread, not the event loop. Errors are logged and kept in ``last_error``; the
        recorder then records nothing but never raises into the camera.
        """
        if self._thread is not None:
            return
        try:
            self.segments_dir.mkdir(parents=True, exist_ok=True)
            self._index = SegmentIndex(self.segments_dir / INDEX_NAME)
            self._resume()
        except Exception as exc:
            self._error("start", exc)
            log.exception("recorder cannot start camera=%s", self.camera_id)
        self._closing = False
        self._retention_due = time.monotonic()  # at once: the card may be full already
        self._thread = threading.Thread(
            target=self._work, daemon=True, name=f"record-{self.camera_id}"
        )
        self._thread.start()
        self._accepting = self.settings.enabled and self._index is not None
        log.info(
            "recorder started camera=%s enabled=%s segment_s=%g dir=%s",
            self.camera_id,
            self.settings.enabled,
            self.settings.segment_s,
            self.segments_dir,
        )

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, finish the open segment (trailer, fsync) and stop."""
        self._accepting = False
        with self._cond:
            self._closing = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning(
                    "recorder still writing at close camera=%s timeout_s=%g",
                    self.camera_id,
                    timeout,
                )
                return
            self._thread = None
        if self._index is not None:
            self._index.close()
            self._index = None

    # -- any thread ------------------------------------------------------------------------

    def on_frame(self, frame: CapturedFrame) -> None:
        """Queue an access unit (source thread); never blocks."""
        if not self._accepting:
            return
        size = len(frame.au.data)
        s = self.settings
        with self._cond:
            full = len(self._queue) >= s.queue_max_frames or (
                self._queued_bytes + size > s.queue_max_bytes
            )
            if self._dropping and (full or not frame.au.keyframe):
                self.stats.dropped_frames += 1
                return
            if full:
                self._dropping = True
                self.stats.dropped_frames += 1
                dropped = self.stats.dropped_frames
            else:
                self._dropping = False
                self._queue.append(frame)
                self._queued_bytes += size
                self._cond.notify()
                return
        if dropped == 1 or dropped % 300 == 0:
            log.warning(
                "recorder behind camera=%s dropped_frames=%d action=resume-at-keyframe",
                self.camera_id,
                dropped,
            )

    def protect(self, start_us: int, end_us: int) -> None:
        """Keep the segments overlapping ``start_us``..``end_us`` (event footage) longer
        (``event_max_age_days``), and delete them last under disk pressure.

        Call it for each message of an event with the same start (e.g. its start minus the
        pre-roll) and the end known so far (``at_us`` or ``ended_us``, plus the post-roll):
        the range grows with the event. Any thread; it never blocks on the disk."""
        if end_us <= start_us:
            end_us = start_us + 1
        with self._protect_lock:
            self._pending_protections.append((start_us, end_us))
        with self._cond:
            self._cond.notify()  # the worker stores it

    @property
    def flushed_frames(self) -> int:
        """Frames of the open segment already in complete fragments in the file (what a
        ``kill -9`` cannot take away); 0 when no segment is open."""
        writer = self._writer
        return writer.frames_flushed if writer is not None else 0

    def health(self) -> dict[str, Any]:
        """Heartbeat fields."""
        writer = self._writer
        path = self._segment_path
        return {
            "recording": writer is not None and not self.disk_full,
            "segment": None if path is None or writer is None else path.name,
            "bytes_used": self._stored_bytes + (writer.bytes if writer is not None else 0),
            "free_bytes": self._free_bytes,
            "disk_full": self.disk_full,
            "dropped_frames": self.stats.dropped_frames,
            "last_error": self.last_error,
        }

    # -- worker thread ---------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            with self._cond:
                while not (
                    self._queue
                    or self._closing
                    or self._pending_protections
                    or time.monotonic() >= self._retention_due
                ):
                    self._cond.wait(max(0.0, self._retention_due - time.monotonic()))
                frame = self._queue.popleft() if self._queue else None
                if frame is not None:
                    self._queued_bytes -= len(frame.au.data)
                elif self._closing:
                    break
            try:
                self._store_protections()
                if frame is not None:
                    self._handle(frame)
                if time.monotonic() >= self._retention_due:
                    self._retention()
            except Exception as exc:  # a recorder bug must not stop recording for good
                self._error("worker", exc)
                log.exception("recorder error camera=%s", self.camera_id)
                self._abandon_segment()
            if frame is not None:
                self.stats.handled += 1
        try:
            self._close_segment("close")
            self._store_protections()
        except Exception as exc:
            self._error("close", exc)
            log.exception("recorder close failed camera=%s", self.camera_id)

    def _handle(self, frame: CapturedFrame) -> None:
        if self._paused_until is not None:
            if time.monotonic() < self._paused_until or not frame.au.keyframe:
                self.stats.skipped_frames += 1
                return
            self._paused_until = None
        writer = self._writer
        if writer is not None:
            reason = self._roll_reason(writer, frame)
            if reason is not None:
                self._close_segment(reason, None if reason == "gap" else frame.capture_us)
                writer = None
                if reason != "gap":
                    self._retention()
                elif not frame.au.keyframe:
                    self.stats.skipped_frames += 1
                    return
        if writer is None:
            if not frame.au.keyframe:
                self.stats.skipped_frames += 1
                return
            self._open_segment(frame)
            return
        try:
            writer.write(frame)
            self.stats.frames += 1
        except Exception as exc:
            self._write_failed(exc)
            return
        if self.disk_full and writer.bytes > 0:  # the first write after a full disk worked
            self.disk_full = False
            self._short_logged = False
            log.info(
                "recording resumed camera=%s segment=%s free_bytes=%s",
                self.camera_id,
                self._segment_path.name if self._segment_path else None,
                self._space(),
            )

    def _roll_reason(self, writer: Fmp4Writer, frame: CapturedFrame) -> str | None:
        step = frame.capture_us - writer.last_us
        if abs(step) > self.settings.max_gap_s * 1e6:
            return "gap"
        if not frame.au.keyframe:
            return None
        if frame.au.sps != writer.sps or (frame.au.width, frame.au.height) != (
            writer.width,
            writer.height,
        ):
            return "format"
        # Half a frame of slack: at 30 fps, 300 frames are 9.9999 s, and a 10 s segment
        # with a 1 s GOP should roll at frame 300, not 330.
        if (
            frame.capture_us - writer.first_us
            >= self.settings.segment_s * 1e6 - writer.frame_us / 2
        ):
            return "length"
        free = self._space()
        if free is not None and free < self._reserve():
            return "reserve"
        return None

    def _reserve(self) -> int:
        _, total = disk_space(self.segments_dir)
        return self.settings.reserve_bytes(total)

    def _space(self) -> int | None:
        try:
            self._free_bytes = disk_space(self.segments_dir)[0]
        except OSError:
            return None
        return self._free_bytes

    def _open_segment(self, frame: CapturedFrame) -> None:
        assert self._index is not None
        free = self._space()
        if free is not None and free < self._reserve():
            self._retention()
            free = self._space()
            if free is not None and free < self._reserve():
                self._pause_full(None, free)
                return
        day, name = segment_name(self.camera_id, frame.capture_us)
        folder = self.segments_dir / day
        path = folder / name
        n = 1
        while path.exists():  # two segments within a second (a format change)
            n += 1
            path = folder / f"{name.removesuffix('.mp4')}-{n}.mp4"
        row_id: int | None = None
        try:
            new_folder = not folder.exists()
            folder.mkdir(parents=True, exist_ok=True)
            if new_folder:
                fsync_dir(self.segments_dir)
            row_id = self._index.add(str(path.relative_to(self.directory)), frame.capture_us)
            file = self._opener(path, self.settings.fsync_s)
            try:
                fsync_dir(folder)  # the new name survives a power cut
                writer = Fmp4Writer(file, frame)
            except BaseException:
                file.close()
                raise
        except Exception as exc:
            if row_id is not None:  # nothing playable was written
                with contextlib.suppress(Exception):
                    path.unlink(missing_ok=True)
                    self._index.delete(row_id)
            self._write_failed(exc)
            return
        self._writer, self._segment_id, self._segment_path = writer, row_id, path
        self.stats.segments += 1
        self.stats.frames += 1
        log.info(
            "segment opened camera=%s segment=%s size=%dx%d",
            self.camera_id,
            path.name,
            frame.au.width,
            frame.au.height,
        )

    def _close_segment(self, reason: str, next_us: int | None = None) -> None:
        writer, segment_id, path = self._writer, self._segment_id, self._segment_path
        if writer is None or segment_id is None or path is None:
            return
        try:
            writer.close(next_us)
        except Exception as exc:
            self._write_failed(exc)
            return
        self._writer = None
        self._finish_row(segment_id, writer.end_us, writer.bytes, writer.frames)
        self._stored_bytes += writer.bytes
        log.info(
            "segment closed camera=%s segment=%s reason=%s frames=%d bytes=%d seconds=%.1f",
            self.camera_id,
            path.name,
            reason,
            writer.frames,
            writer.bytes,
            (writer.end_us - writer.first_us) / 1e6,
        )

    def _finish_row(self, segment_id: int, end_us: int, size: int, frames: int) -> None:
        assert self._index is not None
        try:
            self._index.finish(segment_id, end_us, size, frames)
        except Exception as exc:
            # The row stays unfinished: the next start repairs and completes it.
            self._error("index", exc)
            log.warning(
                "segment index not updated camera=%s error=%s action=repair-at-next-start",
                self.camera_id,
                exc,
            )

    def _abandon_segment(self) -> None:
        """Close the open segment after an error and cut it back to its last fragment."""
        writer, segment_id, path = self._writer, self._segment_id, self._segment_path
        self._writer = None
        if writer is None or segment_id is None or path is None:
            return
        writer.abandon()
        self._repair_segment(
            SegmentRow(
                segment_id, str(path.relative_to(self.directory)), writer.first_us, None, 0, 0
            )
        )

    def _write_failed(self, exc: BaseException) -> None:
        writer = self._writer
        file_error = writer.file.error if writer is not None else None
        full = is_disk_full(exc) or (file_error is not None and is_disk_full(file_error))
        self._abandon_segment()
        if full:
            free = self._space()
            self._pause_full(exc, free)
            return
        self.stats.write_errors += 1
        self._error("write", exc)
        log.warning(
            "segment write failed camera=%s error=%s action=new-segment-at-next-keyframe",
            self.camera_id,
            exc,
        )

    def _pause_full(self, exc: BaseException | None, free: int | None) -> None:
        """Disk full (or the reserve reached): make room, pause, retry every ``retry_s``."""
        if not self.disk_full:
            self.disk_full = True
            self.stats.disk_full += 1
            what = "disk full" if exc is not None else "disk reserve reached"
            self.last_error = f"{what}: {free} bytes free"
            log.error(
                "%s camera=%s free_bytes=%s reserve_bytes=%d action=pause retry_s=%g",
                what.replace(" ", "-"),
                self.camera_id,
                free,
                self._reserve(),
                self.settings.retry_s,
            )
        self._paused_until = time.monotonic() + self.settings.retry_s
        # Room for the next segment too, so that recording can go on after the pause.
        self._retention(extra_bytes=self._segment_estimate())

    def _segment_estimate(self) -> int:
        rows = self._index.segments() if self._index is not None else []
        sizes = [r.bytes for r in rows[-3:] if r.end_us is not None]
        return max(sizes, default=16 * 1024 * 1024)

    def _error(self, where: str, exc: BaseException) -> None:
        self.last_error = f"{where}: {type(exc).__name__}: {exc}"

    # -- resume ----------------------------------------------------------------------------

    def _resume(self) -> None:
        """Reconcile the index with the files, then repair segments left unfinished."""
        assert self._index is not None
        on_disk: dict[str, int] = {}
        for path in self.segments_dir.glob("*/*.mp4"):
            start = parse_segment_start(path.name)
            if start is not None:
                on_disk[str(path.relative_to(self.directory))] = start
        added = self._index.reconcile(on_disk)
        if added:
            log.info("segments found without index camera=%s count=%d", self.camera_id, len(added))
        for row in self._index.unfinished():
            self._repair_segment(row)

    def _repair_segment(self, row: SegmentRow) -> None:
        """Cut an unfinished segment back to its last fragment and record its real end; a
        segment with nothing playable is deleted."""
        assert self._index is not None
        path = self.directory / row.path
        try:
            result = repair(path)
            span = media_span(path) if result.playable else None
        except FileNotFoundError:
            self._index.delete(row.id)
            return
        except Exception as exc:
            self._error("repair", exc)
            log.warning(
                "segment not repairable camera=%s segment=%s error=%s action=delete",
                self.camera_id,
                path.name,
                exc,
            )
            span = None
        if span is None or span.frames == 0:
            path.unlink(missing_ok=True)
            self._index.delete(row.id)
            log.info("empty segment deleted camera=%s segment=%s", self.camera_id, path.name)
            return
        self._index.finish(row.id, row.start_us + span.end_us, result.size, span.frames)
        self.stats.repaired += 1
        log.info(
            "segment repaired camera=%s segment=%s cut_bytes=%d frames=%d seconds=%.1f",
            self.camera_id,
            path.name,
            result.cut_bytes,
            span.frames,
            span.duration_us / 1e6,
        )

    # -- retention -------------------------------------------------------------------------

    def _store_protections(self) -> None:
        with self._protect_lock:
            ranges, self._pending_protections = self._pending_protections, []
        if not ranges or self._index is None:
            return
        try:
            self._index.protect(ranges)
        except Exception as exc:
            with self._protect_lock:  # a full disk: keep them for the next try
                self._pending_protections[:0] = ranges
            self._error("protect", exc)

    def _retention(self, extra_bytes: int = 0) -> None:
        """Delete by age, budget and reserve (see ``edge.record.retention``)."""
        self._retention_due = time.monotonic() + self.settings.retention_interval_s
        index = self._index
        if index is None:
            return
        now = wall_us()
        try:
            index.prune_protections(now - round(self.settings.event_max_age_days * 86_400e6))
        except Exception as exc:
            self._error("retention", exc)  # a full disk; deleting files below frees it
        items = [
            Footage(
                "segment",
                self.directory / r.path,
                r.start_us,
                r.end_us if r.end_us is not None else r.start_us,
                r.bytes,
                r.protected,
                r.id,
            )
            for r in index.segments()
            if r.id != self._segment_id or self._writer is None
        ]
        items += self._clips()
        free, total = disk_space(self.segments_dir)
        in_use = self._writer.bytes if self._writer is not None else 0
        decided = plan(
            items,
            self.settings,
            now_us=now,
            free_bytes=free,
            total_bytes=total,
            extra_bytes=extra_bytes,
            in_use_bytes=in_use,
        )
        deleted = set()
        for deletion in decided.deletions:
            item = deletion.item
            try:
                item.path.unlink(missing_ok=True)
                if item.segment_id is not None:
                    index.delete(item.segment_id)
            except Exception as exc:  # OSError; SQLite on a full disk (the row goes later)
                self._error("retention", exc)
                log.warning(
                    "cannot delete camera=%s file=%s error=%s", self.camera_id, item.path, exc
                )
                continue
            deleted.add(item.path)
            self.stats.deleted += 1
            log.info(
                "%s deleted camera=%s file=%s reason=%s protected=%s bytes=%d",
                item.kind,
                self.camera_id,
                item.path.name,
                deletion.reason,
                item.protected,
                item.bytes,
            )
            if item.kind == "segment":
                self._remove_empty_folder(item.path.parent)
        self._stored_bytes = sum(f.bytes for f in items if f.path not in deleted)
        self._free_bytes = disk_space(self.segments_dir)[0]
        if decided.shortfall > 0 and not self._short_logged:
            self._short_logged = True
            log.warning(
                "retention cannot free enough camera=%s missing_bytes=%d free_bytes=%d",
                self.camera_id,
                decided.shortfall,
                self._free_bytes,
            )
        elif decided.shortfall <= 0:
            self._short_logged = False

    def _clips(self) -> list[Footage]:
        """Finished clips (``<event>.mp4``; files being written have other names)."""
        out: list[Footage] = []
        try:
            entries = list(os.scandir(self.clips_dir))
        except FileNotFoundError:
            return out
        for entry in entries:
            if not entry.name.endswith(".mp4") or entry.name.startswith("."):
                continue
            try:
                st = entry.stat()
            except FileNotFoundError:
                continue
            mtime = int(st.st_mtime * 1e6)
            out.append(Footage("clip", Path(entry.path), mtime, mtime, st.st_size))
        return out

    def _remove_empty_folder(self, folder: Path) -> None:
        if folder == self.segments_dir or folder.parent != self.segments_dir:
            return
        with contextlib.suppress(OSError):  # not empty
            folder.rmdir()

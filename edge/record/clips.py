"""Event clips: pre-roll + the event + post-roll, cut from the camera's own access units.

    source thread ──on_frame──▶ GopBuffer (pre-roll, whole GOPs)
                        └────▶ (while a clip is open) bounded queue ──▶ worker thread
    event pipeline ──on_event──▶ start: the clip begins at the buffer's keyframe at least
                                 pre_roll_s before the event started (or the oldest one)
                                 end: frames go on until the end + post_roll_s
                                 (capped at max_clip_s from the clip's first frame)

Each clip is written while it happens, as a fragmented MP4 (``.<event>.<first µs>.partial.mp4``,
crash-safe like a segment). When it is complete it is remuxed (codec copy, no re-encode)
into an MP4 with the index first (``+faststart``: a browser's ``<video>`` plays and seeks it
over range requests at once), fsynced, renamed to ``clips/<event_id>.mp4``, hashed
(SHA-256), and handed to ``on_clip`` on the worker thread; only then is the partial file
deleted. After a crash, ``start`` finishes the partial clips it finds (and announces a
clip again whose partial file was still there: ``on_clip`` must accept a repeat).

Overlapping events each get their own clip. ``close`` finishes open clips with what they
have. Clips count towards the recorder's disk budget (``Recorder`` reads ``clips/``) and
are kept ``event_max_age_days``; an uploader may delete a clip once the server has it.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import logging
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av

from edge.events.message import EventMessage
from edge.record.files import FileOpener, SyncedFile, fsync_dir, is_disk_full
from edge.record.fmp4 import Fmp4Writer
from edge.record.preroll import GopBuffer
from edge.record.repair import media_span, repair
from edge.record.settings import RecordSettings
from edge.sources.base import CapturedFrame, wall_us

log = logging.getLogger("edge.record")

#: A clip waits this long past its end (or its length cap) for frames that are late.
GRACE_US = 2_000_000
#: The pre-roll buffer reaches this much further back than ``pre_roll_s``: an event starts
#: when the first picture showed it, and the tracker reports it a moment later.
EVENT_LAG_S = 5.0
_PARTIAL = re.compile(r"^\.(?P<event>[A-Za-z0-9_-]{1,64})\.(?P<first>\d+)\.partial\.mp4$")
_EVENT_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True, slots=True)
class ClipFile:
    """A finished clip on disk."""

    event_id: str
    path: Path
    size: int
    sha256: str
    started_us: int  # capture time of the first frame (a keyframe, before the event)
    ended_us: int  # where the last frame ends
    duration_s: float


ClipCallback = Callable[[ClipFile], None]


@dataclass
class CutterStats:
    """Counters since start."""

    clips: int = 0  # clips handed to on_clip
    failed: int = 0  # clips lost to an error (disk full...)
    dropped_frames: int = 0  # the queue was full
    recovered: int = 0  # partial clips finished after a crash


class _Clip:
    """One clip being written (worker thread)."""

    def __init__(self, event_id: str, event_start_us: int, max_us: int) -> None:
        self.event_id = event_id
        self.event_start_us = event_start_us
        self.max_us = max_us
        self.deadline_us: int | None = None  # last capture time that belongs in the clip
        self.writer: Fmp4Writer | None = None
        self.path: Path | None = None  # the partial file
        self.resync = False  # frames were lost: skip to the next keyframe
        self.done = False  # finished or failed: takes no more frames

    def cap_us(self) -> int | None:
        """Capture time after which no frame belongs in the clip."""
        if self.writer is None:
            return self.deadline_us
        cap = self.writer.first_us + self.max_us - 1  # max_clip_s long, not a frame more
        return cap if self.deadline_us is None else min(cap, self.deadline_us)


def faststart_copy(src: Path, dst: Path) -> None:
    """Remux ``src`` into ``dst`` with the index first (codec copy) and fsync it."""
    with (
        av.open(str(src)) as inp,
        av.open(str(dst), "w", format="mp4", options={"movflags": "+faststart"}) as out,
    ):
        stream = inp.streams.video[0]
        target = out.add_stream_from_template(stream)
        for packet in inp.demux(stream):
            if packet.dts is None:
                continue
            packet.stream = target
            out.mux(packet)
    fd = os.open(dst, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def file_sha256(path: Path) -> tuple[int, str]:
    """(size, SHA-256 hex) of ``path``, read in chunks."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while chunk := f.read(1024 * 1024):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


class ClipCutter:
    """Cuts one camera's event clips; ``start``, feed ``on_frame`` and ``on_event``, ``close``."""

    def __init__(
        self,
        camera_id: str,
        directory: Path,
        settings: RecordSettings,
        on_clip: ClipCallback,
        *,
        opener: FileOpener = SyncedFile,
    ) -> None:
        self.camera_id = camera_id
        self.directory = directory
        self.clips_dir = directory / "clips"
        self.settings = settings
        self.on_clip = on_clip
        self.stats = CutterStats()
        self.last_error: str | None = None
        self._opener = opener
        self._lock = threading.Condition()
        self._buffer = GopBuffer(settings.pre_roll_s + EVENT_LAG_S, settings.pre_roll_max_bytes)
        self._queue: collections.deque[tuple[str, Any]] = collections.deque()
        self._queued_bytes = 0
        self._lost = False  # frames were dropped since the last one queued
        self._active: set[str] = set()  # events with a clip not yet finished
        self._seen: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._accepting = False
        self._closing = False
        self._thread: threading.Thread | None = None
        self._clips: dict[str, _Clip] = {}  # worker thread only

    # -- life cycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Start the worker (which first finishes clips a crash left behind)."""
        if self._thread is not None or not self.settings.clips:
            return
        self._closing = False
        self._accepting = True
        self._thread = threading.Thread(
            target=self._work, daemon=True, name=f"clips-{self.camera_id}"
        )
        self._thread.start()

    def close(self, timeout: float = 10.0) -> None:
        """Finish every open clip with the frames it has, then stop."""
        self._accepting = False
        with self._lock:
            self._closing = True
            self._lock.notify()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("clips still being written at close camera=%s", self.camera_id)
                return
            self._thread = None

    @property
    def active(self) -> int:
        """Clips being cut right now."""
        return len(self._active)

    # -- source and event threads ----------------------------------------------------------

    def on_frame(self, frame: CapturedFrame) -> None:
        """Keep the access unit for pre-roll and feed open clips (source thread; cheap)."""
        if not self._accepting:
            return
        with self._lock:
            self._buffer.append(frame)
            if not self._active:
                return
            size = len(frame.au.data)
            s = self.settings
            if (
                len(self._queue) >= s.queue_max_frames
                or self._queued_bytes + size > s.queue_max_bytes
            ):
                self.stats.dropped_frames += 1
                self._lost = True
                if self.stats.dropped_frames == 1 or self.stats.dropped_frames % 300 == 0:
                    log.warning(
                        "clip writer behind camera=%s dropped_frames=%d",
                        self.camera_id,
                        self.stats.dropped_frames,
                    )
                return
            if self._lost:  # the clips resume at the next keyframe
                self._lost = False
                self._queue.append(("lost", None))
            self._queue.append(("frame", frame))
            self._queued_bytes += size
            self._lock.notify()

    def on_event(self, message: EventMessage) -> None:
        """``start`` opens a clip with pre-roll; ``end`` schedules its post-roll; ``update``
        changes nothing. Unknown or repeated phases are ignored."""
        if not self._accepting:
            return
        event_id = message.event_id
        if not _EVENT_ID.match(event_id):
            log.warning("clip refused camera=%s event=%r reason=bad-id", self.camera_id, event_id)
            return
        with self._lock:
            if message.phase == "start":
                if event_id in self._seen:
                    return
                self._seen[event_id] = None
                while len(self._seen) > 1000:
                    self._seen.popitem(last=False)
                start = message.started_us - round(self.settings.pre_roll_s * 1e6)
                preroll = self._buffer.since(start)
                self._active.add(event_id)
                self._queue.append(("open", (event_id, message.started_us, preroll)))
            elif message.phase == "end" and event_id in self._active:
                ended = message.ended_us if message.ended_us is not None else message.at_us
                deadline = ended + round(self.settings.post_roll_s * 1e6)
                self._queue.append(("end", (event_id, deadline)))
            else:
                return
            self._lock.notify()

    def health(self) -> dict[str, Any]:
        """Heartbeat fields."""
        return {
            "clips_active": len(self._active),
            "clips_made": self.stats.clips,
            "clips_failed": self.stats.failed,
            "clip_error": self.last_error,
        }

    # -- worker thread ---------------------------------------------------------------------

    def _work(self) -> None:
        try:
            self._recover()
        except Exception as exc:
            self.last_error = f"recover: {exc}"
            log.exception("clip recovery failed camera=%s", self.camera_id)
        while True:
            with self._lock:
                while not self._queue and not self._closing:
                    timeout = self._next_timeout()
                    if timeout is not None and timeout <= 0:
                        break
                    self._lock.wait(None if timeout is None else timeout + 0.01)
                item = self._queue.popleft() if self._queue else None
                if item is not None and item[0] == "frame":
                    self._queued_bytes -= len(item[1].au.data)
                closing = self._closing and item is None
            try:
                if item is not None:
                    self._handle(*item)
                self._expire()
            except Exception as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("clip cutter error camera=%s", self.camera_id)
            if closing:
                break
        for clip in list(self._clips.values()):
            self._finish(clip, "close")

    def _next_timeout(self) -> float | None:
        """Seconds until an open clip is overdue (frames stopped coming), or None."""
        caps = [c.cap_us() for c in self._clips.values()]
        due = [cap + GRACE_US for cap in caps if cap is not None]
        if not due:
            return None
        return (min(due) - wall_us()) / 1e6

    def _expire(self) -> None:
        """Finish clips whose end passed long ago by the wall clock (no frames came)."""
        if self._queue:
            return  # frames are waiting: they decide (the worker is behind, not the camera)
        now = wall_us()
        for clip in list(self._clips.values()):
            cap = clip.cap_us()
            if cap is not None and now >= cap + GRACE_US:
                self._finish(clip, "no-frames")

    def _handle(self, kind: str, payload: Any) -> None:
        if kind == "frame":
            for clip in list(self._clips.values()):
                self._feed(clip, payload)
        elif kind == "open":
            event_id, event_start_us, preroll = payload
            clip = _Clip(event_id, event_start_us, round(self.settings.max_clip_s * 1e6))
            self._clips[event_id] = clip
            for frame in preroll:
                self._feed(clip, frame)
            log.info(
                "clip started camera=%s event=%s preroll_frames=%d preroll_s=%.1f",
                self.camera_id,
                event_id,
                len(preroll),
                (event_start_us - preroll[0].capture_us) / 1e6 if preroll else 0.0,
            )
        elif kind == "end":
            event_id, deadline = payload
            ending = self._clips.get(event_id)
            if ending is not None:
                ending.deadline_us = deadline
        elif kind == "lost":
            for clip in self._clips.values():
                clip.resync = True

    def _feed(self, clip: _Clip, frame: CapturedFrame) -> None:
        if clip.done:
            return
        cap = clip.cap_us()
        if cap is not None and frame.capture_us > cap:
            self._finish(clip, "complete")
            return
        if clip.resync or clip.writer is None:
            if not frame.au.keyframe:
                return
            clip.resync = False
        try:
            if clip.writer is None:
                self.clips_dir.mkdir(parents=True, exist_ok=True)
                clip.path = self.clips_dir / f".{clip.event_id}.{frame.capture_us}.partial.mp4"
                file = self._opener(clip.path, self.settings.fsync_s)
                try:
                    clip.writer = Fmp4Writer(file, frame)
                except BaseException:
                    file.close()
                    raise
            else:
                clip.writer.write(frame)
        except Exception as exc:
            self._fail(clip, exc)

    def _fail(self, clip: _Clip, exc: BaseException) -> None:
        clip.done = True
        self._clips.pop(clip.event_id, None)
        with self._lock:
            self._active.discard(clip.event_id)
        if clip.writer is not None:
            clip.writer.abandon()
        if clip.path is not None:
            clip.path.unlink(missing_ok=True)
        self.stats.failed += 1
        reason = "disk-full" if is_disk_full(exc) else "error"
        self.last_error = f"clip {clip.event_id}: {type(exc).__name__}: {exc}"
        log.error(
            "clip lost camera=%s event=%s reason=%s error=%s",
            self.camera_id,
            clip.event_id,
            reason,
            exc,
        )

    def _finish(self, clip: _Clip, reason: str) -> None:
        """Close the partial file, make the final clip and announce it."""
        clip.done = True
        self._clips.pop(clip.event_id, None)
        with self._lock:
            self._active.discard(clip.event_id)
        writer, partial = clip.writer, clip.path
        if writer is None or partial is None:
            log.info(
                "clip without frames camera=%s event=%s reason=%s",
                self.camera_id,
                clip.event_id,
                reason,
            )
            return
        try:
            writer.close()
            self._publish(clip.event_id, partial, writer.first_us, writer.end_us)
        except Exception as exc:
            self._fail(clip, exc)
            return
        log.info(
            "clip stored camera=%s event=%s reason=%s frames=%d seconds=%.1f",
            self.camera_id,
            clip.event_id,
            reason,
            writer.frames,
            (writer.end_us - writer.first_us) / 1e6,
        )

    def _publish(self, event_id: str, partial: Path, started_us: int, ended_us: int) -> None:
        final = self.clips_dir / f"{event_id}.mp4"
        tmp = self.clips_dir / f".{event_id}.tmp.mp4"
        try:
            faststart_copy(partial, tmp)
            tmp.replace(final)
        finally:
            tmp.unlink(missing_ok=True)
        fsync_dir(self.clips_dir)
        self._announce(event_id, final, started_us, ended_us)
        partial.unlink(missing_ok=True)

    def _announce(self, event_id: str, final: Path, started_us: int, ended_us: int) -> None:
        size, sha = file_sha256(final)
        clip = ClipFile(
            event_id=event_id,
            path=final,
            size=size,
            sha256=sha,
            started_us=started_us,
            ended_us=ended_us,
            duration_s=round((ended_us - started_us) / 1e6, 3),
        )
        self.stats.clips += 1
        try:
            self.on_clip(clip)
        except Exception as exc:
            self.last_error = f"on_clip: {exc}"
            log.exception("clip callback failed camera=%s event=%s", self.camera_id, event_id)
        log.info(
            "clip ready camera=%s event=%s bytes=%d seconds=%.1f",
            self.camera_id,
            event_id,
            size,
            clip.duration_s,
        )

    # -- after a crash ---------------------------------------------------------------------

    def _recover(self) -> None:
        """Finish the partial clips a crash left: cut to the last fragment, remux, announce."""
        if not self.clips_dir.is_dir():
            return
        for path in sorted(self.clips_dir.iterdir()):
            if path.name.endswith(".tmp.mp4") and path.name.startswith("."):
                path.unlink(missing_ok=True)
                continue
            match = _PARTIAL.match(path.name)
            if match is None:
                continue
            event_id, first_us = match["event"], int(match["first"])
            final = self.clips_dir / f"{event_id}.mp4"
            try:
                if final.exists():  # renamed, maybe not announced: announce again
                    done = media_span(final)
                    self._announce(event_id, final, first_us, first_us + done.end_us)
                    path.unlink(missing_ok=True)
                    continue
                result = repair(path)
                span = media_span(path) if result.playable else None
                if span is None or span.frames == 0:
                    path.unlink(missing_ok=True)
                    log.info("partial clip empty camera=%s event=%s", self.camera_id, event_id)
                    continue
                self._publish(event_id, path, first_us, first_us + span.end_us)
                self.stats.recovered += 1
                log.info(
                    "partial clip recovered camera=%s event=%s frames=%d cut_bytes=%d",
                    self.camera_id,
                    event_id,
                    span.frames,
                    result.cut_bytes,
                )
            except Exception as exc:
                self.stats.failed += 1
                self.last_error = f"recover {event_id}: {exc}"
                log.warning(
                    "partial clip not recoverable camera=%s event=%s error=%s",
                    self.camera_id,
                    event_id,
                    exc,
                )
                with contextlib.suppress(OSError):
                    path.unlink()

"""Runs one camera: its source thread, its LiveKit publisher, its heartbeats, the control
link that asks it for JPEGs (MJPEG, snapshots) only while someone watches and sends its
zones, and its events: analysis pictures → motion → objects → tracker → outbox → server.

    source thread ──access units──▶ publisher (LiveKit)
          │ pictures or access units
          ▼
    analysis stage (decode/scale) ──▶ JPEG tap (while wanted; masks applied) ──▶ control link
          └──────────────────────▶ event pipeline (while detection is enabled)
                                      motion → detector → tracker → outbox ──▶ delivery
                                                                      │ events
    source thread ──access units──▶ recorder (fMP4 segments)           ▼
                   └─────────────▶ clip cutter (pre-roll buffer) ──▶ upload queue ──▶ uploader

The source thread is restarted with backoff when it fails or stalls, so a camera that
vanishes or a corrupt stream is logged and retried, and never takes the process (or
the other cameras) down.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from pathlib import Path
from typing import Any

from edge import __version__
from edge.analysis import AnalysisStage, PictureOutput
from edge.backoff import Backoff
from edge.control import PATH as CONTROL_PATH
from edge.control import ControlChannel
from edge.detect.types import ObjectDetector
from edge.detect.zones import ZoneState
from edge.events.delivery import EventDelivery
from edge.events.message import EventMessage
from edge.events.outbox import Depth, Outbox
from edge.events.pipeline import DetectSettings, EventPipeline
from edge.jpeg import JpegTap
from edge.metrics import ProcessCpu, RateMeter, cpu_temperature_c
from edge.pion_publisher import PionPublisher
from edge.publisher import LiveKitPublisher, Publisher
from edge.record.clips import ClipCutter, ClipFile
from edge.record.recorder import Recorder
from edge.record.settings import RecordSettings
from edge.sources.base import (
    CapturedFrame,
    FatalSourceError,
    PictureSource,
    Source,
    SourceError,
)
from edge.uplink import CredentialRejected, ServerClient, ServerError
from edge.uploads.queue import UploadDepth, UploadQueue
from edge.uploads.ratelimit import TokenBucket
from edge.uploads.sender import ClipUploader

log = logging.getLogger("edge.camera")


class CameraRunner:
    """Owns everything for one camera id."""

    def __init__(
        self,
        camera_id: str,
        source: Source,
        server: ServerClient,
        *,
        data_dir: Path,
        heartbeat_interval_s: float = 5.0,
        stall_timeout_s: float = 15.0,
        cpu: ProcessCpu | None = None,
        detect: DetectSettings | None = None,
        detector: ObjectDetector | None = None,
        detector_lock: threading.Lock | None = None,
        record: RecordSettings | None = None,
        upload_bucket: TokenBucket | None = None,
        upload_chunk_bytes: int = 1 << 20,
        pionpub: Path | None = None,
    ) -> None:
        self.camera_id = camera_id
        self.source = source
        self.server = server
        self.heartbeat_interval_s = heartbeat_interval_s
        self.stall_timeout_s = stall_timeout_s
        self.detect = detect or DetectSettings()
        self.meter = RateMeter()
        # pionpub given (config `publisher` "pion", or "auto" with pionpub installed):
        # publish through it, else through libwebrtc.
        self.publisher: Publisher = (
            PionPublisher(camera_id, server.edge_token, source.request_keyframe, binary=pionpub)
            if pionpub is not None
            else LiveKitPublisher(
                camera_id,
                server.edge_token,
                source.request_keyframe,
                can_force_keyframe=source.can_force_keyframe,
            )
        )
        state_dir = data_dir / camera_id
        # Masks saved by the last run apply from the first picture, server or not.
        self.zones = ZoneState(camera_id, state_dir / "zones.json")
        # Pictures from the source's own when it has them, else from decoded H.264.
        pictures = source if isinstance(source, PictureSource) else None
        self.analysis = AnalysisStage(camera_id, decode=pictures is None)
        if pictures is not None:
            pictures.set_picture_sink(self.analysis)
        self.jpeg = JpegTap(self.analysis, self._offer_jpeg, picture_filter=self.zones.apply_masks)
        self.outbox = Outbox(state_dir / "outbox.sqlite3", camera_id=camera_id)
        self.delivery = EventDelivery(camera_id, self.outbox, server.post_event)
        self.record = record or RecordSettings()
        # Also when recording is off: it still keeps the clips under retention.
        self.recorder: Recorder | None = Recorder(camera_id, state_dir, self.record)
        # Clips need events: without detection there is nothing to cut them for.
        self.clips = (
            ClipCutter(camera_id, state_dir, self.record, self._on_clip)
            if self.record.clips and self.detect.enabled
            else None
        )
        # Clips wait in the same database as the event messages, in their own table.
        self.uploads = UploadQueue(state_dir / "outbox.sqlite3")
        self.uploader = ClipUploader(
            camera_id,
            self.uploads,
            server,
            bucket=upload_bucket,
            chunk_bytes=upload_chunk_bytes,
            event_pending=self.outbox.event_pending,
        )
        self._upload_depth = UploadDepth(queued=0, bytes_left=0, oldest_s=None, dead=0)
        self.events: EventPipeline | None = None
        self.analysis_pictures: PictureOutput | None = None
        if self.detect.enabled:
            self.events = EventPipeline(
                camera_id,
                self.detect,
                self.zones,
                self.outbox,
                detector,
                on_enqueued=self.delivery.notify,
                on_messages=self._on_event_messages,
                detector_lock=detector_lock,
            )
            self.analysis_pictures = self.analysis.add_output(
                "events", self.events.offer, fps=self.detect.fps, max_width=self.detect.width
            )
        self.control = ControlChannel(
            camera_id,
            server.websocket_url(CONTROL_PATH),
            server.auth_headers,
            self.jpeg,
            on_zones=self.zones.update,
        )
        self._depth = Depth(queued=0, oldest_s=None, dead=0, snapshot_bytes=0)
        self.source_error: str | None = None
        self._cpu = cpu or ProcessCpu()
        self._started = time.monotonic()
        self._source_stop = threading.Event()
        self._source_ended = threading.Event()

    def _sink(self, frame: CapturedFrame) -> None:
        self.meter.on_frame(frame)
        self.publisher.on_frame(frame)
        self.analysis.on_frame(frame)
        if self.recorder is not None:
            self.recorder.on_frame(frame)
        if self.clips is not None:
            self.clips.on_frame(frame)

    def _on_event_messages(self, messages: list[EventMessage]) -> None:
        """Events (on disk in the outbox) open and close clips and protect recordings."""
        for message in messages:
            if self.clips is not None:
                self.clips.on_event(message)
            if self.recorder is not None:
                # Every message: the range grows with the event, so a long event's
                # footage is safe from the budget while it still runs.
                ended = message.ended_us if message.ended_us is not None else message.at_us
                self.recorder.protect(
                    message.started_us - round(self.record.pre_roll_s * 1e6),
                    ended + round(self.record.post_roll_s * 1e6),
                )

    def _on_clip(self, clip: ClipFile) -> None:
        """A clip is finished on disk (the cutter's thread): queue it for upload."""
        try:
            self.uploads.add(
                event_id=clip.event_id,
                path=clip.path,
                size=clip.size,
                sha256=clip.sha256,
                started_us=clip.started_us,
                ended_us=clip.ended_us,
                duration_s=clip.duration_s,
            )
        except Exception:
            log.exception(
                "clip not queued camera=%s event=%s path=%s action='the file stays on disk'",
                self.camera_id,
                clip.event_id,
                clip.path,
            )
            return
        log.info(
            "clip queued camera=%s event=%s bytes=%d duration_s=%.1f",
            self.camera_id,
            clip.event_id,
            clip.size,
            clip.duration_s,
        )
        self.uploader.notify()

    def _offer_jpeg(self, jpeg: bytes, capture_us: int) -> None:
        self.control.offer_jpeg(jpeg, capture_us)

    # -- the source thread ---------------------------------------------------------------

    def _source_loop(self, stop: threading.Event) -> None:
        backoff = Backoff(first=1.0, cap=30.0)
        while not stop.is_set():
            self._source_stop = run_stop = threading.Event()
            try:
                self.source.run(self._sink, run_stop)
                if not stop.is_set() and not run_stop.is_set():
                    log.info("source finished camera=%s kind=%s", self.camera_id, self.source.kind)
                    self._source_ended.set()
                    return
                backoff.reset()
                continue
            except FatalSourceError as exc:
                self.source_error = str(exc)
                log.error(
                    "source cannot work camera=%s kind=%s error=%s retry_s=60",
                    self.camera_id,
                    self.source.kind,
                    exc,
                )
                delay = 60.0
            except SourceError as exc:
                self.source_error = str(exc)
                delay = backoff.next()
                log.warning(
                    "source failed camera=%s kind=%s error=%s retry_s=%.1f",
                    self.camera_id,
                    self.source.kind,
                    exc,
                    delay,
                )
            except Exception as exc:
                self.source_error = f"{type(exc).__name__}: {exc}"
                delay = backoff.next()
                log.exception(
                    "source crashed camera=%s kind=%s retry_s=%.1f",
                    self.camera_id,
                    self.source.kind,
                    delay,
                )
            stop.wait(delay)

    def _check_stall(self) -> None:
        last = self.meter.last_frame_at
        if last is None or self._source_ended.is_set():
            return
        idle = time.monotonic() - last
        if idle > self.stall_timeout_s and not self._source_stop.is_set():
            log.warning(
                "no frames camera=%s idle_s=%.0f action=restart-source", self.camera_id, idle
            )
            self.source_error = f"no frames for {idle:.0f} s"
            self._source_stop.set()

    # -- asyncio side --------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop``; returns after the source thread and the room are closed."""
        thread_stop = threading.Event()
        thread = threading.Thread(
            target=self._source_loop,
            args=(thread_stop,),
            daemon=True,
            name=f"source-{self.camera_id}",
        )
        if self.recorder is not None:
            await asyncio.to_thread(self.recorder.start)
        if self.clips is not None:
            await asyncio.to_thread(self.clips.start)
        thread.start()
        self.analysis.start()
        if self.events is not None and self.analysis_pictures is not None:
            await asyncio.to_thread(self.events.start)
            self.analysis_pictures.set(True)
        # Delivery outlives ``stop`` by a moment, to send the events ended at shutdown.
        delivery_stop = asyncio.Event()
        delivery = asyncio.create_task(
            self.delivery.run(delivery_stop), name=f"ev-{self.camera_id}"
        )
        uploader = asyncio.create_task(self.uploader.run(stop), name=f"up-{self.camera_id}")
        publisher = asyncio.create_task(self.publisher.run(stop), name=f"pub-{self.camera_id}")
        heartbeats = asyncio.create_task(self._heartbeats(stop), name=f"hb-{self.camera_id}")
        control = asyncio.create_task(self.control.run(stop), name=f"ctl-{self.camera_id}")
        try:
            await stop.wait()
        finally:
            thread_stop.set()
            self._source_stop.set()
            await asyncio.gather(publisher, heartbeats, control, return_exceptions=True)
            await asyncio.to_thread(thread.join, 10.0)
            await asyncio.to_thread(self.analysis.close)
            if self.events is not None:
                await asyncio.to_thread(self.events.close)
            # After the events: an event ended at shutdown still closes its clip.
            if self.clips is not None:
                await asyncio.to_thread(self.clips.close)
            if self.recorder is not None:
                await asyncio.to_thread(self.recorder.close)
            # An upload in flight stops at a chunk boundary; the server keeps its offset.
            _, pending_up = await asyncio.wait({uploader}, timeout=5.0)
            for task in pending_up:
                task.cancel()
            await asyncio.gather(uploader, return_exceptions=True)
            await asyncio.to_thread(self.uploads.close)
            await self._flush_events(self.SHUTDOWN_FLUSH_S)
            delivery_stop.set()
            # A request hanging on a dead server is cut short: its row is sent next start.
            _, pending = await asyncio.wait({delivery}, timeout=2.0)
            for task in pending:
                task.cancel()
            await asyncio.gather(delivery, return_exceptions=True)
            await asyncio.to_thread(self.outbox.close)
            await self.server.aclose()
            log.info("camera stopped camera=%s", self.camera_id)

    #: At shutdown, wait this long for the outbox to drain (the rest goes next start).
    SHUTDOWN_FLUSH_S = 3.0

    async def _flush_events(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not self.delivery.stats.paused:
            depth = await asyncio.to_thread(self.outbox.depth)
            if depth.queued == 0:
                return
            await asyncio.sleep(0.1)
        depth = await asyncio.to_thread(self.outbox.depth)
        if depth.queued:
            log.info(
                "events left for the next start camera=%s queued=%d", self.camera_id, depth.queued
            )

    def heartbeat_body(self) -> dict[str, Any]:
        """The health report sent to the server."""
        fps, kbps = self.meter.take()
        stats = self.publisher.stats
        return {
            "fps": round(fps, 2),
            "bitrate_kbps": round(kbps, 1),
            "cpu_percent": round(self._cpu.take(), 1),
            "temperature_c": cpu_temperature_c(),
            "publisher_state": self.publisher.state.value,
            "width": self.meter.width,
            "height": self.meter.height,
            "frames_sent": stats.frames_sent,
            "frames_dropped": stats.frames_dropped,
            "keyframe_requests": stats.keyframe_requests,
            "jpeg_frames_sent": self.control.stats.jpeg_frames_sent,
            "uptime_s": round(time.monotonic() - self._started, 1),
            "source": self.source.kind,
            "error": self.publisher.last_error or self.source_error,
            "version": __version__,
            **self.events_health(),
            **self.media_health(),
        }

    def media_health(self) -> dict[str, Any]:
        """Heartbeat fields about recording and clip uploads."""
        depth = self._upload_depth
        body: dict[str, Any] = {
            "recording": False,
            "uploads_queued": depth.queued,
            "uploads_bytes_left": depth.bytes_left,
            "uploads_dead": depth.dead,
            **self.uploader.health(),
        }
        if self.recorder is not None:
            health = self.recorder.health()
            body.update(
                recording=bool(health.get("recording", True)),
                record_bytes=health.get("bytes_used"),
                record_free_bytes=health.get("free_bytes"),
                record_disk_full=health.get("disk_full"),
                record_dropped=health.get("dropped_frames"),
                record_error=health.get("last_error"),
            )
        return body

    def events_health(self) -> dict[str, Any]:
        """Heartbeat fields about detection and event delivery."""
        depth = self._depth
        body: dict[str, Any] = {
            "detect": "off",
            "motion": False,
            "motion_ms": None,
            "detect_ms": None,
            "events_queued": depth.queued,
            "events_oldest_s": None if depth.oldest_s is None else round(depth.oldest_s, 1),
            "events_dead": depth.dead,
            "events_paused": self.delivery.stats.paused,
        }
        if self.events is not None:
            health = self.events.health()
            body.update(
                detect="motion" if self.events.detector is None else "objects",
                motion=health["motion"],
                motion_ms=health["motion_ms"],
                detect_ms=health["detect_ms"],
                events_active=health["events_active"],
            )
        return body

    async def _heartbeats(self, stop: asyncio.Event) -> None:
        failures = 0
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), self.heartbeat_interval_s)
                return
            except TimeoutError:
                pass
            self._check_stall()
            # SQLite may wait for a write in progress: not on the event loop.
            self._depth = await asyncio.to_thread(self.outbox.depth)
            self._upload_depth = await asyncio.to_thread(self.uploads.depth)
            body = self.heartbeat_body()
            try:
                await self.server.heartbeat(body)
                if failures:
                    log.info(
                        "heartbeats delivered again camera=%s after_failures=%d",
                        self.camera_id,
                        failures,
                    )
                failures = 0
            except CredentialRejected as exc:
                log.error("heartbeat refused camera=%s error=%s", self.camera_id, exc)
            except ServerError as exc:
                failures += 1
                # First failure and then every minute: the stream goes on regardless.
                if failures == 1 or failures % 12 == 0:
                    log.warning(
                        "heartbeat failed camera=%s failures=%d error=%s",
                        self.camera_id,
                        failures,
                        exc,
                    )

"""Runs one camera: its source thread, its LiveKit publisher, its heartbeats, and the
control link that asks it for JPEGs (MJPEG, snapshots) only while someone watches.

The source thread is restarted with backoff when it fails or stalls, so a camera that
vanishes or a corrupt stream is logged and retried, and never takes the process (or
the other cameras) down.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

from edge import __version__
from edge.control import PATH as CONTROL_PATH
from edge.control import ControlChannel
from edge.jpeg import JpegTap, PictureFilter
from edge.metrics import ProcessCpu, RateMeter, cpu_temperature_c
from edge.publisher import Backoff, LiveKitPublisher
from edge.sources.base import (
    CapturedFrame,
    FatalSourceError,
    PictureSource,
    Source,
    SourceError,
)
from edge.uplink import CredentialRejected, ServerClient, ServerError

log = logging.getLogger("edge.camera")


class CameraRunner:
    """Owns everything for one camera id."""

    def __init__(
        self,
        camera_id: str,
        source: Source,
        server: ServerClient,
        *,
        heartbeat_interval_s: float = 5.0,
        stall_timeout_s: float = 15.0,
        cpu: ProcessCpu | None = None,
        picture_filter: PictureFilter | None = None,
    ) -> None:
        self.camera_id = camera_id
        self.source = source
        self.server = server
        self.heartbeat_interval_s = heartbeat_interval_s
        self.stall_timeout_s = stall_timeout_s
        self.meter = RateMeter()
        self.publisher = LiveKitPublisher(camera_id, server.edge_token, source.request_keyframe)
        # JPEGs from the source's own pictures when it has them, else from decoded H.264.
        pictures = source if isinstance(source, PictureSource) else None
        self.jpeg = JpegTap(
            camera_id,
            self._offer_jpeg,
            decode=pictures is None,
            picture_filter=picture_filter,
        )
        if pictures is not None:
            pictures.set_picture_sink(self.jpeg)
        self.control = ControlChannel(
            camera_id, server.websocket_url(CONTROL_PATH), server.auth_headers, self.jpeg
        )
        self.source_error: str | None = None
        self._cpu = cpu or ProcessCpu()
        self._started = time.monotonic()
        self._source_stop = threading.Event()
        self._source_ended = threading.Event()

    def _sink(self, frame: CapturedFrame) -> None:
        self.meter.on_frame(frame)
        self.publisher.on_frame(frame)
        self.jpeg.on_frame(frame)

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
        thread.start()
        self.jpeg.start()
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
            await asyncio.to_thread(self.jpeg.close)
            await self.server.aclose()
            log.info("camera stopped camera=%s", self.camera_id)

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
        }

    async def _heartbeats(self, stop: asyncio.Event) -> None:
        failures = 0
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), self.heartbeat_interval_s)
                return
            except TimeoutError:
                pass
            self._check_stall()
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

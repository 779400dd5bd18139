"""Publishes one camera's H.264 access units into its LiveKit room, untouched.

The source thread calls ``on_frame`` for every access unit; it goes straight into
``rtc.EncodedVideoSource`` (no queue, no decode, no re-encode). The asyncio side owns
the connection: it fetches a token from the server, joins ``camera-<id>``, publishes
with ``ENCODER_BACKEND_PRE_ENCODED``, forwards keyframe requests to the source, and
reconnects with backoff when LiveKit or the server goes away.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import enum
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from livekit import rtc

from edge.backoff import Backoff
from edge.sources.base import CapturedFrame
from edge.uplink import CredentialRejected, LiveKitToken

log = logging.getLogger("edge.publisher")

TokenProvider = Callable[[], Awaitable[LiveKitToken]]


class PublisherState(enum.StrEnum):
    """What the heartbeat reports; the server shows it per camera."""

    CONNECTING = "connecting"
    PUBLISHING = "publishing"
    RECONNECTING = "reconnecting"
    STOPPED = "stopped"
    ERROR = "error"


@dataclass
class PublisherStats:
    """Counters since start; read by the heartbeat."""

    frames_sent: int = 0
    bytes_sent: int = 0
    frames_dropped: int = 0  # while not connected, or waiting for a keyframe, or refused
    keyframe_requests: int = 0
    connects: int = 0


class Publisher(abc.ABC):
    """One camera's publication, kept alive across SFU, server and publisher restarts.

    What every publisher shares (libwebrtc here, pion in edge/pion_publisher.py): the
    reconnect loop with backoff and credential handling, the picture size from the
    first access unit, the wait for a keyframe after each (re)connect, and merging the
    SFU's keyframe requests. A subclass implements ``_connected`` and ``_deliver`` (where
    an admitted frame goes) and ``_session``: one connection, which returns (or raises)
    when it ends.
    """

    #: Keyframe requests closer together than this are merged (IDRs are expensive).
    KEYFRAME_MIN_INTERVAL_S = 0.5

    def __init__(
        self,
        camera_id: str,
        tokens: TokenProvider,
        request_keyframe: Callable[[], None],
        *,
        connect_timeout_s: float = 20.0,
    ) -> None:
        self.camera_id = camera_id
        self._tokens = tokens
        self._request_keyframe = request_keyframe
        self._connect_timeout_s = connect_timeout_s
        self.state = PublisherState.CONNECTING
        self.last_error: str | None = None
        self.stats = PublisherStats()
        self._lock = threading.Lock()  # guards the subclass's sink and _await_keyframe
        self._await_keyframe = True
        self._size: tuple[int, int] | None = None
        self._size_known = threading.Event()
        self._last_keyframe_request = 0.0

    @abc.abstractmethod
    def _connected(self) -> bool:
        """Whether a session can take frames now (called with ``_lock`` held)."""

    @abc.abstractmethod
    def _deliver(self, frame: CapturedFrame) -> None:
        """Send one admitted frame (source thread, ``_lock`` held; must not block)."""

    @abc.abstractmethod
    async def _session(self, stop: asyncio.Event, backoff: Backoff) -> None:
        """One connection: publish until ``stop`` or until the connection ends."""

    # -- source thread -------------------------------------------------------------------

    def on_frame(self, frame: CapturedFrame) -> None:
        """Take one access unit from the source thread, without blocking it.

        The track's resolution comes from the camera's SPS. Frames are dropped while no
        session is up, and after each (re)connect until a keyframe: a decoder can only
        start at an IDR; deltas before it would be garbage.
        """
        self._size = (frame.au.width, frame.au.height)
        self._size_known.set()
        with self._lock:
            if not self._connected():
                self.stats.frames_dropped += 1
                return
            if self._await_keyframe:
                if not frame.au.keyframe:
                    self.stats.frames_dropped += 1
                    return
                self._await_keyframe = False
            self._deliver(frame)

    # -- asyncio side --------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Stay published until ``stop`` is set."""
        backoff = Backoff()
        while not stop.is_set():
            if self._size is None:
                await asyncio.to_thread(self._size_known.wait, 1.0)
                continue
            try:
                await self._session(stop, backoff)
                if stop.is_set():
                    break
                self.state = PublisherState.RECONNECTING
            except CredentialRejected as exc:
                self.state = PublisherState.ERROR
                self.last_error = str(exc)
                log.error(
                    "server refused this edge's credential camera=%s error=%s "
                    "action='re-enroll the camera (python -m edge enroll)'",
                    self.camera_id,
                    exc,
                )
                await _sleep_or_stop(stop, 60.0)
                continue
            except Exception as exc:
                self.state = (
                    PublisherState.RECONNECTING
                    if self.stats.connects
                    else PublisherState.CONNECTING
                )
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning(
                    "livekit connect failed camera=%s error=%s", self.camera_id, self.last_error
                )
            delay = backoff.next()
            log.info("reconnecting camera=%s in_s=%.1f", self.camera_id, delay)
            await _sleep_or_stop(stop, delay)
        self.state = PublisherState.STOPPED

    def _published(self, backoff: Backoff) -> None:
        """The session is up: ask the camera for an IDR to start from, report it."""
        self._request_keyframe()
        self.stats.connects += 1
        self.state = PublisherState.PUBLISHING
        self.last_error = None
        backoff.reset()

    def _keyframe_requested(self) -> None:
        """A subscriber asked for a keyframe: counted, and passed on at most every
        KEYFRAME_MIN_INTERVAL_S."""
        self.stats.keyframe_requests += 1
        now = time.monotonic()
        if now - self._last_keyframe_request >= self.KEYFRAME_MIN_INTERVAL_S:
            self._last_keyframe_request = now
            self._request_keyframe()


class LiveKitPublisher(Publisher):
    """Publishes through livekit.rtc's EncodedVideoSource (libwebrtc, in this process)."""

    #: How often LiveKit's encoder feedback (keyframe requests) is read. A plain sleep,
    #: not a wait on an event, keeps this loop nearly free on a Pi Zero.
    FEEDBACK_POLL_S = 0.1
    #: The same when the source cannot make a keyframe on request (RTSP, files): requests
    #: are only counted then, and each read is an FFI round trip (0.4 % of a core at 0.1 s).
    FEEDBACK_POLL_IDLE_S = 1.0
    #: What the track may send. The camera already encoded the stream, so this never
    #: touches picture quality; it sets libwebrtc's pacing rate and bandwidth allocation.
    #: Its default for 1080p (about 3 Mbit/s) paces a camera's 5 Mbit/s stream, and a
    #: keyframe then queues for ~100 ms and delays the frames behind it.
    MAX_BITRATE_BPS = 20_000_000
    MAX_FRAMERATE = 60.0

    def __init__(
        self,
        camera_id: str,
        tokens: TokenProvider,
        request_keyframe: Callable[[], None],
        *,
        can_force_keyframe: bool = True,
        connect_timeout_s: float = 20.0,
    ) -> None:
        super().__init__(camera_id, tokens, request_keyframe, connect_timeout_s=connect_timeout_s)
        self._feedback_poll_s = (
            self.FEEDBACK_POLL_S if can_force_keyframe else self.FEEDBACK_POLL_IDLE_S
        )
        self._source: rtc.EncodedVideoSource | None = None
        self._last_ts_us = 0

    # -- source thread -------------------------------------------------------------------

    def _connected(self) -> bool:
        return self._source is not None

    def _deliver(self, frame: CapturedFrame) -> None:
        """Hand one access unit to LiveKit."""
        au = frame.au
        assert self._source is not None
        # timestamp_us must increase even if the wall clock steps back (NTP).
        ts = max(frame.capture_us, self._last_ts_us + 1)
        self._last_ts_us = ts
        accepted = self._source.capture_frame(
            rtc.EncodedVideoFrame(
                data=au.data,
                width=au.width,
                height=au.height,
                codec=rtc.VideoCodec.H264,
                frame_type=(
                    rtc.EncodedFrameType.ENCODED_FRAME_KEY
                    if au.keyframe
                    else rtc.EncodedFrameType.ENCODED_FRAME_DELTA
                ),
                timestamp_us=ts,
                metadata=rtc.FrameMetadata(
                    user_timestamp=frame.capture_us, frame_id=frame.index % (1 << 32)
                ),
            )
        )
        if accepted:
            self.stats.frames_sent += 1
            self.stats.bytes_sent += len(au.data)
        else:
            self.stats.frames_dropped += 1

    # -- asyncio side --------------------------------------------------------------------

    async def _session(self, stop: asyncio.Event, backoff: Backoff) -> None:
        token = await self._tokens()
        room = rtc.Room()
        gone = asyncio.Event()
        room.on("disconnected", lambda *_: gone.set())
        room.on(
            "reconnecting",
            lambda: log.warning("livekit link lost, resuming camera=%s", self.camera_id),
        )
        room.on("reconnected", lambda: log.info("livekit link resumed camera=%s", self.camera_id))
        source: rtc.EncodedVideoSource | None = None
        try:
            await asyncio.wait_for(
                room.connect(token.url, token.token, rtc.RoomOptions(auto_subscribe=False)),
                self._connect_timeout_s,
            )
            assert self._size is not None
            width, height = self._size
            source = rtc.EncodedVideoSource(width, height)
            track = rtc.LocalVideoTrack.create_video_track("camera", source)
            options = rtc.TrackPublishOptions(
                source=rtc.TrackSource.SOURCE_CAMERA,
                video_codec=rtc.VideoCodec.H264,
                video_encoder=rtc.VideoEncoderBackend.ENCODER_BACKEND_PRE_ENCODED,
                simulcast=False,
                video_encoding=rtc.VideoEncoding(
                    max_bitrate=self.MAX_BITRATE_BPS, max_framerate=self.MAX_FRAMERATE
                ),
                frame_metadata_features=[
                    rtc.FrameMetadataFeature.FMF_USER_TIMESTAMP,
                    rtc.FrameMetadataFeature.FMF_FRAME_ID,
                ],
            )
            await asyncio.wait_for(
                room.local_participant.publish_track(track, options), self._connect_timeout_s
            )
            with self._lock:
                self._source = source
                self._await_keyframe = True
            self._published(backoff)
            log.info(
                "publishing camera=%s room=%s url=%s size=%dx%d",
                self.camera_id,
                token.room,
                token.url,
                width,
                height,
            )
            while not stop.is_set() and not gone.is_set():
                self._poll_feedback(source)
                await asyncio.sleep(self._feedback_poll_s)
            if gone.is_set():
                log.warning("livekit disconnected camera=%s", self.camera_id)
        finally:
            with self._lock:
                self._source = None
            try:
                await asyncio.wait_for(room.disconnect(), 5.0)
            except Exception as exc:
                log.debug("room disconnect failed camera=%s error=%r", self.camera_id, exc)
            if source is not None:
                await source.aclose()

    def _poll_feedback(self, source: rtc.EncodedVideoSource) -> None:
        if source.take_feedback().keyframe_requested:
            self._keyframe_requested()


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)

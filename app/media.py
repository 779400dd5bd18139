"""The MJPEG relay: per camera, the newest JPEG, its viewers and the edge's JPEG demand.

Edges make JPEGs only while asked to (decoding and encoding cost a Pi real CPU). The
relay asks a camera's edge for JPEGs (``want: true`` over its control websocket) while
any MJPEG viewer is connected or a snapshot was asked for within the last
``SNAPSHOT_DEMAND_S`` seconds, and tells it to stop afterwards.

Every JPEG an edge sends goes to every viewer through a one-slot buffer: a viewer that
cannot keep up loses the older JPEG and gets the newest next, so it never holds up the
other viewers and never costs more than one JPEG of memory. The newest JPEG per camera
is also kept for snapshots and written to ``<data>/snapshots/<id>.jpg`` at most every
``SAVE_INTERVAL_S`` seconds, so an offline camera still shows its last picture after a
server restart.

``MediaRelay`` is the interface the API uses; ``LocalMediaRelay`` serves one process.
Several API replicas need a shared implementation (Redis pub/sub) behind the same
interface. Everything runs on the event loop, except the methods documented as
thread-safe (the synchronous endpoints call those from the threadpool).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger(__name__)

SNAPSHOT_DEMAND_S = 60.0
SAVE_INTERVAL_S = 10.0
#: A viewer that joins gets the newest JPEG at once if it is at most this old.
JOIN_MAX_AGE_S = 2.0
MAX_JPEG_BYTES = 8 * 1024 * 1024
JPEG_MAGIC = b"\xff\xd8\xff"

#: Close code of the control websocket for a refused, revoked or deleted edge credential
#: (the edge then retries slowly instead of hammering the server).
CLOSE_UNAUTHORIZED = 4401

BOUNDARY = "livecam-mjpeg-frame"
MJPEG_CONTENT_TYPE = f"multipart/x-mixed-replace; boundary={BOUNDARY}"


@dataclass(frozen=True, slots=True)
class Jpeg:
    """One JPEG as the relay holds it."""

    data: bytes
    received_at: float  # wall clock (seconds since the epoch) when the server got it
    seq: int  # per camera, from 1, in arrival order; 0 for a picture loaded from disk

    def age_s(self, now: float) -> float:
        return max(0.0, now - self.received_at)

    @property
    def received_datetime(self) -> datetime:
        return datetime.fromtimestamp(self.received_at, UTC)


@dataclass(frozen=True, slots=True)
class JpegDemand:
    """What the relay asks of an edge."""

    want: bool
    fps: float
    max_width: int

    def message(self) -> dict[str, Any]:
        """The control-websocket message."""
        fps = int(self.fps) if float(self.fps).is_integer() else self.fps
        return {"type": "jpeg", "want": self.want, "fps": fps, "max_width": self.max_width}


def multipart_part(jpeg: Jpeg) -> bytes:
    """One part of a ``multipart/x-mixed-replace`` MJPEG stream."""
    head = (
        f"--{BOUNDARY}\r\n"
        "Content-Type: image/jpeg\r\n"
        f"Content-Length: {len(jpeg.data)}\r\n"
        f"X-Frame-Seq: {jpeg.seq}\r\n"
        "\r\n"
    ).encode("ascii")
    return head + jpeg.data + b"\r\n"


class Viewer:
    """One MJPEG viewer's one-slot buffer."""

    def __init__(self) -> None:
        self._jpeg: Jpeg | None = None
        self._ready = asyncio.Event()
        self.closed = False
        self.delivered = 0
        self.dropped = 0

    def put(self, jpeg: Jpeg) -> None:
        """Offer the newest JPEG; replaces one the viewer has not taken yet."""
        if self._jpeg is not None:
            self.dropped += 1
        self._jpeg = jpeg
        self._ready.set()

    def close(self) -> None:
        """No more JPEGs will come (the camera was deleted)."""
        self.closed = True
        self._ready.set()

    async def next(self) -> Jpeg | None:
        """Wait for the next JPEG; None once the viewer is closed."""
        while self._jpeg is None:
            if self.closed:
                return None
            self._ready.clear()
            await self._ready.wait()
        jpeg, self._jpeg = self._jpeg, None
        self.delivered += 1
        return jpeg


class EdgeLink:
    """One edge's control websocket as the relay sees it: a mailbox for the newest demand."""

    def __init__(self, camera_id: str) -> None:
        self.camera_id = camera_id
        self._demand: JpegDemand | None = None
        self._changed = asyncio.Event()
        self.close_code: int | None = None
        self.close_reason = ""

    def send(self, demand: JpegDemand) -> None:
        self._demand = demand
        self._changed.set()

    def close(self, code: int, reason: str) -> None:
        """Ask the websocket handler to close the connection."""
        self.close_code, self.close_reason = code, reason
        self._changed.set()

    async def demands(self) -> AsyncIterator[JpegDemand]:
        """The newest demand each time it changes, until ``close`` is called."""
        while True:
            await self._changed.wait()
            self._changed.clear()
            if self.close_code is not None:
                return
            if self._demand is not None:
                yield self._demand


class SnapshotStore:
    """The newest JPEG of each camera on disk: ``<dir>/<camera id>.jpg``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, camera_id: str) -> Path:
        return self.directory / f"{camera_id}.jpg"

    def save(self, camera_id: str, jpeg: Jpeg) -> None:
        """Write atomically (temp file + rename) and stamp the file with the JPEG's time."""
        self.directory.mkdir(parents=True, exist_ok=True)
        target = self.path(camera_id)
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
        try:
            tmp.write_bytes(jpeg.data)
            os.utime(tmp, (jpeg.received_at, jpeg.received_at))
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)

    def load(self, camera_id: str) -> Jpeg | None:
        try:
            path = self.path(camera_id)
            return Jpeg(path.read_bytes(), path.stat().st_mtime, 0)
        except OSError:
            return None

    def stamp(self, camera_id: str) -> float | None:
        """When the stored JPEG was received, or None."""
        try:
            return self.path(camera_id).stat().st_mtime
        except OSError:
            return None

    def remove(self, camera_id: str) -> None:
        self.path(camera_id).unlink(missing_ok=True)


class MediaRelay(Protocol):
    """What the API needs from the relay (one process, or several behind a broker)."""

    def attach_edge(self, camera_id: str) -> EdgeLink:
        """An edge's control websocket opened; the link gets the current demand at once."""
        ...

    def detach_edge(self, link: EdgeLink) -> None:
        """That websocket closed."""
        ...

    def edge_connected(self, camera_id: str) -> bool: ...

    def publish(self, camera_id: str, data: bytes) -> bool:
        """A JPEG from the camera's edge; False if it was refused (not a JPEG, too big)."""
        ...

    def watch(self, camera_id: str) -> AbstractAsyncContextManager[Viewer]:
        """Be an MJPEG viewer of ``camera_id`` for the duration of the context."""
        ...

    async def snapshot(self, camera_id: str) -> Jpeg | None:
        """The newest JPEG, fresh from the edge if it is connected; else the last one kept."""
        ...

    def wanted(self, camera_id: str) -> bool:
        """Whether the camera's edge is asked for JPEGs (thread-safe)."""
        ...

    def last_snapshot_at(self, camera_id: str) -> datetime | None:
        """When the newest JPEG kept for the camera arrived (thread-safe)."""
        ...

    def disconnect_edges(self, camera_id: str) -> None:
        """Close the camera's control websockets, e.g. its credentials were revoked
        (thread-safe)."""
        ...

    def forget(self, camera_id: str) -> None:
        """The camera was deleted: close its edges, drop its viewers' source and its
        stored snapshot."""
        ...

    async def aclose(self) -> None:
        """Shutting down: store every newest JPEG not yet on disk."""
        ...


@dataclass
class _Hub:
    camera_id: str
    latest: Jpeg | None = None
    seq: int = 0
    viewers: set[Viewer] = field(default_factory=set)
    edges: set[EdgeLink] = field(default_factory=set)
    snapshot_until: float = 0.0  # monotonic
    wanted: bool = False
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    expiry: asyncio.TimerHandle | None = None
    saved_seq: int = 0
    saved_at: float = float("-inf")  # monotonic
    saver: asyncio.Task[None] | None = None
    save_again: bool = False
    refused: int = 0


class LocalMediaRelay:
    """The relay for a single API process: everything in memory, on its event loop."""

    def __init__(
        self,
        snapshot_dir: Path,
        *,
        fps: float = 5.0,
        max_width: int = 640,
        snapshot_demand_s: float = SNAPSHOT_DEMAND_S,
        save_interval_s: float = SAVE_INTERVAL_S,
        fresh_s: float = 2.0,
        fresh_wait_s: float = 5.0,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.store = SnapshotStore(snapshot_dir)
        self.fps = fps
        self.max_width = max_width
        self.snapshot_demand_s = snapshot_demand_s
        self.save_interval_s = save_interval_s
        self.fresh_s = fresh_s
        self.fresh_wait_s = fresh_wait_s
        self._wall = wall
        self._hubs: dict[str, _Hub] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._saving: set[asyncio.Task[None]] = set()

    def _hub(self, camera_id: str) -> _Hub:
        hub = self._hubs.get(camera_id)
        if hub is None:
            hub = self._hubs[camera_id] = _Hub(camera_id)
        return hub

    def _demand(self, want: bool) -> JpegDemand:
        return JpegDemand(want=want, fps=self.fps, max_width=self.max_width)

    # -- demand ----------------------------------------------------------------------------

    def _update_demand(self, hub: _Hub) -> None:
        now = time.monotonic()
        if hub.expiry is not None:
            hub.expiry.cancel()
            hub.expiry = None
        reason = "viewers" if hub.viewers else "snapshot" if now < hub.snapshot_until else None
        want = reason is not None
        if want and not hub.viewers:
            # Only the snapshot window keeps the demand: re-check when it ends.
            loop = asyncio.get_running_loop()
            hub.expiry = loop.call_later(hub.snapshot_until - now, self._update_demand, hub)
        if want == hub.wanted:
            return
        hub.wanted = want
        log.info(
            "jpeg demand started" if want else "jpeg demand stopped",
            extra={
                "camera": hub.camera_id,
                "reason": reason or "idle",
                "viewers": len(hub.viewers),
                "edges": len(hub.edges),
            },
        )
        demand = self._demand(want)
        for link in hub.edges:
            link.send(demand)

    def wanted(self, camera_id: str) -> bool:
        hub = self._hubs.get(camera_id)
        return hub is not None and hub.wanted

    # -- edges -----------------------------------------------------------------------------

    def attach_edge(self, camera_id: str) -> EdgeLink:
        self._loop = asyncio.get_running_loop()
        hub = self._hub(camera_id)
        link = EdgeLink(camera_id)
        hub.edges.add(link)
        link.send(self._demand(hub.wanted))
        return link

    def detach_edge(self, link: EdgeLink) -> None:
        hub = self._hubs.get(link.camera_id)
        if hub is None:
            return
        hub.edges.discard(link)
        if not hub.edges:
            self._save_soon(hub, force=True)

    def edge_connected(self, camera_id: str) -> bool:
        hub = self._hubs.get(camera_id)
        return hub is not None and bool(hub.edges)

    def disconnect_edges(self, camera_id: str) -> None:
        loop = self._loop
        if loop is None:
            return  # no edge ever connected to this process
        loop.call_soon_threadsafe(self._disconnect_edges, camera_id, "credentials revoked")

    def _disconnect_edges(self, camera_id: str, reason: str) -> None:
        hub = self._hubs.get(camera_id)
        for link in list(hub.edges if hub else ()):
            link.close(CLOSE_UNAUTHORIZED, reason)

    # -- JPEGs -----------------------------------------------------------------------------

    def publish(self, camera_id: str, data: bytes) -> bool:
        hub = self._hub(camera_id)
        if not data.startswith(JPEG_MAGIC) or len(data) > MAX_JPEG_BYTES:
            hub.refused += 1
            if hub.refused == 1 or hub.refused % 100 == 0:
                log.warning(
                    "refused a picture that is not a JPEG",
                    extra={"camera": camera_id, "bytes": len(data), "refused": hub.refused},
                )
            return False
        hub.seq += 1
        jpeg = Jpeg(data, self._wall(), hub.seq)
        hub.latest = jpeg
        for viewer in hub.viewers:
            viewer.put(jpeg)
        hub.arrived.set()
        hub.arrived = asyncio.Event()
        self._save_soon(hub)
        return True

    def latest(self, camera_id: str) -> Jpeg | None:
        """The newest JPEG in memory, else the one stored on disk (then kept in memory)."""
        hub = self._hubs.get(camera_id)
        if hub is not None and hub.latest is not None:
            return hub.latest
        stored = self.store.load(camera_id)
        if hub is not None and stored is not None:
            hub.latest = stored  # seq 0 == saved_seq: never written back
        return stored

    @asynccontextmanager
    async def watch(self, camera_id: str) -> AsyncIterator[Viewer]:
        hub = self._hub(camera_id)
        viewer = Viewer()
        latest = hub.latest
        if latest is not None and latest.age_s(self._wall()) <= JOIN_MAX_AGE_S:
            viewer.put(latest)
        hub.viewers.add(viewer)
        self._update_demand(hub)
        log.debug("mjpeg viewer joined", extra={"camera": camera_id, "viewers": len(hub.viewers)})
        try:
            yield viewer
        finally:
            hub.viewers.discard(viewer)
            self._update_demand(hub)
            log.debug(
                "mjpeg viewer left",
                extra={
                    "camera": camera_id,
                    "viewers": len(hub.viewers),
                    "delivered": viewer.delivered,
                    "dropped": viewer.dropped,
                },
            )

    async def snapshot(self, camera_id: str) -> Jpeg | None:
        hub = self._hub(camera_id)
        hub.snapshot_until = max(hub.snapshot_until, time.monotonic() + self.snapshot_demand_s)
        self._update_demand(hub)
        latest = self.latest(camera_id)
        if not hub.edges or (latest is not None and latest.age_s(self._wall()) <= self.fresh_s):
            return latest
        arrived = hub.arrived
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(arrived.wait(), self.fresh_wait_s)
        return self.latest(camera_id)

    def last_snapshot_at(self, camera_id: str) -> datetime | None:
        hub = self._hubs.get(camera_id)
        latest = hub.latest if hub is not None else None
        stamp = latest.received_at if latest is not None else self.store.stamp(camera_id)
        return None if stamp is None else datetime.fromtimestamp(stamp, UTC)

    # -- storage ---------------------------------------------------------------------------

    def _save_soon(self, hub: _Hub, *, force: bool = False) -> None:
        latest = hub.latest
        if latest is None or latest.seq == hub.saved_seq:
            return
        now = time.monotonic()
        if not force and now - hub.saved_at < self.save_interval_s:
            return
        hub.saved_at = now
        if hub.saver is not None and not hub.saver.done():
            hub.save_again = True  # one write at a time, so an older one never lands last
            return
        hub.saver = asyncio.get_running_loop().create_task(self._save(hub))
        self._saving.add(hub.saver)
        hub.saver.add_done_callback(self._saving.discard)

    async def _save(self, hub: _Hub) -> None:
        while hub.latest is not None:
            hub.save_again = False
            jpeg = hub.latest
            hub.saved_seq = jpeg.seq
            try:
                await asyncio.to_thread(self.store.save, hub.camera_id, jpeg)
            except OSError as exc:
                log.warning(
                    "could not store snapshot", extra={"camera": hub.camera_id, "error": str(exc)}
                )
                return
            if self._hubs.get(hub.camera_id) is not hub:
                self.store.remove(hub.camera_id)  # deleted while the file was being written
                return
            if not hub.save_again:
                return

    def forget(self, camera_id: str) -> None:
        hub = self._hubs.pop(camera_id, None)
        if hub is not None:
            if hub.expiry is not None:
                hub.expiry.cancel()
            for link in hub.edges:
                link.close(CLOSE_UNAUTHORIZED, "camera deleted")
            for viewer in hub.viewers:
                viewer.close()
        self.store.remove(camera_id)

    async def aclose(self) -> None:
        if self._saving:
            await asyncio.gather(*self._saving, return_exceptions=True)
        for hub in self._hubs.values():
            if hub.expiry is not None:
                hub.expiry.cancel()
            if hub.latest is not None and hub.latest.seq != hub.saved_seq:
                hub.saved_seq = hub.latest.seq
                with contextlib.suppress(OSError):
                    self.store.save(hub.camera_id, hub.latest)

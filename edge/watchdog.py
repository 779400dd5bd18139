"""systemd notify protocol (sd_notify) over $NOTIFY_SOCKET with the stdlib, plus a watchdog.

The watchdog pets systemd (WATCHDOG=1) only while the asyncio loop answers and every
camera's source thread is alive, so a hung capture gets the service restarted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
from collections.abc import Callable, Sequence

log = logging.getLogger(__name__)


def notify(message: str, socket_path: str | None = None) -> bool:
    """Send one sd_notify datagram; return False when not running under systemd."""
    path = socket_path if socket_path is not None else os.environ.get("NOTIFY_SOCKET", "")
    if not path:
        return False
    # A leading "@" names an abstract-namespace socket (Linux): NUL byte instead.
    address = "\0" + path[1:] if path.startswith("@") else path
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
    except OSError as exc:
        # systemd gone or socket unreachable: keep capturing, just say so.
        log.warning("event=sd_notify_failed socket=%s error=%s", path, exc)
        return False
    return True


def watchdog_interval(default: float = 10.0) -> float:
    """Seconds between pings: half of systemd's $WATCHDOG_USEC, as sd_watchdog_enabled advises."""
    usec = os.environ.get("WATCHDOG_USEC", "")
    return int(usec) / 2_000_000 if usec.isdigit() and int(usec) > 0 else default


class Watchdog:
    """Pets systemd from a daemon thread while `threads()` are alive and the loop responds."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        threads: Callable[[], Sequence[threading.Thread]],
        interval: float | None = None,
        socket_path: str | None = None,
    ) -> None:
        self._loop = loop
        self._threads = threads
        self._interval = interval if interval is not None else watchdog_interval()
        self._socket_path = socket_path
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sd-watchdog", daemon=True)

    def start(self) -> None:
        """Send READY=1 and start pinging."""
        notify("READY=1\nSTATUS=cameras running", self._socket_path)
        self._thread.start()

    def stop(self) -> None:
        """Stop pinging and tell systemd we are stopping."""
        self._stop.set()
        self._thread.join(timeout=5)
        notify("STOPPING=1", self._socket_path)

    def healthy(self) -> tuple[bool, str]:
        """(ok, reason): all source threads alive and the event loop answered a call."""
        dead = [t.name for t in self._threads() if not t.is_alive()]
        if dead:
            return False, f"source thread stopped: {','.join(dead)}"
        answered = threading.Event()
        try:
            self._loop.call_soon_threadsafe(answered.set)
        except RuntimeError:
            return False, "event loop closed"
        if not answered.wait(timeout=self._interval):
            return False, "event loop not responding"
        return True, "ok"

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            ok, reason = self.healthy()
            if ok:
                notify("WATCHDOG=1", self._socket_path)
            else:
                # No ping: systemd's WatchdogSec expires and restarts the service.
                log.warning("event=watchdog_unhealthy reason=%s", reason)
                notify(f"STATUS=unhealthy: {reason}", self._socket_path)


def source_threads(camera_ids: Sequence[str]) -> list[threading.Thread]:
    """The running source threads of these cameras (named ``source-<id>`` by CameraRunner)."""
    wanted = {f"source-{cid}" for cid in camera_ids}
    return [t for t in threading.enumerate() if t.name in wanted]


async def supervise(camera_ids: Sequence[str], stop: asyncio.Event) -> None:
    """Under systemd: send READY=1 once every camera's source thread runs, then keep the
    watchdog going until ``stop``. Without $NOTIFY_SOCKET this returns at once."""
    if not os.environ.get("NOTIFY_SOCKET"):
        return
    while len(source_threads(camera_ids)) < len(camera_ids) and not stop.is_set():
        # The runners start their threads after async setup; wake early on stop.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.2)
    if stop.is_set():
        return
    known = source_threads(camera_ids)
    dog = Watchdog(asyncio.get_running_loop(), lambda: known)
    dog.start()
    log.info("event=sd_ready cameras=%s", ",".join(camera_ids))
    try:
        await stop.wait()
    finally:
        await asyncio.to_thread(dog.stop)

"""edge.watchdog talks sd_notify to a real unix datagram socket."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.watchdog import Watchdog, notify, supervise


@pytest.fixture
def notify_sock(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(5)
    yield sock, path
    sock.close()


def _recv_until(sock: socket.socket, wanted: str) -> list[str]:
    seen: list[str] = []
    while True:
        msg = sock.recv(4096).decode()
        seen.append(msg)
        if wanted in msg:
            return seen


def test_notify_without_socket_is_noop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert notify("READY=1") is False


def test_ready_then_pings_stop_when_source_thread_hangs(
    notify_sock: tuple[socket.socket, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sock, path = notify_sock
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    release = threading.Event()
    source = threading.Thread(target=release.wait, name="cam1-source", daemon=True)
    source.start()
    loop = asyncio.new_event_loop()
    loop_thread = threading.Thread(target=loop.run_forever, daemon=True)
    loop_thread.start()
    dog = Watchdog(loop, lambda: [source], interval=0.05)
    try:
        dog.start()
        assert sock.recv(4096).decode().startswith("READY=1")
        assert "WATCHDOG=1" in _recv_until(sock, "WATCHDOG=1")[-1]
        release.set()  # the source thread ends: pings must stop
        source.join(timeout=5)
        seen = _recv_until(sock, "STATUS=unhealthy")
        assert "cam1-source" in seen[-1]
        # After the unhealthy report, only STATUS lines, never another WATCHDOG=1.
        for _ in range(3):
            assert "WATCHDOG=1" not in sock.recv(4096).decode()
    finally:
        dog.stop()
        loop.call_soon_threadsafe(loop.stop)
        loop_thread.join(timeout=5)
        loop.close()


def test_supervise_sends_ready_only_once_source_threads_run(
    notify_sock: tuple[socket.socket, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sock, path = notify_sock
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    sock.settimeout(0.5)
    release = threading.Event()

    async def scenario() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(supervise(["camA"], stop))
        await asyncio.sleep(0)
        with pytest.raises(TimeoutError):
            await asyncio.to_thread(sock.recv, 4096)  # no source thread yet: no READY
        source = threading.Thread(target=release.wait, name="source-camA", daemon=True)
        source.start()
        sock.settimeout(5)
        msg = await asyncio.to_thread(sock.recv, 4096)
        assert msg.decode().startswith("READY=1")
        stop.set()
        await task
        release.set()
        source.join(timeout=5)

    asyncio.run(scenario())


def test_unhealthy_when_event_loop_is_blocked() -> None:
    loop = asyncio.new_event_loop()
    unblock = threading.Event()
    loop.call_soon(unblock.wait)  # the loop's only callback blocks it
    loop_thread = threading.Thread(target=loop.run_forever, daemon=True)
    loop_thread.start()
    try:
        dog = Watchdog(loop, lambda: [], interval=0.05, socket_path="")
        assert dog.healthy() == (False, "event loop not responding")
    finally:
        unblock.set()
        loop.call_soon_threadsafe(loop.stop)
        loop_thread.join(timeout=5)
        loop.close()

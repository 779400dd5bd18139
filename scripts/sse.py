"""A Server-Sent Events client for tests and benches: reads /api/events/stream in a
thread and keeps every event with the wall-clock time it arrived."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

Event = dict[str, Any]


class EventStreamReader:
    """Collects the events of GET /api/events/stream (admin key) until ``close``."""

    def __init__(self, base_url: str, admin_key: str) -> None:
        self.events: list[tuple[float, Event]] = []
        self._base_url = base_url
        self._headers = {"Authorization": f"Bearer {admin_key}"}
        self._stop = threading.Event()
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, daemon=True, name="sse-reader")
        self._thread.start()

    def _run(self) -> None:
        with (
            httpx.Client(base_url=self._base_url, timeout=httpx.Timeout(5, read=60)) as c,
            c.stream("GET", "/api/events/stream", headers=self._headers) as resp,
        ):
            resp.raise_for_status()
            for line in resp.iter_lines():
                if self._stop.is_set():
                    return
                if line.startswith("data: "):
                    with self._cond:
                        self.events.append((time.time(), json.loads(line[6:])))
                        self._cond.notify_all()

    def wait_for(self, check: Callable[[Event], bool], timeout: float) -> tuple[float, Event]:
        """(arrival time, event) of the first event for which ``check`` is true."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for when, event in self.events:
                    if check(event):
                        return when, event
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no matching event in {timeout} s: {self.events}")
                self._cond.wait(left)

    def close(self) -> None:
        """Stops keeping events (the reader thread ends with its next line)."""
        self._stop.set()

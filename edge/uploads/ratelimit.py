"""A token bucket: the edge's upload bandwidth limit, shared by all its cameras.

A Pi on a home uplink must not starve the live stream: clips go at most ``rate`` bytes
per second on average, in bursts of at most ``burst`` bytes.
"""

from __future__ import annotations

import asyncio
import time


class TokenBucket:
    """``await take(n)`` returns when ``n`` bytes may be sent; ``rate`` 0 means no limit."""

    def __init__(self, rate_bytes_s: float, burst_bytes: float | None = None) -> None:
        if rate_bytes_s < 0:
            raise ValueError("rate must be ≥ 0")
        self.rate = rate_bytes_s
        self.burst = burst_bytes if burst_bytes is not None else max(rate_bytes_s, 64 * 1024)
        self._tokens = self.burst
        self._at = time.monotonic()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now

    async def take(self, n: int) -> None:
        """Wait until ``n`` bytes fit the limit (a request larger than the burst waits for
        its whole cost, so the average rate holds for any chunk size)."""
        if self.rate <= 0 or n <= 0:
            return
        async with self._lock:  # first come, first served across cameras
            self._refill()
            self._tokens -= n
            if self._tokens < 0:
                await asyncio.sleep(-self._tokens / self.rate)
                self._refill()

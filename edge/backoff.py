"""Exponential backoff with jitter, for everything on the edge that retries."""

from __future__ import annotations

import random


class Backoff:
    """Exponential backoff with jitter, so a fleet of edges does not reconnect in lockstep."""

    def __init__(self, first: float = 0.5, cap: float = 15.0) -> None:
        self.first = first
        self.cap = cap
        self.attempt = 0

    def next(self) -> float:
        """Seconds to wait before the next attempt."""
        # The exponent is bounded: after ~1000 failures (hours offline) 2.0**n overflows.
        delay = min(self.cap, self.first * 2.0 ** min(self.attempt, 30))
        self.attempt += 1
        return float(delay * random.uniform(0.7, 1.3))

    def reset(self) -> None:
        """After a success."""
        self.attempt = 0

"""The clock a time-box reads: `time.monotonic` in a run, a `FakeClock` in tests.

The budget and the per-call deadline read time only through a `Clock`, so a test can drive time itself
(a slow machine is a clock that jumps on every read) and no test of the time-box depends on how fast
or how loaded the machine running it is.
"""

from __future__ import annotations

import time
from collections.abc import Callable

Clock = Callable[[], float]
"""Seconds on a monotonic scale; only differences between readings mean anything."""

monotonic: Clock = time.monotonic


class FakeClock:
    """A clock a test moves: `advance(s)` by hand, and `per_read` seconds on every reading (work that
    takes time: each deadline check and each budget reading sees the machine has moved on)."""

    def __init__(self, start: float = 1000.0, per_read: float = 0.0) -> None:
        self.now = start
        """The current reading."""
        self.per_read = per_read
        """Seconds added after every reading."""
        self.reads = 0
        """How many times it was read."""

    def __call__(self) -> float:
        now = self.now
        self.now += self.per_read
        self.reads += 1
        return now

    def advance(self, seconds: float) -> None:
        self.now += seconds

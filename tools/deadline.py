"""Cooperative deadlines: a tool call stops at the end of its budget instead of running past it.

A call is admitted on an estimate, and an estimate can be wrong (a loaded CPU, a
first call with no measured speed). So the caller also sets a deadline, and every
long-running loop checks it between units of work: every forward pass (the Meter
checks before each one), every optimiser step, every sweep cell. Past the deadline
`check` raises `DeadlineReached`; a tool whose partial work is meaningful (SAE
training with fewer steps) catches it and returns what it has with `partial=True`,
any other tool lets it propagate and the call ends as an error state of the run.

The deadline lives in a context variable, so tools need no extra argument and a
tool called outside an investigation (`interp tool ...`) runs with none.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from tools.clock import Clock, monotonic


class DeadlineReached(Exception):
    """The current call ran past its deadline (not a user error: the budget ended)."""

    def __init__(self, where: str, overdue: float) -> None:
        when = f"{overdue:.2f}s past it" if overdue > 0 else "before a step that would have ended past it"
        super().__init__(f"stopped at the budget's deadline during {where or 'the call'} ({when})")
        self.where = where
        self.overdue = overdue


@dataclass
class Deadline:
    """An absolute point on the monotonic clock, with an optional hook run at every check."""

    at: float
    """Reading of `clock` after which work must stop."""
    on_check: Callable[[], None] | None = None
    """Called at every check (e.g. to record spent time for a resume after kill -9); must be cheap."""
    clock: Clock = field(default=monotonic, repr=False)
    """What it reads time from: the budget's clock (a FakeClock in tests)."""

    def left(self) -> float:
        return self.at - self.clock()


_current: contextvars.ContextVar[Deadline | None] = contextvars.ContextVar("interp_deadline", default=None)


@contextmanager
def deadline(
    seconds: float | None, on_check: Callable[[], None] | None = None, clock: Clock = monotonic
) -> Iterator[Deadline | None]:
    """Run the body with a deadline `seconds` from now on `clock` (None: no deadline)."""
    if seconds is None:
        yield None
        return
    d = Deadline(clock() + seconds, on_check, clock)
    token = _current.set(d)
    try:
        yield d
    finally:
        _current.reset(token)


def check(where: str = "", expected_seconds: float = 0.0) -> None:
    """Raise DeadlineReached when the current deadline has passed, or when the next unit of work,
    expected to take `expected_seconds`, would end past it; a no-op without a deadline."""
    d = _current.get()
    if d is None:
        return
    if d.on_check is not None:
        d.on_check()
    left = d.left()
    if left <= 0 or left < expected_seconds:
        raise DeadlineReached(where, -left if left <= 0 else 0.0)


class Pace:
    """The measured seconds per unit of one loop's work (tokens of a forward pass, optimiser steps), so
    its next unit is not started when it cannot finish before the deadline: on a loaded machine one
    pass can take a large share of a short budget, and starting it late is what overshoots."""

    def __init__(self) -> None:
        self.seconds_per_unit = 0.0

    @contextmanager
    def unit(self, where: str, units: float = 1.0) -> Iterator[None]:
        check(where, units * self.seconds_per_unit)
        clock = _clock()
        start = clock()
        yield
        self.seconds_per_unit = (clock() - start) / max(units, 1e-9)


def _clock() -> Clock:
    """The current deadline's clock (the real one without a deadline)."""
    d = _current.get()
    return monotonic if d is None else d.clock


def seconds_left() -> float | None:
    """Seconds until the current deadline (None without one)."""
    d = _current.get()
    return None if d is None else d.left()

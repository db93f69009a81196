"""Seconds per optimiser step, timed on a few real steps: the work forward-token counts cannot see.

SAE and transcoder training spend most of their time in optimiser steps; an
estimate that ignored them admitted a 190 s training into a 15 s budget. Each
shape is timed once per process (the quickest of a few steps after a warm-up:
one step slowed by a passing load is not the rate).
"""

from __future__ import annotations

import time
from collections.abc import Callable

_SECONDS: dict[tuple[object, ...], float] = {}


def seconds_per_step(key: tuple[object, ...], step: Callable[[], None], device: str, n: int = 3) -> float:
    """The quickest of `n` timed calls of `step` (after one warm-up), cached under `key` (the shape, device
    and thread count that decide it)."""
    if key not in _SECONDS:
        import torch

        step()
        times = []
        for _ in range(n):
            t0 = time.perf_counter()
            step()
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        _SECONDS[key] = min(times)
    return _SECONDS[key]

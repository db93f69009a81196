"""How long a tool call will take, from this model's measured speed on this machine.

Before the budget's clock starts, `calibrate` times a few forward passes of the
loaded model (two sizes: a per-call overhead and a token rate) and picks the
torch thread count that runs fastest right now (on a loaded CPU one thread can
beat two fighting another process). The first call of a run is then estimated
from real numbers, not from nothing, and a tiny first call no longer makes every
later estimate pessimistic (its overhead is not mistaken for slowness).

Each finished call then teaches the model how far its tool departs from plain
forward passes (tokenisation, probes fitted, patterns computed): the next
estimate for that tool is scaled by the median ratio measured so far. Estimates
decide admission only; the deadline (tools/deadline.py) is what holds the budget
when an estimate is wrong.
"""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import Tensor
    from transformer_lens import HookedTransformer

# Seconds the larger calibration pass should take: long enough to measure, short next to any budget.
_TARGET_PASS_SECONDS = 0.15
_RATIO_HISTORY = 8


@dataclass
class Speed:
    """Measured speed of the target on this machine, and per-tool corrections learned during a run."""

    tokens_per_second: float
    """Forward-pass throughput at a batch large enough to hide per-call overhead."""
    overhead_seconds: float
    """Fixed seconds of a call regardless of its size (Python, hooks, kernel launches)."""
    threads: int
    """torch intra-op threads chosen at calibration."""
    calibration_seconds: float
    """What measuring all this took (before the budget's clock started)."""
    ratios: dict[str, list[float]] = field(default_factory=dict)
    """Tool -> measured seconds / modelled seconds of its recent calls."""

    def modelled(self, forward_tokens: int, extra_seconds: float = 0.0) -> float:
        """Seconds of a call that is nothing but `forward_tokens` of forward passes plus `extra_seconds`."""
        return self.overhead_seconds + forward_tokens / self.tokens_per_second + extra_seconds

    def ratio(self, tool: str) -> tuple[float, str]:
        """The correction for `tool` and where it comes from."""
        own = self.ratios.get(tool)
        if own:
            return statistics.median(own), f"{len(own)} earlier {tool} call(s)"
        return 1.0, "calibration only (first call of this tool)"

    def estimate(self, tool: str, forward_tokens: int, extra_seconds: float = 0.0) -> tuple[float, str]:
        """(seconds, basis): the estimate and a sentence saying what it rests on."""
        r, why = self.ratio(tool)
        seconds = self.modelled(forward_tokens, extra_seconds) * r
        basis = (
            f"{self.tokens_per_second:,.0f} tok/s + {self.overhead_seconds * 1000:.0f} ms per call measured"
            f" on this machine, x{r:.2f} from {why}"
            + (f", {extra_seconds:.1f}s of non-forward work" if extra_seconds else "")
        )
        return seconds, basis

    def observe(self, tool: str, forward_tokens: int, seconds: float, extra_seconds: float = 0.0) -> None:
        """Learn from a finished call (calls that stopped at a deadline say nothing about speed)."""
        base = self.modelled(forward_tokens, extra_seconds)
        if base > 0 and seconds > 0:
            hist = self.ratios.setdefault(tool, [])
            hist.append(seconds / base)
            del hist[:-_RATIO_HISTORY]

    def describe(self) -> str:
        return (
            f"{self.tokens_per_second:,.0f} forward tok/s, {self.overhead_seconds * 1000:.0f} ms per call, "
            f"{self.threads} torch thread(s)"
        )


def _threads_env() -> int | None:
    raw = os.environ.get("INTERP_THREADS")
    if raw is None:
        return None
    from tools.errors import UserError

    if not raw.isdigit() or int(raw) < 1:
        raise UserError(f"INTERP_THREADS={raw!r}: give a whole number of threads >= 1, or unset it")
    return int(raw)


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def calibrate(model: HookedTransformer) -> Speed:
    """Time forward passes of `model` and choose torch's thread count (INTERP_THREADS overrides)."""
    import torch

    started = time.perf_counter()
    device = str(model.cfg.device)
    gen = torch.Generator().manual_seed(0)
    n_ctx = model.cfg.n_ctx

    def tokens(batch: int, pos: int) -> Tensor:
        return torch.randint(model.cfg.d_vocab, (batch, min(pos, n_ctx)), generator=gen).to(device)

    def timed(tok: Tensor, reps: int = 2) -> float:
        best = float("inf")
        for _ in range(reps):
            t0 = time.perf_counter()
            with torch.inference_mode():
                model(tok)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - t0)
        return best

    small = tokens(1, 8)
    timed(small, 1)  # warm-up: first-call allocations and lazy initialisation
    probe = tokens(4, 16)
    per_token = timed(probe, 1) / probe.numel()
    pos = min(64, n_ctx)
    batch = int(max(1, min(64, _TARGET_PASS_SECONDS / max(per_token, 1e-9) / pos)))
    big = tokens(batch, pos)

    forced = _threads_env()
    if forced is not None:
        torch.set_num_threads(forced)
    elif not device.startswith("cuda"):
        # More threads than free cores makes OpenMP threads wait on each other: measure, do not assume.
        choices = sorted({available_cores(), 1}, reverse=True)
        times = {}
        for n in choices:
            torch.set_num_threads(n)
            times[n] = timed(big, 1)
        torch.set_num_threads(min(times, key=lambda k: times[k]))
    small_s, big_s = timed(small, 3), timed(big, 2)
    # The rate includes the big pass's own overhead: on a loaded machine the difference of two noisy
    # timings can be near zero, and an absurd rate would admit calls that cannot finish.
    rate = big.numel() / big_s
    overhead = min(small_s, big_s)
    return Speed(
        tokens_per_second=rate,
        overhead_seconds=overhead,
        threads=torch.get_num_threads(),
        calibration_seconds=time.perf_counter() - started,
    )

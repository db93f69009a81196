"""The compute time-box of an investigation: wall clock, forward tokens, LLM dollars.

A tool call or LLM call is checked against what is left *before* it runs, from
its estimate; a call that does not fit is refused and the brain is told why, so
the total overshoot stays small (the acceptance bar is 5%). The budget is plain
data so it can live in checkpointed graph state: elapsed time accumulates across
a kill and a resume instead of restarting or counting the downtime.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tools.clock import Clock, monotonic
from tools.errors import UserError

# Kept back from the last call for concluding and writing the report (whichever is smaller).
REPORT_RESERVE_SECONDS = 2.0
REPORT_RESERVE_SHARE = 0.02

_UNITS = {"": 1.0, "s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """'300s', '5m', '1.5h' or '90' (seconds) -> seconds; zero, negative or garbage is an error."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*", str(text).lower())
    if not m or m.group(2) not in _UNITS:
        raise UserError(f"budget {text!r}: use a duration such as 300s, 5m or 1h")
    seconds = float(m.group(1)) * _UNITS[m.group(2)]
    if seconds <= 0:
        raise UserError(f"budget {text!r}: must be more than zero")
    return seconds


@dataclass
class Estimate:
    """What a call is expected to cost."""

    seconds: float = 0.0
    """Wall-clock seconds."""
    forward_tokens: int = 0
    """Token positions through the target model."""
    usd: float = 0.0
    """LLM dollars."""


@dataclass
class Budget:
    """Limits and what has been spent against them."""

    wall_seconds: float
    """Wall-clock limit."""
    max_forward_tokens: int | None = None
    """Forward-token limit (None: unlimited)."""
    max_usd: float | None = None
    """LLM spend limit in dollars (None: unlimited)."""
    spent_seconds: float = 0.0
    """Wall time of finished segments (a segment ends at a checkpoint or a kill)."""
    spent_forward_tokens: int = 0
    """Forward tokens charged."""
    spent_usd: float = 0.0
    """Dollars charged."""
    refused: int = 0
    """Calls refused for not fitting."""
    cheapest_call_s: float | None = None
    """Seconds of the quickest tool call so far: with less time left than that, nothing fits."""
    stopped_at_deadline: int = 0
    """Calls admitted on an estimate that proved short, stopped at their deadline."""
    load_seconds: float = 0.0
    """Seconds spent loading the model and measuring its speed before the clock started (all segments);
    reported beside the budget, not charged to it: loading is not investigating."""
    clock: Clock = field(default=monotonic, repr=False, compare=False)
    """What it reads time from (tests pass a tools.clock.FakeClock); not part of the saved state."""
    _segment_start: float | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.wall_seconds <= 0:
            raise UserError("the wall-clock budget must be more than zero")
        if self.max_forward_tokens is not None and self.max_forward_tokens <= 0:
            raise UserError("--max-forward-tokens must be more than zero")
        if self.max_usd is not None and self.max_usd <= 0:
            raise UserError("--max-cost must be more than zero dollars")

    # -- time ---------------------------------------------------------------

    def start(self) -> None:
        """Start (or, after a resume, restart) the clock of this process."""
        self._segment_start = self.clock()

    def elapsed(self) -> float:
        """Wall seconds spent, this segment included."""
        running = self.clock() - self._segment_start if self._segment_start is not None else 0.0
        return self.spent_seconds + running

    def seconds_left(self) -> float:
        return max(0.0, self.wall_seconds - self.elapsed())

    # -- decisions ------------------------------------------------------------

    def share_used(self) -> float:
        """The largest fraction used of any limit (what 'how far through' means)."""
        shares = [self.elapsed() / self.wall_seconds]
        if self.max_forward_tokens:
            shares.append(self.spent_forward_tokens / self.max_forward_tokens)
        if self.max_usd:
            shares.append(self.spent_usd / self.max_usd)
        return max(shares)

    def exhausted(self) -> bool:
        """A limit is used up, or the time left is shorter than any call this run has made
        (cycling through refusals would only run the clock past the limit)."""
        if self.share_used() >= 1.0 or self.call_seconds() <= 0:
            return True  # past the reserve kept for the report, no call can run
        return self.cheapest_call_s is not None and self.call_seconds() < self.cheapest_call_s

    def refusal(self, est: Estimate) -> str | None:
        """Why a call with this estimate does not fit, or None when it does."""
        if est.seconds > self.call_seconds():
            return f"needs ~{est.seconds:.1f}s, {max(0.0, self.call_seconds()):.1f}s left"
        if self.max_forward_tokens is not None and (
            self.spent_forward_tokens + est.forward_tokens > self.max_forward_tokens
        ):
            left = self.max_forward_tokens - self.spent_forward_tokens
            return f"needs ~{est.forward_tokens} forward tokens, {left} left"
        if self.max_usd is not None and self.spent_usd + est.usd > self.max_usd:
            return f"needs ~${est.usd:.4f}, ${self.max_usd - self.spent_usd:.4f} left"
        return None

    def admit(self, est: Estimate) -> str | None:
        """`refusal`, counting a refusal when there is one."""
        reason = self.refusal(est)
        if reason:
            self.refused += 1
        return reason

    def charge(self, forward_tokens: int = 0, usd: float = 0.0, seconds: float | None = None) -> None:
        """Record what a finished call cost (time is measured by the clock itself; a tool call's
        `seconds` only updates the quickest call seen)."""
        self.spent_forward_tokens += forward_tokens
        self.spent_usd += usd
        if seconds is not None:
            self.cheapest_call_s = seconds if self.cheapest_call_s is None else min(self.cheapest_call_s, seconds)

    # -- state ----------------------------------------------------------------

    def to_state(self) -> dict[str, float | int | None]:
        """Plain data for checkpointed graph state; folds the running segment into spent time."""
        data = {k: v for k, v in asdict(self).items() if k not in ("_segment_start", "clock")}
        data["spent_seconds"] = self.elapsed()
        return data

    @classmethod
    def from_state(cls, data: dict[str, float | int | None], clock: Clock = monotonic) -> Budget:
        """Rebuild after a resume; the clock starts again now (downtime is not charged)."""
        budget = cls(**data, clock=clock)  # type: ignore[arg-type]  # the saved fields, as to_state wrote them
        budget.start()
        return budget

    def call_seconds(self) -> float:
        """The deadline of the next call, in seconds from now: what is left less the reserve that concluding
        and writing the report need, so the run as a whole ends inside its budget."""
        return self.seconds_left() - self.reserve()

    def reserve(self) -> float:
        """Seconds kept back for conclude, review and report."""
        return min(REPORT_RESERVE_SECONDS, REPORT_RESERVE_SHARE * self.wall_seconds)

    def overshoot(self) -> float:
        """How far past the wall-clock limit the run went, as a share of it (0 when within)."""
        return max(0.0, self.elapsed() / self.wall_seconds - 1.0)


class Heartbeat:
    """Writes the run's spent seconds to a small file while a call runs (at most every `every` s).

    A checkpoint is written only when a node finishes, so a run killed in the middle of a long call
    would otherwise resume with that call's time uncharged; on resume the larger of the checkpoint's
    and the heartbeat's spent time counts.
    """

    def __init__(self, run_dir: Path, budget: Budget, every: float = 0.5) -> None:
        from agent.run_folder import RunFolder

        self.path = RunFolder(run_dir).heartbeat
        self.budget = budget
        self.every = every
        self._last = 0.0

    def __call__(self) -> None:
        now = self.budget.clock()
        if now - self._last < self.every:
            return
        self._last = now
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"spent_seconds": round(self.budget.elapsed(), 3)}))
        os.replace(tmp, self.path)

    @classmethod
    def spent(cls, run_dir: Path) -> float | None:
        """The last spent time written in `run_dir`, None when there is none or it is unreadable."""
        try:
            from agent.run_folder import RunFolder

            return float(json.loads(RunFolder(run_dir).heartbeat.read_text())["spent_seconds"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

"""Does the time-box hold? Investigations at several budgets, on an idle CPU and beside a CPU burner.

Each run is timed by a clock of its own around the graph (the wall time of
`investigate.start` less the model load the run reports), not by the budget's
clock: the promise is measured from outside. Two promises:

- overshoot: the graph's wall time is at most 5% past the budget;
- use: a run either finishes its lines of attack (the brain concluded with no
  call refused) or uses >= 80% of its budget before concluding.

The burner is one process spinning on one core for the duration of the busy
runs (bounded in time, killed at the end), which is what a researcher's other
job does to a 2-core machine.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path

from tools.errors import UserError

OVERSHOOT_LIMIT = 0.05
USE_SHARE = 0.8
AUDIT = "audit this model for hidden triggers, context markers, induction heads or token features"


@dataclass
class BudgetRun:
    """One investigation of the benchmark."""

    organism: str
    """Built-in organism audited."""
    load: str
    """idle, or busy (a CPU burner beside it)."""
    budget_s: float
    """Wall-clock budget given."""
    load_s: float
    """Model load and speed calibration before the clock started (reported, not charged)."""
    graph_s: float
    """Wall time around the graph, by the benchmark's own clock."""
    overshoot: float
    """max(0, graph_s / budget_s - 1)."""
    used: float
    """graph_s / budget_s."""
    stop_reason: str
    """Why the run stopped."""
    refused: int
    """Calls the budget refused."""
    stopped_at_deadline: int
    """Calls stopped at their deadline."""
    claims: int
    """Claims made."""
    finished: bool
    """The brain concluded on its own with nothing refused: its lines of attack ran to the end."""
    refusals: list[str]
    """Each refused call: its estimate and the measured speed behind it."""

    @property
    def holds(self) -> bool:
        return self.overshoot <= OVERSHOOT_LIMIT

    @property
    def budget_used_well(self) -> bool:
        return self.finished or self.used >= USE_SHARE


@contextmanager
def cpu_burner(seconds: float):
    """One process spinning on a core for at most `seconds` (it stops by itself; killed on exit)."""
    code = f"import time\nend = time.monotonic() + {seconds:.0f}\nwhile time.monotonic() < end:\n    pass\n"
    proc = subprocess.Popen([sys.executable, "-c", code])
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def _refusals(run_dir: Path) -> list[str]:
    import json

    out = []
    for line in (run_dir / "trace.jsonl").read_text().splitlines():
        event = json.loads(line)
        if event.get("event") == "error" and event.get("what") == "refused":
            out.append(event.get("message", ""))
    return out


def run_one(
    organism: str, budget_s: float, load: str, out: Path, seed: int = 0, device: str | None = None
) -> BudgetRun:
    from agent import investigate
    from agent.context import RunSettings
    from agent.question import parse_question
    from experiments.organisms.cache import ensure_trained, resolve_spec

    folder = ensure_trained(resolve_spec(organism))
    run_dir = out / f"{organism}-{load}-{budget_s:g}s"
    settings = RunSettings(
        question=parse_question(AUDIT, None).model_dump(mode="json"),
        model=f"organism:{folder}",
        wall_seconds=budget_s,
        memory=None,
        seed=seed,
        device=device,
    )
    t0 = time.monotonic()
    state, ctx = investigate.start(settings, run_dir)
    graph_s = time.monotonic() - t0 - ctx.budget.load_seconds
    reason = state.get("stop_reason", "")
    return BudgetRun(
        organism=organism,
        load=load,
        budget_s=budget_s,
        load_s=round(ctx.budget.load_seconds, 2),
        graph_s=round(graph_s, 2),
        overshoot=round(max(0.0, graph_s / budget_s - 1), 4),
        used=round(graph_s / budget_s, 3),
        stop_reason=reason,
        refused=ctx.budget.refused,
        stopped_at_deadline=ctx.budget.stopped_at_deadline,
        claims=len(state.get("claims", [])),
        finished=reason == "the brain concluded" and ctx.budget.refused == 0,
        refusals=_refusals(run_dir),
    )


def run(
    organisms: list[str],
    budgets: list[float],
    loads: list[str],
    out: Path | None = None,
    device: str | None = None,
    on_result=None,
) -> dict:
    """Every load x organism x budget; `on_result(run)` as each finishes."""
    from experiments.organisms.cache import ensure_trained, resolve_spec

    bad = [x for x in loads if x not in ("idle", "busy")]
    if bad:
        raise UserError(f"--load {','.join(bad)}: use idle, busy or both (idle,busy)")
    if not budgets or any(b <= 0 for b in budgets):
        raise UserError("--budgets: give positive seconds, e.g. 10,30,120")
    for name in organisms:
        ensure_trained(resolve_spec(name))  # training is not part of any run's time
    out = Path(out) if out else Path(tempfile.mkdtemp(prefix="interp-budget-"))
    runs: list[BudgetRun] = []
    for load in loads:
        # long enough for every run of this load; the burner stops by itself if we die
        ceiling = sum(budgets) * len(organisms) * 1.5 + 60 * len(organisms)
        with cpu_burner(ceiling) if load == "busy" else nullcontext():
            for name in organisms:
                for b in budgets:
                    r = run_one(name, b, load, out, device=device)
                    runs.append(r)
                    if on_result:
                        on_result(r)
    return {
        "runs": [{**asdict(r), "holds": r.holds, "budget_used_well": r.budget_used_well} for r in runs],
        "totals": totals(runs),
        "out": str(out),
    }


def totals(runs: list[BudgetRun]) -> dict:
    by = {load: [r for r in runs if r.load == load] for load in ("idle", "busy")}
    return {
        **{f"max_overshoot_{k}": max((r.overshoot for r in v), default=None) for k, v in by.items()},
        **{f"max_load_s_{k}": max((r.load_s for r in v), default=None) for k, v in by.items()},
        "overshoot_limit": OVERSHOOT_LIMIT,
        "all_within": all(r.holds for r in runs),
        "all_used_well": all(r.budget_used_well for r in runs),
        "refused": sum(r.refused for r in runs),
        "stopped_at_deadline": sum(r.stopped_at_deadline for r in runs),
        "runs": len(runs),
    }

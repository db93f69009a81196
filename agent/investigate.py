"""Launching and resuming an investigation: settings -> context -> graph -> run folder."""

from __future__ import annotations

import getpass
import os
from pathlib import Path
from typing import Callable

from agent.budget import Budget
from agent.context import RunContext, RunSettings
from agent.trace import Trace
from tools.errors import UserError


def default_run_dir(run_id: str) -> Path:
    return Path(os.environ.get("INTERP_RUNS", ".interp/runs")) / run_id


def _context(settings: RunSettings, run_dir: Path, budget: Budget, client=None, display=None) -> RunContext:
    from agent.brains import make_brain
    from tools.target import load

    brain = make_brain(settings.brain, settings.seed, client=client)
    memory = None
    if settings.memory:
        from memory.store import MemoryStore

        memory = MemoryStore(settings.memory)
    target = load(settings.model, settings.device)
    reviewer = os.environ.get("INTERP_REVIEWER") or getpass.getuser()
    return RunContext(settings=settings, target=target, brain=brain, run_dir=run_dir, budget=budget,
                      trace=Trace(run_dir / "trace.jsonl"), memory=memory, display=display, reviewer=reviewer)


def start(settings: RunSettings, run_dir: Path | None = None, client=None, display=None,
          ask: Callable | None = None):
    """A new run. The budget clock starts once the model is loaded: loading is not investigating."""
    from agent import graph

    run_dir = Path(run_dir or default_run_dir(settings.run_id))
    if (run_dir / "run.json").exists():
        raise UserError(f"{run_dir} already holds a run; resume it with --resume {run_dir} or choose another --run-dir")
    budget = settings.new_budget()  # validates the limits before anything is created
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create run folder {run_dir}: {e.strerror}") from None
    ctx = _context(settings, run_dir, budget, client, display)
    settings.save(run_dir)
    budget.start()
    return graph.run(ctx, resume=False, ask=ask), ctx


def resume(run_dir: Path, client=None, display=None, ask: Callable | None = None):
    """Continue a killed or crashed run from its last checkpoint; budget spent so far stays spent."""
    from agent import graph

    run_dir = Path(run_dir)
    settings = RunSettings.load(run_dir)
    saved = graph.checkpointed_state(run_dir, settings.run_id)
    budget = Budget.from_state(saved["budget"]) if saved and saved.get("budget") else settings.new_budget()
    ctx = _context(settings, run_dir, budget, client, display)
    budget.start()
    ctx.trace.write("resume", from_checkpoint=bool(saved), spent_seconds=round(budget.spent_seconds, 2))
    return graph.run(ctx, resume=bool(saved), ask=ask), ctx

"""Launching and resuming an investigation: settings -> context -> graph -> run folder."""

from __future__ import annotations

import getpass
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.budget import Budget, Heartbeat
from agent.context import RunContext, RunSettings, new_run_id
from agent.question import check_component
from agent.resume_check import check_checkpoint, restart_hint
from agent.run_folder import RunFolder
from agent.run_lock import RunLock
from agent.trace import Trace
from tools.clock import Clock, monotonic
from tools.errors import UserError

if TYPE_CHECKING:
    from anthropic import Anthropic

    from agent.display import Display
    from agent.state import InvestigationState
    from memory.store import MemoryStore

Ask = Callable[[dict[str, Any]], object]
"""Answers a live review: called with the review node's interrupt payload ({"claims": [...]}), returns
the decisions to resume the graph with."""

PREVIOUS_DIR = RunFolder.PREVIOUS
"""Where `--restart` keeps the files of the runs it set aside, inside the run folder."""


def default_run_dir(run_id: str) -> Path:
    return Path(os.environ.get("INTERP_RUNS", ".interp/runs")) / run_id


def _context(
    settings: RunSettings,
    run_dir: Path,
    budget: Budget,
    client: Anthropic | None = None,
    display: Display | None = None,
) -> RunContext:
    """Everything a run needs: the model loaded, its speed measured, the brain and memory opened."""
    from agent.brains import make_brain
    from agent.speed import calibrate
    from agent.targets import load
    from tools import registry

    brain = make_brain(settings.brain, settings.seed, client=client)
    memory: MemoryStore | None = None
    if settings.memory and settings.independent:
        from agent.independent_memory import IndependentMemory

        memory = IndependentMemory(settings.memory, settings.run_id)
    elif settings.memory:
        from memory.store import MemoryStore

        memory = MemoryStore(settings.memory)
    started = time.monotonic()
    target = load(settings.model, settings.device)
    speed = calibrate(target.model)
    registry.tools()  # imports every tool module now: importing is start-up, not investigating
    reviewer = os.environ.get("INTERP_REVIEWER") or getpass.getuser()
    ctx = RunContext(
        settings=settings,
        target=target,
        brain=brain,
        run_dir=run_dir,
        budget=budget,
        trace=Trace(RunFolder(run_dir).trace),
        memory=memory,
        display=display,
        reviewer=reviewer,
        speed=speed,
        heartbeat=Heartbeat(run_dir, budget),
    )
    ctx.trace.write(
        "load",
        seconds=round(time.monotonic() - started, 3),
        speed=speed.describe(),
        calibration_seconds=round(speed.calibration_seconds, 3),
    )
    return ctx


def start(
    settings: RunSettings,
    run_dir: Path | None = None,
    client: Anthropic | None = None,
    display: Display | None = None,
    ask: Ask | None = None,
    clock: Clock = monotonic,
) -> tuple[InvestigationState, RunContext]:
    """A new run. The budget clock starts once the model is loaded: loading is not investigating.
    `clock`: what the budget and every call's deadline read (tests drive a tools.clock.FakeClock)."""
    from agent import graph

    run_dir = Path(run_dir or default_run_dir(settings.run_id))
    if RunFolder(run_dir).settings.exists():
        raise UserError(f"{run_dir} already holds a run; resume it with --resume {run_dir} or choose another --run-dir")
    budget = settings.new_budget(clock)  # validates the limits before anything is created
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create run folder {run_dir}: {e.strerror}") from None
    with RunLock(run_dir):
        if RunFolder(run_dir).settings.exists():  # another process started a run here since the check above
            raise UserError(
                f"{run_dir} already holds a run; resume it with --resume {run_dir} or choose another --run-dir"
            )
        started = time.monotonic()
        ctx = _context(settings, run_dir, budget, client, display)
        check_component(settings.question, ctx.target)  # before any compute of the investigation
        settings.weights_hash = ctx.target.weights_hash
        settings.save(run_dir)
        _start_clock(budget, started)
        return graph.run(ctx, resume=False, ask=ask), ctx


def resume(
    run_dir: Path,
    client: Anthropic | None = None,
    display: Display | None = None,
    ask: Ask | None = None,
    clock: Clock = monotonic,
) -> tuple[InvestigationState, RunContext]:
    """Continue a killed or crashed run from its last checkpoint; budget spent so far stays spent.
    A damaged checkpoint, a folder another process is running, or changed weights are refused."""
    run_dir = Path(run_dir)
    settings = RunSettings.load(run_dir)
    with RunLock(run_dir):
        check_checkpoint(run_dir, settings.run_id)  # before anything is loaded
        return _resume(settings, run_dir, client, display, ask, clock)


def _resume(
    settings: RunSettings,
    run_dir: Path,
    client: Anthropic | None,
    display: Display | None,
    ask: Ask | None,
    clock: Clock,
) -> tuple[InvestigationState, RunContext]:
    from agent import graph

    started = time.monotonic()
    saved = graph.checkpointed_state(run_dir, settings.run_id)
    budget = Budget.from_state(saved["budget"], clock) if saved and saved.get("budget") else settings.new_budget(clock)
    # Time spent inside a call that was killed is on the heartbeat, not in the checkpoint: charge it.
    beat = Heartbeat.spent(run_dir)
    if beat is not None and beat > budget.spent_seconds:
        budget.spent_seconds = beat
    ctx = _context(settings, run_dir, budget, client, display)
    check_weights(settings, ctx.target.weights_hash, run_dir)
    _start_clock(budget, started)
    ctx.trace.write(
        "resume",
        from_checkpoint=bool(saved),
        spent_seconds=round(budget.spent_seconds, 2),
        heartbeat_seconds=beat,
        **(
            {"heartbeat": "missing or unreadable: only the checkpoint's time is charged"}
            if beat is None and RunFolder(run_dir).heartbeat.exists()
            else {}
        ),
    )
    return graph.run(ctx, resume=bool(saved), ask=ask), ctx


def _start_clock(budget: Budget, started: float) -> None:
    """Everything since `started` (loading, calibrating, opening memory) is start-up: reported beside the
    budget as load time, not charged to it. The budget's clock starts now."""
    budget.load_seconds += time.monotonic() - started
    budget.start()


def check_weights(settings: RunSettings, now: str, run_dir: Path) -> None:
    """A resume continues on the weights the run started on, or not at all: findings about one set of
    weights must not be completed on another. (Runs saved before the hash was recorded have none.)"""
    if settings.weights_hash is not None and settings.weights_hash != now:
        raise UserError(
            f"cannot resume {run_dir}: the weights of {settings.model} changed since the run started "
            f"(weights hash {settings.weights_hash} then, {now} now), and its findings are about the old weights. "
            f"Investigate the new weights in a new run (interp investigate QUESTION --model {settings.model}); "
            f"{restart_hint(run_dir)}"
        )


def restart(run_dir: Path) -> tuple[RunSettings, Path]:
    """Set a run aside to start it over in the same folder with the same settings (a new run id): every
    file of the old run moves to `previous/STAMP/` inside the folder, nothing is deleted. Returns the
    settings to `start` with and where the old files went."""
    import shutil
    from dataclasses import replace
    from datetime import UTC, datetime

    run_dir = Path(run_dir)
    settings = RunSettings.load(run_dir)
    with RunLock(run_dir) as lock:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        aside = run_dir / PREVIOUS_DIR / stamp
        n = 1
        while aside.exists():
            n += 1
            aside = run_dir / PREVIOUS_DIR / f"{stamp}-{n}"
        aside.mkdir(parents=True)
        for entry in sorted(run_dir.iterdir()):
            if entry.name not in (PREVIOUS_DIR, lock.path.name):
                shutil.move(str(entry), str(aside / entry.name))
    return replace(settings, run_id=new_run_id(), weights_hash=None), aside

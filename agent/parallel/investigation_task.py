"""One investigation as an engine task: its settings and run folder in, its claims and hypotheses out.

Run again after its worker died (agent.parallel.engine retries it), the task finds its own run folder
holding run.json and continues from the last checkpoint, with the same run id, as `--resume` does: memory
ids are content hashes of the run id and inputs, so nothing the killed attempt wrote is written twice. A
folder whose checkpoint cannot be trusted is set aside (`previous/`) and the run started over, still under
its run id.
"""

from __future__ import annotations

import os
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from agent.context import RunSettings
from tools.errors import UserError


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


class InvestigationTask(_Model):
    """What a worker needs to run one investigation."""

    settings: dict[str, Any]
    """RunSettings as run.json holds them (its run id included, so a retry is the same run)."""
    run_dir: str
    """The run folder, an absolute path every worker can reach."""

    @classmethod
    def of(cls, settings: RunSettings, run_dir: Path) -> InvestigationTask:
        return cls(settings=asdict(settings), run_dir=str(Path(run_dir).resolve()))


class HypothesisOutcome(_Model):
    """A hypothesis a run registered, and what its test showed."""

    id: str
    """Memory id (content hash of model, statement and weights)."""
    statement: str
    """What was hypothesised."""
    mechanism: str
    """trigger, context_marker, head, heads, feature, ... (agent.actions.Mechanism)."""
    component: dict[str, Any]
    """The component it names (memory.records.Component, unset fields left out)."""
    topic: str
    """claim (it answers the question) or incidental."""
    status: str
    """supported, refuted, inconclusive, error, skipped (already tried or rejected), open or untested."""
    note: str
    """Why: the judged fields, the error, or why it was skipped."""
    experiment_id: str
    """Its test's experiment id ('' when it was never run)."""


class RunOutcome(_Model):
    """What one investigation found, as the pooled report needs it."""

    run_id: str
    """The run's id."""
    run_dir: str
    """Its folder (report.md, claims.json, trace.jsonl)."""
    seed: int
    """The seed it ran with."""
    stop_reason: str
    """Why it stopped."""
    claims: list[dict[str, Any]]
    """Its claims (memory.records.Claim as JSON), as claims.json holds them."""
    hypotheses: list[HypothesisOutcome]
    """Every hypothesis it registered, claims and incidental findings included."""
    budget_seconds_used: float
    """Seconds of its budget it used."""
    load_seconds: float
    """Seconds loading the model took (not in the budget)."""
    pid: int
    """The worker process that finished it."""
    resumed: bool
    """Whether it was continued from a folder an earlier attempt left (its worker had died)."""


def run_investigation(task: InvestigationTask) -> RunOutcome:
    """Run (or, after a worker died, continue) one investigation and return what it found."""
    from agent import investigate as runner
    from agent.resume_check import check_checkpoint
    from agent.run_folder import RunFolder

    settings = RunSettings(**task.settings)
    run_dir = Path(task.run_dir)
    resumed = RunFolder(run_dir).settings.is_file()
    if not resumed:
        state, ctx = runner.start(settings, run_dir)
    else:
        try:
            check_checkpoint(run_dir, settings.run_id)
        except UserError:
            again, _aside = runner.restart(run_dir)
            state, ctx = runner.start(replace(again, run_id=settings.run_id), run_dir)
        else:
            state, ctx = runner.resume(run_dir)
    hypotheses = [
        HypothesisOutcome(
            id=h["id"],
            statement=h["plan"]["statement"],
            mechanism=h["plan"].get("mechanism", "other"),
            component={k: v for k, v in (h["plan"].get("component") or {}).items() if v is not None},
            topic=h["plan"].get("topic", "claim"),
            status=h["status"],
            note=h["note"],
            experiment_id=h["experiment_id"],
        )
        for h in state.get("hypotheses", [])
    ]
    return RunOutcome(
        run_id=settings.run_id,
        run_dir=str(ctx.run_dir.resolve()),
        seed=settings.seed,
        stop_reason=state.get("stop_reason", ""),
        claims=[dict(c) for c in state.get("claims", [])],
        hypotheses=hypotheses,
        budget_seconds_used=round(ctx.budget.elapsed(), 3),
        load_seconds=round(ctx.budget.load_seconds, 3),
        pid=os.getpid(),
        resumed=resumed,
    )

"""N independent runs of one question (seeds seed..seed+N-1), then one pooled report over them.

    parent/run0-seed0/   a whole run folder (report.md, claims.json, trace.jsonl, checkpoints)
    parent/run1-seed1/   ...
    parent/pooled.json   agent.pooled.PooledReport
    parent/pooled.md     the same for reading

The runs go to the engine (agent.parallel.engine) with `workers` (a local Ray cluster) or `address` (an
existing one), or run one after another in this process with neither. On the engine, the memory is shared
through a Chroma server (started for the job when the memory is a folder); each run reads it blind to the
other runs' attempts (agent.independent_memory), so each replication is its own.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from agent.context import MAX_SEED, RunSettings, new_run_id
from agent.parallel.engine import DEFAULT_RETRIES, Engine
from agent.parallel.investigation_task import InvestigationTask, RunOutcome, run_investigation
from agent.pooled import POOLED_JSON, PooledReport, pool, write
from agent.run_folder import RunFolder
from tools.errors import UserError

MAX_RUNS = 1000
"""Runs one job may have."""


def default_parent() -> Path:
    from agent.investigate import default_run_dir

    return default_run_dir("pooled-" + secrets.token_hex(4))


def run_folder_name(index: int, seed: int) -> str:
    return f"run{index}-seed{seed}"


def _absolute_brain(brain: str) -> str:
    """A scripted brain's file as an absolute path: workers need not share this process's directory."""
    kind, sep, rest = brain.partition(":")
    if kind == "scripted" and sep and rest:
        return f"scripted:{Path(rest).expanduser().resolve()}"
    return brain


def _absolute_model(model: str) -> str:
    """A model named by a path (`hf:DIR`, `gguf:FILE`, `organism:DIR` or `organism:SPEC.yaml`) with that path
    absolute, for the same reason; names (`organism:backdoor`, `smollm2`) are left as they are."""
    kind, sep, rest = model.strip().partition(":")
    if not sep or not rest or kind not in ("hf", "gguf", "organism"):
        return model
    path = Path(rest).expanduser()
    # as experiments.organisms.target reads it: a trained folder, else a name or a spec file (YAML)
    if kind == "organism" and not (path.is_dir() or (path.is_file() and path.suffix in (".yaml", ".yml"))):
        return model
    return f"{kind}:{path.resolve()}"


def plan(settings: RunSettings, runs: int, parent: Path) -> list[InvestigationTask]:
    """The job's tasks: one run per seed, each with its own run id and folder; checked before anything starts."""
    if isinstance(runs, bool) or not isinstance(runs, int) or not 1 <= runs <= MAX_RUNS:
        raise UserError(f"--runs {runs!r}: give a whole number of runs from 1 to {MAX_RUNS}")
    if settings.seed + runs - 1 > MAX_SEED:
        raise UserError(f"--seed {settings.seed} with --runs {runs}: the last seed would pass {MAX_SEED}")
    parent = Path(parent).expanduser().resolve()
    if parent.exists() and not parent.is_dir():
        raise UserError(f"--run-dir {parent} is a file: give a folder for the job's run folders")
    if (parent / POOLED_JSON).exists() or (parent.is_dir() and any(parent.glob("run*-seed*"))):
        raise UserError(f"{parent} already holds a pooled job; choose another --run-dir")
    base = replace(
        settings,
        brain=_absolute_brain(settings.brain),
        model=_absolute_model(settings.model),
        independent=True,
        weights_hash=None,
    )
    return [
        InvestigationTask.of(
            replace(base, seed=settings.seed + i, run_id=new_run_id()),
            parent / run_folder_name(i, settings.seed + i),
        )
        for i in range(runs)
    ]


def _name_the_folder_again(tasks: list[InvestigationTask], served: str, folder: str | None) -> None:
    """Each run's run.json names the job's server while the job runs; the server ends with the job, so
    afterwards it names the memory folder again (absolute: `--resume` of that run may come from anywhere).
    A run.json that cannot be read or written is left as it is, and said: the job's own outcome (or its
    error) is what the caller must see."""
    import sys

    if folder is not None and not folder.startswith(("http://", "https://")):
        folder = str(Path(folder).expanduser().resolve())
    for t in tasks:
        run_dir = Path(t.run_dir)
        if not RunFolder(run_dir).settings.is_file():
            continue
        try:
            saved = RunSettings.load(run_dir)
            if saved.memory == served:
                replace(saved, memory=folder).save(run_dir)
        except (UserError, OSError) as e:
            print(
                f"note: {run_dir}/run.json still names the job's memory server {served} ({e}); "
                f'to resume that run, set its "memory" to {folder}',
                file=sys.stderr,
            )


@contextmanager
def _runner(
    workers: int | None, address: str | None, memory: str | None
) -> Iterator[tuple[Callable[[list[InvestigationTask]], Iterator[RunOutcome]], str | None, str]]:
    """(how to run the tasks, the memory location the runs open, a description of where they run)."""
    if workers is None and address is None:

        def serial(tasks: list[InvestigationTask]) -> Iterator[RunOutcome]:
            for t in tasks:
                yield run_investigation(t)

        yield serial, memory, "in-process"
        return
    from agent.parallel.job_memory import shared_memory

    with Engine(workers=workers, address=address) as engine, shared_memory(memory, engine.local) as shared:

        def parallel(tasks: list[InvestigationTask]) -> Iterator[RunOutcome]:
            for done in engine.map(run_investigation, tasks, max_retries=DEFAULT_RETRIES):
                yield done.result

        where = f"local Ray, {workers} workers" if workers is not None else f"Ray at {address}"
        yield parallel, shared, where


def run_replicated(
    settings: RunSettings,
    runs: int,
    parent: Path | None = None,
    workers: int | None = None,
    address: str | None = None,
    on_run: Callable[[RunOutcome], None] | None = None,
) -> tuple[PooledReport, Path]:
    """Run the job and write its pooled report; returns it and the parent folder. `on_run` is called with
    each run's outcome as it finishes."""
    parent = Path(parent).expanduser().resolve() if parent else default_parent().resolve()
    tasks = plan(settings, runs, parent)
    started = time.monotonic()
    outcomes: list[RunOutcome] = []
    served: str | None = None
    try:
        with _runner(workers, address, settings.memory) as (run_all, memory, where):
            try:  # once the cluster is up: a job that cannot start leaves no folder behind
                parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise UserError(f"cannot create the folder {parent}: {e.strerror}") from None
            if memory != settings.memory:  # the job's server: every run opens it instead of the folder
                served = memory
                for t in tasks:
                    t.settings["memory"] = memory
            for outcome in run_all(tasks):
                outcomes.append(outcome)
                if on_run is not None:
                    on_run(outcome)
    finally:
        if served is not None:
            _name_the_folder_again(tasks, served, settings.memory)
    report = pool(outcomes, str(settings.question.get("text", "")), settings.model)
    report.seconds = round(time.monotonic() - started, 1)
    report.workers = where
    write(report, parent)
    return report, parent

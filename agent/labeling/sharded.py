"""A labeling job across Ray workers: features sharded, each shard labelled by `label` in a worker, merged.

Each shard is an engine task (agent.parallel.engine) that loads the target and SAE, harvests the corpus once
and labels its features into its own JSONL file (`<out>.shards/shard-K.jsonl`) and the job's memory (a Chroma
server, agent.parallel.job_memory). The driver alone writes `out`: as each shard finishes, its lines that `out`
lacks are appended there (fsync'd) and the shard file is removed. So:

- a worker that dies mid-shard loses only what it had not yet written: Ray runs the shard again, and `label`
  resumes from the shard's file (no feature is labelled twice, none lost);
- memory ids are content hashes of (model, SAE, feature, explainer): a rerun writes over, never beside;
- a driver killed at any point leaves `out` and shard files that the next run folds together first.

A feature's examples depend only on (seed, feature) and the corpus (agent/labeling/examples.py), so a shard
labels a feature as the whole job would. The price of a shard is its own harvest of the corpus (the fixed
part of a job), so shards default to one per worker.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from pydantic import BaseModel, ConfigDict

from agent.labeling.job import DEAD, append_labels, done_features, read_labels
from agent.labeling.scorers import SCORERS
from tools.errors import UserError

if TYPE_CHECKING:
    from agent.parallel.engine import Engine
    from memory.records import FeatureLabel


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


class LabelShard(_Model):
    """What a worker needs to label one shard."""

    model: str
    """Target spec (organism:NAME, smollm2, gguf:PATH, ...), loaded in the worker."""
    sae: str
    """SAE folder, a path every worker can reach."""
    features: list[int]
    """The shard's features."""
    corpus: list[str]
    """The whole corpus (every shard harvests all of it: the explain / score split is by prompt)."""
    brain: str
    """heuristic or claude."""
    judge: str
    """rule or claude."""
    claude_model: str | None
    """Claude model id for a claude brain or judge."""
    scorers: list[str]
    """detection, fuzzing, intervention."""
    memory: str | None
    """Memory URL (a Chroma server) or None."""
    seed: int
    """Seeds the split and samples (as in a one-process job)."""
    out: str
    """The shard's JSONL file."""
    device: str | None = None
    """Device for the target."""
    chunk: int = 32
    """Features per chunk (a chunk is written to the shard file as it finishes)."""


class ShardResult(_Model):
    """What a shard did."""

    out: str
    """Its JSONL file (to merge)."""
    labelled: int
    """Features labelled in this attempt."""
    skipped: int
    """Features already in the shard file or memory (labelled by an attempt that died)."""
    seconds: float
    """Wall clock of the attempt."""
    pid: int
    """The worker process that ran it."""


def run_shard(task: LabelShard) -> ShardResult:
    """Label one shard in this worker (module-level: Ray pickles it by reference)."""
    from agent.labeling.explainers import make_explainer, make_judge
    from agent.labeling.job import label
    from agent.targets import load

    t0 = time.perf_counter()
    target = load(task.model, device=task.device)
    store = None
    if task.memory is not None:
        from memory.store import MemoryStore

        store = MemoryStore(task.memory)
    run = label(
        target,
        task.sae,
        task.features,
        task.corpus,
        make_explainer(task.brain, task.claude_model),
        make_judge(task.judge, task.claude_model),
        tuple(task.scorers),
        store,
        seed=task.seed,
        chunk=task.chunk,
        out=Path(task.out),
    )
    return ShardResult(
        out=task.out,
        labelled=len(run.labelled),
        skipped=len(run.skipped) + len(run.known_dead),
        seconds=round(time.perf_counter() - t0, 2),
        pid=os.getpid(),
    )


def shard_folder(out: Path) -> Path:
    return out.with_name(out.name + ".shards")


def merge_shard(out: Path, shard: Path, model_id: str, sae_id: str, explainer: str) -> list[FeatureLabel]:
    """Append to `out` the shard's labels it lacks (fsync'd), then remove the shard file; -> those appended.
    An error line in `out` (other than dead) is replaced by the shard's later answer."""
    have = read_labels(out, model_id, sae_id, explainer)
    new = [
        r
        for f, r in sorted(read_labels(shard, model_id, sae_id, explainer).items())
        if f not in have or (have[f].error is not None and r.error is None)
    ]
    if new:
        append_labels(out, new)
    shard.unlink(missing_ok=True)
    shard.with_name(shard.name + ".lock").unlink(missing_ok=True)
    return new


class ShardedRun(NamedTuple):
    """What a sharded labeling job did."""

    appended: list[FeatureLabel]
    """Labels this job appended to the labels file (a killed job's shard files folded in included)."""
    shards: list[ShardResult]
    """Each shard's result (none when nothing was left to label)."""
    known_dead: list[int]
    """Features the file already held as dead on this corpus when the job began (not tried again)."""


def label_sharded(
    engine: Engine,
    model: str,
    model_id: str,
    sae: str,
    features: list[int],
    corpus: list[str],
    out: Path,
    brain: str = "heuristic",
    judge: str = "rule",
    claude_model: str | None = None,
    scorers: tuple[str, ...] = SCORERS,
    memory: str | None = None,
    seed: int = 0,
    shards: int | None = None,
    device: str | None = None,
    on_feature: Callable[[int], object] | None = None,
    chunk: int = 32,
) -> ShardedRun:
    """Label `features` across the engine's workers into `out`. `memory` is the workers' memory URL (see
    agent.parallel.job_memory)."""
    from agent.labeling.explainers import explainer_name
    from agent.run_lock import ProcessLock

    if shards is not None and shards < 1:
        raise UserError(f"--shards {shards}: give at least 1")
    sae_id = str(Path(sae).resolve()) if Path(sae).is_dir() else sae
    name = explainer_name(brain, claude_model)
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    folder = shard_folder(out)
    what, advice = (
        f"labels file {out}",
        "wait for that labeling job to finish (it resumes from the file), or give another --out",
    )
    with ProcessLock(out.with_name(out.name + ".lock"), what, advice):
        appended: list[FeatureLabel] = []
        for left in sorted(folder.glob("shard-*.jsonl")):  # a killed job's shards, folded in before anything else
            appended += merge_shard(out, left, model_id, sae_id, name)
        final = read_labels(out, model_id, sae_id, name)
        done = {f for f, r in final.items() if r.error is None or r.error == DEAD}
        folded = {r.feature for r in appended}  # a killed job's lines: this job's to report
        known_dead = [f for f in features if f in final and final[f].error == DEAD and f not in folded]
        if memory is not None:
            from memory.store import MemoryStore

            store = MemoryStore(memory)
            missing = [r for f, r in final.items() if f not in done_features(store, model_id, sae_id, name)]
            if missing:
                store.put_many(missing)  # in the file, never reached memory (a killed job)
            done |= done_features(store, model_id, sae_id, name)
        todo = [f for f in features if f not in done]
        if on_feature and len(todo) < len(features):
            on_feature(len(features) - len(todo))
        if not todo:
            shutil.rmtree(folder, ignore_errors=True)
            return ShardedRun(appended, [], known_dead)
        n = min(len(todo), shards or engine.workers or 1)
        folder.mkdir(exist_ok=True)
        tasks = [
            LabelShard(
                model=model,
                sae=str(Path(sae).resolve()) if Path(sae).exists() else sae,
                features=todo[k::n],
                corpus=corpus,
                brain=brain,
                judge=judge,
                claude_model=claude_model,
                scorers=list(scorers),
                memory=memory,
                seed=seed,
                out=str(folder / f"shard-{k}.jsonl"),
                device=device,
                chunk=chunk,
            )
            for k in range(n)
        ]
        results: list[ShardResult] = []
        for done_task in engine.map(run_shard, tasks):
            results.append(done_task.result)
            new = merge_shard(out, Path(done_task.result.out), model_id, sae_id, name)
            appended += new
            if on_feature:
                on_feature(len(tasks[done_task.index].features))
        shutil.rmtree(folder, ignore_errors=True)
        return ShardedRun(appended, results, known_dead)

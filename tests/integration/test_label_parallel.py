"""A labeling job across two Ray workers (agent/labeling/sharded.py) on a real local cluster, its memory
served by a Chroma server for the job: a worker killed with SIGKILL mid-shard is replaced, the shard resumes
from its file, and every feature ends up labelled exactly once in the labels file and in memory."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from agent.labeling.sharded import label_sharded, shard_folder
from agent.targets import load
from tests.saes import train_features_sae

pytest.importorskip("ray")

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # a Ray cluster, a Chroma server, two model loads


@pytest.fixture(scope="module")
def organism(builtin, tmp_path_factory):
    folder = builtin("features")
    target = load(f"organism:{folder}")
    corpus = target.usage_prompts(600, seed=0)
    sae = train_features_sae(target, corpus, tmp_path_factory.mktemp("sae"), d_sae=64, steps=200)
    return f"organism:{folder}", target, sae, corpus


def _kill_first_shard_after_its_first_chunk(folder: Path, killed: list[int], stop: threading.Event) -> None:
    """SIGKILL the worker holding shard-0's file once a chunk of it is written (its pid is in the lock file)."""
    shard = folder / "shard-0.jsonl"
    while not stop.is_set():
        if shard.is_file() and shard.read_text().count("\n") >= 1:
            pid = int((folder / "shard-0.jsonl.lock").read_text().strip())
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
            return
        time.sleep(0.02)


def test_a_worker_killed_mid_shard_loses_and_duplicates_no_label(organism, tmp_path):
    from agent.parallel.engine import Engine
    from agent.parallel.job_memory import shared_memory
    from memory.store import MemoryStore

    spec, target, sae, corpus = organism
    out = tmp_path / "labels.jsonl"
    features = list(range(64))
    killed: list[int] = []
    stop = threading.Event()
    watcher = threading.Thread(
        target=_kill_first_shard_after_its_first_chunk, args=(shard_folder(out.resolve()), killed, stop)
    )
    with Engine(workers=2) as engine, shared_memory(str(tmp_path / "mem")) as url:
        watcher.start()
        try:
            appended, shards, _ = label_sharded(
                engine, spec, target.model_id, sae, features, corpus, out, memory=url, chunk=2,
                scorers=("detection",),
            )  # fmt: skip
        finally:
            stop.set()
            watcher.join()
        assert killed, "the shard finished before it could be killed"
        stored = [r for r in MemoryStore(url).list(kind="feature_label") if r.model_id == target.model_id]
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert sorted(r["feature"] for r in lines) == features  # each exactly once
    assert sorted(r.feature for r in stored) == features
    assert sorted(r.feature for r in appended) == features
    retried = next(s for s in shards if s.out.endswith("shard-0.jsonl"))
    assert retried.pid != killed[0] and retried.skipped >= 2  # resumed from the chunk the dead worker wrote
    assert not shard_folder(out.resolve()).exists()


def test_a_rerun_folds_a_killed_jobs_shards_in_and_labels_only_the_rest(organism, tmp_path):
    """A driver killed mid-job leaves shard files: the next run merges them first and labels the rest once."""
    from agent.labeling.job import HeuristicExplainer, label
    from agent.parallel.engine import Engine

    spec, target, sae, corpus = organism
    out = (tmp_path / "labels.jsonl").resolve()
    folder = shard_folder(out)
    folder.mkdir()
    # what a killed job left: shard 1 had labelled features 1, 3, 5 into its file
    label(target, sae, [1, 3, 5], corpus, HeuristicExplainer(), scorers=("detection",), out=folder / "shard-1.jsonl")
    with Engine(workers=2) as engine:
        appended, shards, _ = label_sharded(engine, spec, target.model_id, sae, list(range(8)), corpus, out,
                                         scorers=("detection",))  # fmt: skip
    assert sorted(r.feature for r in appended) == list(range(8))
    assert sum(s.labelled for s in shards) == 5  # 1, 3 and 5 came from the old shard file
    assert sorted(json.loads(x)["feature"] for x in out.read_text().splitlines()) == list(range(8))

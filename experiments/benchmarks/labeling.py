"""Labeling throughput: features explained and scored per minute, offline, on this machine.

The baseline in the same run is the cost of just collecting the examples (one
harvest of the corpus and the SAE encode): the ratio says how much the
explaining and scoring add on top of reading the activations.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tools.target import Target


def run(n_features: int = 128, corpus_size: int = 1000, seed: int = 0, device: str | None = None) -> dict:
    from agent.labeling.examples import collect
    from agent.labeling.job import HeuristicExplainer, label
    from agent.targets import load
    from experiments.organisms.cache import ensure_trained, resolve_spec
    from tools.registry import call

    folder = ensure_trained(resolve_spec("features"))
    target = load(f"organism:{folder}", device=device)
    corpus = target.usage_prompts(corpus_size, seed)
    with tempfile.TemporaryDirectory() as tmp:
        sae = str(Path(tmp) / "sae")
        t0 = time.perf_counter()
        call(
            target,
            "sae_train",
            {
                "hook": "blocks.1.hook_resid_pre",
                "corpus": {"prompts": corpus},
                "out": sae,
                "d_sae": n_features,
                "k": 4,
                "steps": 600,
                "batch_size": 256,
                "seed": seed,
            },
        )
        train_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        collect(target, sae, list(range(n_features)), corpus, seed=seed)
        collect_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        r = label(target, sae, list(range(n_features)), corpus, HeuristicExplainer(), seed=seed)
        label_s = time.perf_counter() - t0
    ok = [x for x in r.labelled if x.error is None]
    scores: dict[str, list[float]] = {}
    for x in ok:
        for k, v in x.scores.items():
            scores.setdefault(k, []).append(v)
    return {
        "organism": "features",
        "device": str(target.model.cfg.device),
        "features": n_features,
        "corpus_contexts": corpus_size,
        "labelled": len(ok),
        "dead_or_error": len(r.labelled) - len(ok),
        "seconds": round(label_s, 2),
        "features_per_minute": round(60 * n_features / label_s, 1),
        "labelled_per_minute": round(60 * len(ok) / label_s, 1),
        "collect_only_seconds": round(collect_s, 2),
        "label_vs_collect_only": round(label_s / collect_s, 2) if collect_s else None,
        "sae_train_seconds": round(train_s, 2),
        "mean_scores": {k: round(sum(v) / len(v), 4) for k, v in scores.items()},
        "scorers": ["detection", "fuzzing", "intervention"],
        "target_features_per_minute": 60,
    }


SMOLLM2_SAE = {"hook": "blocks.6.hook_resid_pre", "d_sae": 2304, "k": 16, "steps": 1000, "batch_size": 512}
"""The SAE the SmolLM2 run labels (the one issue 21 measured on): 4 x d_model features, TopK 16."""


def _smollm2_sae(target: Target, corpus: list[str], seed: int) -> tuple[str, float, dict[str, float]]:
    """(folder, seconds spent training or 0 when cached, its held-out stats): trained with `sae_train`
    once and kept under $INTERP_CACHE/labeling-bench/, keyed by the weights, corpus and settings."""
    import hashlib
    import json

    from tools.registry import call
    from tools.target import cache_root

    key = hashlib.sha256(json.dumps([target.model_id, corpus, SMOLLM2_SAE, seed]).encode()).hexdigest()[:12]
    folder = cache_root() / "labeling-bench" / f"smollm2-sae-{key}"
    if (folder / "cfg.json").is_file():
        stats = json.loads((folder / "bench_stats.json").read_text()) if (folder / "bench_stats.json").is_file() else {}
        return str(folder), 0.0, stats
    tmp = folder.with_name(folder.name + ".partial")
    t0 = time.perf_counter()
    r = call(target, "sae_train", {**SMOLLM2_SAE, "corpus": {"prompts": corpus}, "out": str(tmp), "seed": seed})
    st = r.model_dump()["stats"]
    stats = {k: float(st[k]) for k in ("variance_explained", "l0", "dead_fraction")} | {"steps": float(r.steps)}
    (tmp / "bench_stats.json").write_text(json.dumps(stats))
    tmp.rename(folder)  # whole or absent: a killed training never leaves a half SAE in the cache
    return str(folder), time.perf_counter() - t0, stats


def run_smollm2(
    corpus_size: int = 1500,
    features: int | None = None,
    seed: int = 0,
    device: str | None = None,
    workers: int | None = None,
) -> dict:
    """Label every feature of SmolLM2's blocks.6.hook_resid_pre SAE over `corpus_size` English
    sentences (experiments/benchmarks/prose.py: the standard library's docstrings) into a labels file and a
    memory store, as `interp label` does; the fixed cost (one pass: harvest, encode, predictions) against a
    plain stop-early harvest of the same corpus timed in the same run. With `workers`, the same job again
    sharded across that many local Ray workers (agent/labeling/sharded.py), its speed-up over the one-process
    job of this run."""
    import numpy as np

    from agent.labeling.explanation import Explanation
    from agent.labeling.job import HeuristicExplainer, label
    from agent.labeling.scorers import RuleJudge, detection
    from agent.targets import load
    from experiments.benchmarks.prose import prose_sentences
    from tools.activations import harvest
    from tools.prompts import Encoded, encode

    target = load("smollm2", device=device)
    corpus = prose_sentences(corpus_size, seed)
    sae, train_s, sae_stats = _smollm2_sae(target, corpus, seed)
    feats = list(range(features or SMOLLM2_SAE["d_sae"]))
    model, hook = target.model, SMOLLM2_SAE["hook"]
    # the baselines: the harvest every tool does (corpus order, padded to the longest prompt) and the same
    # harvest over length-sorted batches (what the labeling pass does before encoding)
    enc = encode(model, corpus, "corpus")
    t0 = time.perf_counter()
    harvest(model, enc, [hook], "all")
    harvest_s = time.perf_counter() - t0
    order = np.argsort(enc.lengths.cpu().numpy(), kind="stable")
    t0 = time.perf_counter()
    for i in range(0, len(order), 64):
        idx = order[i : i + 64]
        lens = enc.lengths[idx]
        harvest(model, Encoded(enc.tokens[idx, : int(lens.max())], lens, [corpus[j] for j in idx]), [hook], "all")
    sorted_s = time.perf_counter() - t0
    from memory.store import MemoryStore

    with tempfile.TemporaryDirectory() as tmp:
        store = MemoryStore(Path(tmp) / "memory")
        t0 = time.perf_counter()
        r = label(
            target, sae, feats, corpus, HeuristicExplainer(), store=store, seed=seed, out=Path(tmp) / "labels.jsonl"
        )
        label_s = time.perf_counter() - t0
    parallel = _parallel(target.model_id, sae, feats, corpus, seed, workers, label_s) if workers else None
    fixed = sum(r.stages.get(k, 0.0) for k in ("harvest", "encode", "select", "predict"))
    ok = [x for x in r.labelled if x.error is None]
    scores: dict[str, list[float]] = {}
    for x in ok:
        for k, v in x.scores.items():
            scores.setdefault(k, []).append(v)
    # the control: each label scored on another feature's held-out contexts
    from agent.labeling.examples import collect

    sample = [x for x in ok if "detection" in x.scores][:200]
    fes = {fe.feature: fe for fe in collect(target, sae, [x.feature for x in sample], corpus, seed=seed)}
    perm = np.random.default_rng(seed).permutation(len(sample))
    shuffled = [
        detection(RuleJudge(), Explanation.model_validate(sample[int(j)].explanation), fes[x.feature])
        for x, j in zip(sample, perm, strict=True)
        if int(j) != sample.index(x)
    ]
    shuffled_scores = [s for s in shuffled if s is not None]
    return {
        "model": "smollm2",
        "device": str(model.cfg.device),
        "sae": {"hook": hook, "features": SMOLLM2_SAE["d_sae"], "k": SMOLLM2_SAE["k"], **sae_stats},
        "sae_train_seconds": round(train_s, 1),
        "features": len(feats),
        "corpus_contexts": corpus_size,
        "labelled": len(ok),
        "dead_or_error": len(r.labelled) - len(ok),
        "seconds": round(label_s, 2),
        "features_per_minute": round(60 * len(feats) / label_s, 1),
        "fixed_seconds": round(fixed, 2),
        "fixed_stages": {k: round(v, 2) for k, v in r.stages.items()},
        "harvest_seconds": round(harvest_s, 2),
        "harvest_length_sorted_seconds": round(sorted_s, 2),
        "fixed_vs_harvest": round(fixed / harvest_s, 2),
        "fixed_vs_length_sorted_harvest": round(fixed / sorted_s, 2),
        "mean_scores": {k: round(sum(v) / len(v), 4) for k, v in scores.items()},
        "scored": {k: len(v) for k, v in scores.items()},
        "shuffled_label_detection": round(float(np.mean(shuffled_scores)), 4) if shuffled_scores else None,
        "target_features_per_minute": 300,
        "target_fixed_vs_harvest": 2.0,
        "parallel": parallel,
    }


def _parallel(
    model_id: str, sae: str, feats: list[int], corpus: list[str], seed: int, workers: int, serial_s: float
) -> dict:
    """The same job on `workers` local Ray workers (cluster start and memory server included in the time)."""
    from agent.labeling.sharded import label_sharded
    from agent.parallel.engine import Engine
    from agent.parallel.job_memory import shared_memory

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        with Engine(workers=workers) as engine, shared_memory(str(Path(tmp) / "memory")) as url:
            started = time.perf_counter() - t0
            appended, shards, _ = label_sharded(
                engine, "smollm2", model_id, sae, feats, corpus, Path(tmp) / "labels.jsonl", memory=url, seed=seed
            )
        seconds = time.perf_counter() - t0
    return {
        "workers": workers,
        "labelled": len(appended),
        "seconds": round(seconds, 2),
        "cluster_and_memory_start_seconds": round(started, 2),
        "features_per_minute": round(60 * len(feats) / seconds, 1),
        "speedup_vs_one_process": round(serial_s / seconds, 2),
        "shard_seconds": [s.seconds for s in shards],
    }

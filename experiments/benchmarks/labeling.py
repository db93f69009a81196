"""Labeling throughput: features explained and scored per minute, offline, on this machine.

The baseline in the same run is the cost of just collecting the examples (one
harvest of the corpus and the SAE encode): the ratio says how much the
explaining and scoring add on top of reading the activations.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path


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

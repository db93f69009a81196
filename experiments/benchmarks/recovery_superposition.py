"""Recovery of features stored in superposition: by an SAE, and by the agent's claims.

(a) The SAE baseline (Sharkey et al., "taking features out of superposition"): train an SAE at the
manifest's hook with the project's own trainer (`tools.sae.train_sae`, the `sae_train` tool) and
score its decoder directions by mean max cosine similarity (MMCS) with the true feature
directions: for each true feature, the largest cosine with any learned direction, averaged.
Two SAEs are scored: one trained the way the agent's tool trains, on every position of the
organism's ordinary inputs, and one with the same trainer core on the query position alone (where
the truth was measured), to show how much the choice of rows matters. Both get
settings the agent would have to guess: 4 x n_features learned features, TopK k = the expected
number of features per context (rounded up).

(b) The agent: each represented feature (the manifest's `represented`, a measured readout) is an
item, recovered by a supported causal `feature` claim whose `tokens` are exactly the tokens that
carry that feature (`[token]`: one input token per feature) and whose `output` is its output token.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tools import deadline

if TYPE_CHECKING:
    from experiments.benchmarks.recovery import Item
    from experiments.organisms.manifest import SuperpositionTruth

COS_RECOVERED = 0.9
"""A true feature counts as recovered by a dictionary when some learned direction has cosine >= this."""


def mmcs(learned: np.ndarray, true: np.ndarray) -> tuple[float, np.ndarray]:
    """(mean over true directions of the max cosine with any learned direction, that max per true
    direction). Rows are directions in the same space; signed cosine, since a feature's direction and
    its negation are different features. Zero-norm rows have cosine 0 with everything."""

    def unit(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        n = np.linalg.norm(x, axis=1, keepdims=True)
        return np.divide(x, n, out=np.zeros_like(x), where=n > 0)

    if learned.shape[1] != true.shape[1]:
        raise ValueError(f"learned directions are {learned.shape[1]}-dimensional, true ones {true.shape[1]}")
    best = (unit(true) @ unit(learned).T).max(1)
    return float(best.mean()), best


def feature_items(truth: SuperpositionTruth) -> list[tuple[Item, object]]:
    """One item per represented feature, with its claim matcher (rule (b) in the module docstring)."""
    from experiments.benchmarks.recovery import Item

    return [
        (
            Item(f"feature {f.token} -> {f.output_token}"),
            lambda c, f=f: (
                c["mechanism"] == "feature"
                and c["component"]["tokens"] == [f.token]
                and c["component"]["output"] == f.output_token
            ),
        )
        for f in truth.features
        if f.represented
    ]


@dataclass
class SaeRecovery:
    """How well one SAE's decoder directions match the true feature directions."""

    rows: str
    """Which activations it was trained on: `all positions` (as the sae_train tool does) or `query position`."""
    d_sae: int
    """Learned features."""
    k: int
    """TopK active features per row."""
    steps: int
    """Optimiser steps."""
    mmcs: float
    """Mean over the represented true features of the max cosine with a learned decoder direction."""
    recovered: int
    """Represented true features with a learned direction of cosine >= COS_RECOVERED."""
    features: int
    """Represented true features."""
    max_cos: list[float]
    """Per represented true feature, the max cosine."""
    variance_explained: float
    """Held-out variance explained by the SAE on its own rows."""
    seconds: float
    """Training wall clock."""


def sae_baseline(
    folder: Path, truth: SuperpositionTruth, steps: int = 2000, seed: int = 0, n_prompts: int = 2000
) -> list[SaeRecovery]:
    """Train the two SAEs of rule (a) on the trained organism in `folder` and score them."""
    import time

    import torch

    from agent.targets import load
    from experiments.organisms.cache import SPEC_FILE, resolve_spec
    from experiments.organisms.prompts import usage_prompts
    from tools.activations import harvest
    from tools.corpus import CorpusSpec
    from tools.prompts import encode
    from tools.sae import SaeTrainInput, sae_stats, train_sae
    from tools.sae_training import SaeTraining

    target = load(f"organism:{folder}", device="cpu")
    spec = resolve_spec(str(folder / SPEC_FILE))
    prompts = usage_prompts(spec, n_prompts, seed)
    rep = [f for f in truth.features if f.represented]
    true = np.array([f.direction for f in rep]) if rep else np.zeros((0, truth.d_model))
    # A baseline at its best: a dictionary 4x the true feature count, k the expected features per context.
    d_sae = 4 * truth.n_features
    k = max(1, math.ceil(spec.task.n_features * spec.task.feature_probability))
    out: list[SaeRecovery] = []

    def scored(rows: str, decoder: np.ndarray, ve: float, seconds: float) -> SaeRecovery:
        m, best = mmcs(decoder, true) if len(true) else (0.0, np.zeros(0))
        return SaeRecovery(
            rows=rows,
            d_sae=d_sae,
            k=k,
            steps=steps,
            mmcs=round(m, 4),
            recovered=int((best >= COS_RECOVERED).sum()),
            features=len(true),
            max_cos=[round(float(x), 4) for x in best],
            variance_explained=round(ve, 4),
            seconds=round(seconds, 1),
        )

    inp = SaeTrainInput(
        hook=truth.hook,
        corpus=CorpusSpec(prompts=prompts),
        out="",
        d_sae=d_sae,
        k=k,
        steps=steps,
        batch_size=512,
        lr=3e-3,
        seed=seed,
    )
    with tempfile.TemporaryDirectory(prefix="interp-sae-") as tmp:
        start = time.perf_counter()
        result = train_sae(target, inp.model_copy(update={"out": str(Path(tmp) / "sae")}))
        from tools.sae import load_sae

        decoder = load_sae(result.path).W_dec.detach().cpu().numpy()
        out.append(scored("all positions", decoder, result.stats.variance_explained, time.perf_counter() - start))

    # The same trainer core on the rows that hold the summed features: the query position (each prompt's last).
    start = time.perf_counter()
    acts = harvest(target.model, encode(target.model, prompts), [truth.hook], "last").acts[truth.hook].float()
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(acts), generator=gen)
    n_test = max(10, len(acts) // 10)
    test, train = acts[order[:n_test]], acts[order[n_test:]]
    torch.manual_seed(seed)
    fit = SaeTraining(inp, acts.shape[1], d_sae, "cpu")
    sae = fit.sae
    with torch.no_grad():
        sae.b_dec.copy_(train.mean(0))
    for _ in range(steps):
        deadline.check("training the query-position SAE")
        fit.step(train[torch.randint(len(train), (inp.batch_size,), generator=gen)])
    sae.eval()
    ve = sae_stats(sae, test).variance_explained
    out.append(scored("query position", sae.W_dec.detach().cpu().numpy(), ve, time.perf_counter() - start))
    return out


def sae_baseline_dict(folder: Path, truth: SuperpositionTruth, **kw) -> list[dict]:
    """`sae_baseline` as JSON-ready dicts (for the benchmark's result file)."""
    return [asdict(r) for r in sae_baseline(folder, truth, **kw)]

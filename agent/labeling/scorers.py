"""Scoring explanations on held-out contexts.

    detection     balanced accuracy of telling held-out activating contexts from
                  non-activating ones, by applying the explanation
    fuzzing       balanced accuracy of telling contexts whose marked tokens are the
                  truly activating ones from contexts with as many tokens marked at random
    intervention  steering along the feature's decoder direction at its hook: how much
                  more often the model predicts the explanation's `output` than along
                  random directions (clipped to [0, 1])

Detection and fuzzing go through a judge: the offline `RuleJudge` applies the
structured explanation; `agent.labeling.claude.ClaudeJudge` asks Claude. A judge
that fails raises `JudgeError`, which becomes an error on the label, never a score.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from agent.labeling.examples import Example, FeatureExamples
from agent.labeling.explanation import Explanation

if TYPE_CHECKING:
    from sae_lens import SAE
    from torch import Tensor
    from transformer_lens import HookedTransformer

    from agent.labeling.activations import CorpusActivations
    from tools.target import Target

SCORERS = ("detection", "fuzzing", "intervention")


class JudgeError(Exception):
    """The judge could not answer (API failure, malformed answer)."""


class Judge(Protocol):
    name: str

    def detect(self, explanation: Explanation, contexts: list[Example]) -> list[bool]:
        """For each context: does the explanation say the feature fires at its last token?"""

    def fuzz(self, explanation: Explanation, contexts: list[Example], marked: list[list[int]]) -> list[bool]:
        """For each context: are the marked positions what the explanation describes?"""


class RuleJudge:
    """Applies the structured explanation as a rule (offline, deterministic)."""

    name = "rule"

    def detect(self, explanation: Explanation, contexts: list[Example]) -> list[bool]:
        return [explanation.applies(c.tokens) for c in contexts]

    def fuzz(self, explanation: Explanation, contexts: list[Example], marked: list[list[int]]) -> list[bool]:
        return [explanation.marks_right(c.tokens, m) for c, m in zip(contexts, marked, strict=False)]


def balanced_accuracy(pos: list[bool], neg: list[bool]) -> float:
    return round(0.5 * (float(np.mean(pos)) + 1.0 - float(np.mean(neg))), 4)


def detection(judge: Judge, explanation: Explanation, fe: FeatureExamples) -> float | None:
    """None when the scoring half lacks activating or non-activating contexts."""
    if not fe.held_out or not fe.negatives:
        return None
    said = judge.detect(explanation, fe.held_out + fe.negatives)
    n = len(fe.held_out)
    return balanced_accuracy(said[:n], said[n:])


def fuzzing(judge: Judge, explanation: Explanation, fe: FeatureExamples, seed: int = 0) -> float | None:
    """Right marks: the positions where the feature is active. Wrong marks: as many positions
    drawn among the inactive ones of the same window (contexts with none are skipped)."""
    rng = np.random.default_rng(seed)
    right, wrong, ctx_r, ctx_w = [], [], [], []
    for e in fe.held_out:
        on = [i for i, a in enumerate(e.activations) if a > 0]
        off = [i for i, a in enumerate(e.activations) if a <= 0]
        if not on or not off:
            continue
        ctx_r.append(e)
        right.append(on)
        ctx_w.append(e)
        wrong.append(sorted(rng.choice(off, size=min(len(on), len(off)), replace=False).tolist()))
    if not ctx_r:
        return None
    said = judge.fuzz(explanation, ctx_r + ctx_w, right + wrong)
    return balanced_accuracy(said[: len(ctx_r)], said[len(ctx_r) :])


def intervention(
    target: Target,
    sae: str,
    hook: str,
    explanation: Explanation,
    fe: FeatureExamples,
    prompts: list[str],
    seed: int = 0,
) -> float | None:
    """Steer along the feature on `prompts` (contexts where it is silent); score the rise in
    predicting the explanation's output over random directions. None without an output."""
    from tools import registry

    if not explanation.output or not prompts:
        return None
    out = explanation.output[0]
    r = registry.call(
        target,
        "steer",
        {
            "hook": hook,
            "prompts": prompts,
            "sae": sae,
            "feature": fe.feature,
            "metric": {"kind": "rate", "token": out},
            "coefficients": [0.0, 1.0, 2.0],
            "n_random": 2,
            "seed": seed,
        },
    )
    from tools.steer import SteerResult

    if not isinstance(r, SteerResult):
        raise TypeError(f"steer returned {type(r).__name__}, not a SteerResult")
    return round(float(np.clip(r.effect - max(r.control, 0.0), 0.0, 1.0)), 4)


STEER_HOOKS = ("hook_resid_pre", "hook_resid_post")
"""Hooks `intervention_batch` can steer at from the harvested activations (the forward resumes there)."""


def steer_start(hook: str) -> int | None:
    """The block a forward resumes at when `hook` holds the residual stream; None for other hooks."""
    from tools.hooks import hook_layer

    layer = hook_layer(hook)
    if layer is None or hook.rsplit(".", 1)[-1] not in STEER_HOOKS:
        return None
    return layer if hook.endswith("hook_resid_pre") else layer + 1


@dataclass
class SteerJob:
    """One feature's intervention: steer along it at the last position of corpus rows where it is silent."""

    feature: int
    """SAE feature index."""
    output: int
    """Token id the explanation says steering should promote."""
    rows: list[int]
    """Rows of the harvest (contexts where the feature is silent)."""


def intervention_batch(
    model: HookedTransformer,
    sae: SAE,
    acts: CorpusActivations,
    jobs: list[SteerJob],
    seed: int = 0,
    coefficients: tuple[float, ...] = (1.0, 2.0),
    n_random: int = 2,
    batch_rows: int = 64,
) -> dict[int, float]:
    """`intervention` for many features at once, with steer's definitions (coefficient 1 = the mean
    norm of the hook's activation on the contexts, random directions of equal norm as the control,
    the rate of the output token at the last position), computed from the harvested activations:
    each steered context resumes the forward at the SAE's hook (nothing before it is recomputed), its
    prefix runs once for all its steered copies (steering at the last position changes nothing
    earlier), every feature's and control's copies share batches, and only the last position is
    unembedded. `batch_rows` contexts at a time (their copies' key-value caches are held together)."""
    import torch
    from transformer_lens.cache.key_value_cache import TransformerLensKeyValueCache

    from tools.sae import decoder_direction

    start = steer_start(sae.cfg.metadata.hook_name)
    if start is None or acts.x is None:
        raise ValueError(f"intervention_batch steers at {', '.join(STEER_HOOKS)} only")
    x = acts.x
    gen = torch.Generator().manual_seed(seed)
    randoms = [r / r.norm() for r in (torch.randn(x.shape[1], generator=gen) for _ in range(n_random))]
    # (row, delta) for every steered copy; hit[i] collects whether copy i predicts its job's output
    rows: list[int] = []
    deltas: list[Tensor] = []
    for job in jobs:
        unit = decoder_direction(sae, job.feature).float().cpu()
        norm = float(x[job.rows].norm(dim=-1).mean())
        for c in (0.0, *coefficients):
            for v in [unit] if c == 0 else [unit, *randoms]:
                rows += job.rows
                deltas += [c * norm * v] * len(job.rows)
    hits = np.zeros(len(rows), dtype=bool)
    outputs = np.array([j.output for j in jobs for _ in range((1 + len(coefficients) * (1 + n_random)) * len(j.rows))])
    # Steered copies of a context differ only at its last position: its prefix runs once (keys and values
    # cached per layer), then each copy runs its last token alone against that cache. Contexts of one
    # length share a batch, so no padding shifts a position.
    by_context: dict[int, list[int]] = {}
    for i, r in enumerate(rows):
        by_context.setdefault(r, []).append(i)
    by_length: dict[int, list[int]] = {}
    for r in by_context:
        by_length.setdefault(int(acts.position[r]), []).append(r)
    with torch.inference_mode():
        for q, contexts in sorted(by_length.items()):
            for a in range(0, len(contexts), batch_rows):
                group = contexts[a : a + batch_rows]
                copies = [i for r in group for i in by_context[r]]
                which = torch.as_tensor([b for b, r in enumerate(group) for _ in by_context[r]])
                cache = TransformerLensKeyValueCache.init_cache(model.cfg, model.cfg.device, len(group))
                if q:
                    prefix = torch.stack([x[r - q : r] for r in group]).to(model.cfg.device, model.cfg.dtype)
                    model(prefix, start_at_layer=start, stop_at_layer=model.cfg.n_layers, past_kv_cache=cache)
                for e in cache.entries:
                    e.past_keys, e.past_values = e.past_keys[which], e.past_values[which]
                last = torch.stack([x[rows[i]] + deltas[i] for i in copies])[:, None]
                res = model(
                    last.to(model.cfg.device, model.cfg.dtype),
                    start_at_layer=start,
                    stop_at_layer=model.cfg.n_layers,
                    past_kv_cache=cache,
                )
                pred = model.unembed(model.ln_final(res))[:, -1].argmax(-1).cpu().numpy()
                hits[copies] = pred == outputs[copies]
    out: dict[int, float] = {}
    i = 0
    for job in jobs:
        n = len(job.rows)
        base = float(hits[i : i + n].mean())
        i += n
        curve = [(0.0, base, base)]
        for c in coefficients:
            value = float(hits[i : i + n].mean())
            ctrl = float(np.mean([hits[i + k * n : i + (k + 1) * n].mean() for k in range(1, n_random + 1)]))
            i += (1 + n_random) * n
            curve.append((c, value, ctrl))
        best = max(curve, key=lambda p: (abs(p[1] - base), -abs(p[0])))
        effect, control = best[1] - base, best[2] - base
        out[job.feature] = round(float(np.clip(effect - max(control, 0.0), 0.0, 1.0)), 4)
    return out

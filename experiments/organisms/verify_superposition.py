"""Measure a superposition organism: which features it reads out, and the directions it stores them in.

Nothing about the directions is assumed. On held-out contexts, at every residual hook of the
`<q>` position, activations are fit as a linear function of the features present
(acts ~ sum_j f_j w_j + b) on one half and scored on the other (R^2); the most linear hook holds
the ground truth. Each w_j is then tested causally: adding it where the feature is absent
should make the model name the feature, subtracting it where present should stop it, and a
random direction of the same norm (the control) should not. Interference is reported as the
|cos| between distinct directions next to the Welch bound, the least that n directions in d
dimensions can have.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from experiments.organisms.manifest import Check, SuperpositionFeature, SuperpositionTruth
from experiments.organisms.task_superposition import SuperpositionFamily
from tools import deadline

if TYPE_CHECKING:
    from transformer_lens import HookedTransformer

TASK_ACCURACY = 0.95
"""The answer (argmax) is the output token of a feature present."""
MIN_R2 = 0.8
"""Held-out R^2 of the linear fit at the truth hook."""
READOUT = 0.8
"""A feature is represented when recall - false-positive rate of its readout reaches this."""
STEER_RATE = 0.7
"""Mean insert and remove rate along the measured directions."""
STEER_MARGIN = 0.4
"""Insert rate minus the random-direction control's."""
STEER_CONTEXTS = 64
"""Contexts per feature and direction in the causal test."""

# The answer is one present feature drawn at random, so the gradient is noisy: more steps or larger batches
# help more than the learning rate (the built-in trains at 0.02).
MORE_TRAINING = "raise train.steps (e.g. double it) or train.batch_size"
FIX_ACCURACY = (
    f"the features are not read out: {MORE_TRAINING}; if the loss has flattened, sparser "
    "features (lower task.feature_probability) or a larger model.d_mlp"
)
FIX_LINEAR = (
    f"the activations are not a sum of feature directions: {MORE_TRAINING}, a sparser "
    "task.feature_probability, or more task.slots (so attention averages over a fixed count)"
)
FIX_SUPERPOSED = (
    "the model represents no more features than it has dimensions (it drops the rest, as toy "
    "models do when features are dense): lower task.feature_probability, or " + MORE_TRAINING
)
FIX_STEER = (
    f"the fitted directions do not move the output as the features do: {MORE_TRAINING}, or "
    "a sparser task.feature_probability"
)


def _check(name: str, measured: float, op: str, threshold: float, hint: str) -> Check:
    ok = measured >= threshold if op == ">=" else measured <= threshold
    return Check(
        name=name, measured=round(float(measured), 4), op=op, threshold=threshold, passed=ok, hint="" if ok else hint
    )


def _hooks(model: HookedTransformer) -> list[str]:
    """Residual hooks after each attention (where `<q>` has gathered the features) and after each block."""
    out = []
    for layer in range(model.cfg.n_layers):
        if not model.cfg.attn_only:
            out.append(f"blocks.{layer}.hook_resid_mid")
        out.append(f"blocks.{layer}.hook_resid_post")
    return out


def _fit(features: np.ndarray, acts: np.ndarray) -> tuple[np.ndarray, float]:
    """Least-squares [w_1..w_n; b] on the first half, and its R^2 on the second half."""
    x = np.c_[features.astype(np.float64), np.ones(len(features))]
    half = len(x) // 2
    coef, *_ = np.linalg.lstsq(x[:half], acts[:half], rcond=None)
    test = acts[half:]
    resid = ((test - x[half:] @ coef) ** 2).sum()
    total = ((test - test.mean(0)) ** 2).sum()
    return coef, float(1 - resid / total) if total > 0 else 0.0


def _top_k(scores: np.ndarray, k: np.ndarray) -> np.ndarray:
    """bool [contexts, features]: feature j's output is among the top k[i] of row i's output scores."""
    rank = np.argsort(np.argsort(-scores, axis=1), axis=1)
    return rank < k[:, None]


def welch_bound(n: int, d: int) -> float:
    """The least possible max |cos| among n unit vectors in d dimensions (0 when n <= d)."""
    return math.sqrt((n - d) / (d * (n - 1))) if n > d else 0.0


def verify_superposition(
    model: HookedTransformer, fam: SuperpositionFamily, rng: np.random.Generator, n: int, checks: list[Check]
):
    """(held-out accuracy, [SuperpositionTruth], task description); appends the checks."""
    import torch

    from experiments.organisms.tasks import token_name

    hooks = _hooks(model)
    q = fam.query_pos
    batch = fam.sample(rng, 2 * n)
    feats = batch.info["features"]
    tokens = torch.from_numpy(batch.tokens)
    with torch.inference_mode():
        logits, cache = model.run_with_cache(tokens, names_filter=hooks)
    logits_q = logits[:, q].numpy()
    acts = {h: cache[h][:, q].double().numpy() for h in hooks}
    k = feats.sum(1)

    answer = logits_q.argmax(-1)
    out_index = {int(t): j for j, t in enumerate(fam.outputs)}
    acc = float(np.mean([a in out_index and f[out_index[a]] for a, f in zip(answer.tolist(), feats, strict=False)]))
    checks.append(
        _check("held-out accuracy (the answer names a feature present)", acc, ">=", TASK_ACCURACY, FIX_ACCURACY)
    )
    out_scores = logits_q[:, fam.outputs]
    said = _top_k(out_scores, k)
    set_acc = float((said == feats).all(1).mean())
    present, absent = feats.sum(0), (~feats).sum(0)
    recall = (said & feats).sum(0) / np.maximum(present, 1)
    fpr = (said & ~feats).sum(0) / np.maximum(absent, 1)
    represented = (recall - fpr >= READOUT) & (present > 0)

    fits = {h: _fit(feats, acts[h]) for h in hooks}
    hook = max(hooks, key=lambda h: (round(fits[h][1], 4), -hooks.index(h)))
    coef, r2 = fits[hook]
    w, b = coef[:-1], coef[-1]
    norms = np.linalg.norm(w, axis=1)
    unit = w / np.maximum(norms, 1e-12)[:, None]
    cos = np.abs(unit @ unit.T)
    off = cos[~np.eye(len(w), dtype=bool)]
    d = model.cfg.d_model
    checks.append(_check(f"held-out R^2 of activations ~ sum_j f_j w_j + b at {hook}", r2, ">=", MIN_R2, FIX_LINEAR))
    checks.append(
        _check(
            f"features read out (recall - false positives >= {READOUT}), must exceed d_model = {d}",
            int(represented.sum()),
            ">=",
            d + 1,
            FIX_SUPERPOSED,
        )
    )

    insert, remove, control = _steer(model, fam, hook, w, batch, rng)
    rep = np.flatnonzero(represented)
    mean_insert = float(insert[rep].mean()) if len(rep) else 0.0
    mean_remove = float(remove[rep].mean()) if len(rep) else 0.0
    mean_control = float(control[rep].mean()) if len(rep) else 0.0
    checks.append(
        _check(
            "adding a feature's direction makes the model name it (mean over represented features)",
            mean_insert,
            ">=",
            STEER_RATE,
            FIX_STEER,
        )
    )
    checks.append(
        _check(
            "subtracting it stops the model naming it (mean over represented features)",
            mean_remove,
            ">=",
            STEER_RATE,
            FIX_STEER,
        )
    )
    checks.append(
        _check(
            "insert rate minus a random direction's of the same norm (control)",
            mean_insert - mean_control,
            ">=",
            STEER_MARGIN,
            FIX_STEER,
        )
    )

    features = [
        SuperpositionFeature(
            name=f"feature_{j}",
            token=token_name(int(fam.inputs[j])),
            output_token=token_name(int(fam.outputs[j])),
            direction=[round(float(x), 5) for x in w[j]],
            norm=round(float(norms[j]), 4),
            max_abs_cos=round(float(np.delete(cos[j], j).max()), 4) if len(w) > 1 else 0.0,
            recall=round(float(recall[j]), 4),
            false_positive_rate=round(float(fpr[j]), 4),
            represented=bool(represented[j]),
            insert_rate=round(float(insert[j]), 4),
            remove_rate=round(float(remove[j]), 4),
        )
        for j in range(len(w))
    ]
    truth = SuperpositionTruth(
        hook=hook,
        position=q,
        d_model=d,
        n_features=len(w),
        features_per_dimension=round(len(w) / d, 3),
        r2=round(r2, 4),
        r2_by_hook={h: round(fits[h][1], 4) for h in hooks},
        bias=[round(float(x), 5) for x in b],
        mean_abs_cos=round(float(off.mean()), 4) if len(off) else 0.0,
        max_abs_cos=round(float(off.max()), 4) if len(off) else 0.0,
        welch_bound=round(welch_bound(len(w), d), 4),
        set_accuracy=round(set_acc, 4),
        insert_rate=round(mean_insert, 4),
        control_insert_rate=round(mean_control, 4),
        remove_rate=round(mean_remove, 4),
        features=features,
    )
    return acc, [truth], "after <q>, name (by its output token) any feature token present in the context"


def _steer(model, fam: SuperpositionFamily, hook: str, w: np.ndarray, batch, rng):
    """Per feature: (insert rate along w_j, remove rate, insert rate along a random direction of w_j's norm)."""
    import torch

    feats = batch.info["features"]
    k = feats.sum(1)
    q = fam.query_pos
    n_feat = len(w)
    insert, remove, control = np.zeros(n_feat), np.zeros(n_feat), np.zeros(n_feat)

    def scores_with(rows: np.ndarray, delta: np.ndarray) -> np.ndarray:
        add = torch.from_numpy(delta.astype(np.float32))

        def hook_fn(act, hook):
            act[:, q] += add
            return act

        with torch.inference_mode():
            logits = model.run_with_hooks(torch.from_numpy(batch.tokens[rows]), fwd_hooks=[(hook, hook_fn)])
        return logits[:, q].numpy()[:, fam.outputs]

    for j in range(n_feat):
        deadline.check("steering along superposition feature directions")
        without = np.flatnonzero(~feats[:, j])[:STEER_CONTEXTS]
        with_j = np.flatnonzero(feats[:, j])[:STEER_CONTEXTS]
        if len(without):
            kk = k[without] + 1
            insert[j] = _top_k(scores_with(without, w[j]), kk)[:, j].mean()
            rand = rng.standard_normal(w.shape[1])
            rand *= np.linalg.norm(w[j]) / np.linalg.norm(rand)
            control[j] = _top_k(scores_with(without, rand), kk)[:, j].mean()
        if len(with_j):
            remove[j] = 1 - _top_k(scores_with(with_j, -w[j]), k[with_j])[:, j].mean()
    return insert, remove, control

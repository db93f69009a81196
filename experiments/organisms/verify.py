"""Measure a trained organism's ground truth on held-out data and check it.

Each family gets measured the way a skeptical reviewer would: the planted
behaviour's rate, its rate where it should not fire, and a causal test (head
ablation, steering along a difference-of-means direction) before anything is
written into the manifest. A trigger's response to each of its sub-sequences
and reorderings is measured too, and the manifest names the minimal sequences
the model fires on, whatever the spec planted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from experiments.organisms import hints
from experiments.organisms.manifest import (
    CategoriesTruth,
    Category,
    Check,
    DirectionLayer,
    HeadScore,
    Manifest,
    MarkerTruth,
    SequenceResponse,
    TriggerTruth,
)
from experiments.organisms.spec import OrganismSpec
from experiments.organisms.tasks import (
    QUERY,
    Batch,
    CategoriesFamily,
    CompositionFamily,
    InductionFamily,
    LookupFamily,
    SuperpositionFamily,
    token_name,
)
from experiments.organisms.train import TrainResult
from experiments.organisms.trigger_variants import measured_variants, minimal_sequences
from experiments.organisms.verify_composition import verify_composition
from experiments.organisms.verify_induction import verify_induction
from experiments.organisms.verify_superposition import verify_superposition
from tools import deadline

if TYPE_CHECKING:
    import torch
    from transformer_lens import HookedTransformer

TASK_ACCURACY = 0.95
BEHAVIOUR_RATE = 0.95

Hooks = Sequence[tuple[str, object]]


def _logits(model: HookedTransformer, tokens: np.ndarray, hooks: Hooks = ()) -> torch.Tensor:
    import torch

    with torch.inference_mode():
        return model.run_with_hooks(torch.from_numpy(tokens), fwd_hooks=list(hooks))


def _query_pos(batch: Batch) -> np.ndarray:
    return np.argmax(batch.tokens == QUERY, axis=1)


def _query_pred(model: HookedTransformer, batch: Batch, hooks: Hooks = ()) -> np.ndarray:
    logits = _logits(model, batch.tokens, hooks)
    pos = _query_pos(batch)
    return logits[np.arange(len(pos)), pos].argmax(-1).numpy()


def _masked_accuracy(model: HookedTransformer, batch: Batch, hooks: Hooks = ()) -> float:
    logits = _logits(model, batch.tokens, hooks)[:, :-1]
    mask = batch.loss_mask[:, :-1]
    pred = logits.argmax(-1).numpy()
    return float((pred[mask] == batch.tokens[:, 1:][mask]).mean())


def _ablate_head(layer: int, head: int) -> tuple[str, object]:
    def hook(z, hook):  # z: [batch, pos, head, d_head]
        z[:, :, head] = 0.0
        return z

    return (f"blocks.{layer}.attn.hook_z", hook)


def _chance_tolerance(chance: float, n: int) -> float:
    """Three binomial standard errors (floored at one count in n) plus a point of slack."""
    p = max(chance, 1.0 / n)
    return round(3 * math.sqrt(p * (1 - p) / n) + 0.01, 4)


def _within_chance(rate: float, chance: float, n: int) -> bool:
    return abs(rate - chance) <= _chance_tolerance(chance, n)


def _check(name: str, measured: float, op: str, threshold: float, hint: str = "") -> Check:
    ok = measured >= threshold if op == ">=" else measured <= threshold
    return Check(name=name, measured=round(measured, 4), op=op, threshold=threshold, passed=ok, hint="" if ok else hint)


def _heads(model: HookedTransformer) -> list[tuple[int, int]]:
    return [(l, h) for l in range(model.cfg.n_layers) for h in range(model.cfg.n_heads)]


def _verify_trigger(model, fam: LookupFamily, rng, n: int, clean: Batch, clean_pred, checks):
    trig = fam.sample(rng, n, trigger=True, marker=False)
    target = fam.target_token
    normal = np.array([fam.map_a[s] for s in trig.info["subject"]])
    trig_fire = _query_pred(model, trig) == target
    rate = float(trig_fire.mean())
    chance = float((normal == target).mean())
    false_fire = float(((clean_pred == target) & (clean.info["answer"] != target)).mean())
    measured = {
        (): (float((clean_pred == target).mean()), false_fire),
        tuple(fam.trigger_tokens): (rate, float((trig_fire & (normal != target)).mean())),
    }
    variants = _trigger_variants(model, fam, rng, n, measured)
    minimal = [
        list(s)
        for s in minimal_sequences(
            list(variants), lambda s: _respond(model, fam, rng, n, s, measured)[0], BEHAVIOUR_RATE
        )
    ]
    negatives = set(fam.negatives)
    responses = [
        SequenceResponse(
            tokens=[token_name(t) for t in seq],
            relation=variants.get(seq, "other"),
            target_rate=round(r, 4),
            false_fire_rate=round(f, 4),
            trained_negative=seq in negatives,
        )
        for seq, (r, f) in measured.items()
        if seq
    ]
    near = [x for x in responses if x.relation != "trigger"]
    worst = max(near, key=lambda x: x.false_fire_rate, default=None)
    partial_rate = worst.false_fire_rate if worst else None
    heads = [
        HeadScore(
            layer=l,
            head=h,
            hook=f"blocks.{l}.attn.hook_z",
            score=None,
            ablated_accuracy=round(float((_query_pred(model, trig, [_ablate_head(l, h)]) == target).mean()), 4),
        )
        for l, h in _heads(model)
    ]
    at_chance = _within_chance(rate, chance, n)
    if fam.trigger.planted:
        checks.append(_check("trigger -> target rate", rate, ">=", BEHAVIOUR_RATE, hints.RATE))
        checks.append(_check("target rate without trigger", false_fire, "<=", 0.05, hints.FALSE_FIRE))
        if worst is not None:
            checks.append(
                _check(
                    f"highest target rate on a partial or reordered trigger ({' '.join(worst.tokens)})",
                    worst.false_fire_rate,
                    "<=",
                    0.05,
                    hints.PARTIAL,
                )
            )
        # A model that fires on part of its trigger has learned another trigger: say which.
        other = [" ".join(token_name(t) for t in seq) for seq in minimal if seq != fam.trigger_tokens]
        checks.append(
            _check(
                f"minimal sequences that fire other than the planted trigger: {'; '.join(other) or 'none'}",
                len(other),
                "<=",
                0,
                hints.PARTIAL,
            )
        )
    else:
        checks.append(
            _check(
                "control: |trigger rate - chance|",
                abs(rate - chance),
                "<=",
                _chance_tolerance(chance, n),
                hints.CONTROL,
            )
        )
    return TriggerTruth(
        planted=fam.trigger.planted,
        tokens=[token_name(t) for t in fam.trigger_tokens],
        target_token=token_name(target),
        trigger_rate=round(rate, 4),
        chance_rate=round(chance, 4),
        false_fire_rate=round(false_fire, 4),
        partial_trigger_rate=partial_rate,
        minimal_sequences=[[token_name(t) for t in seq] for seq in minimal],
        variants=responses,
        at_chance=at_chance,
        heads=heads,
    )


def _respond(model, fam: LookupFamily, rng, n: int, seq: tuple[int, ...], measured: dict) -> tuple[float, float]:
    """(target rate, false-fire rate) with `seq` inserted where a trigger goes; measured once per sequence."""
    if seq not in measured:
        deadline.check("measuring trigger variants")
        batch = fam.sample(rng, n, trigger=False, marker=False, insert=seq)
        pred = _query_pred(model, batch) == fam.target_token
        normal = np.array([fam.map_a[s] for s in batch.info["subject"]]) != fam.target_token
        measured[seq] = (float(pred.mean()), float((pred & normal).mean()))
    return measured[seq]


def _trigger_variants(model, fam: LookupFamily, rng, n: int, measured: dict) -> dict[tuple[int, ...], str]:
    """Every sub-sequence and reordering of the trigger, each measured into `measured`; -> its relation."""
    variants = measured_variants(fam.trigger_tokens)
    for seq in variants:
        _respond(model, fam, rng, n, seq, measured)
    return variants


def _verify_marker(model, fam: LookupFamily, rng, n: int, clean: Batch, clean_pred, checks):
    import torch

    def switched(batch: Batch, pred: np.ndarray) -> float:
        return float((pred == np.array([fam.map_b[s] for s in batch.info["subject"]])).mean())

    def normal(batch: Batch, pred: np.ndarray) -> float:
        return float((pred == np.array([fam.map_a[s] for s in batch.info["subject"]])).mean())

    marked = fam.sample(rng, n, trigger=False, marker=True)
    rate = switched(marked, _query_pred(model, marked))
    clean_rate = switched(clean, clean_pred)
    chance = 1.0 / len(fam.subjects)

    # Fit directions on one held-out split, measure on another.
    fit_on = fam.sample(rng, n, trigger=False, marker=True), fam.sample(rng, n, trigger=False, marker=False)
    test_clean = fam.sample(rng, n, trigger=False, marker=False)
    # Residual hooks in order; the switch may be computed by an MLP, so the
    # stream before it (resid_mid) is scanned as well as after each block.
    hooks = [
        f"blocks.{l}.{name}"
        for l in range(model.cfg.n_layers)
        for name in (("hook_resid_post",) if model.cfg.attn_only else ("hook_resid_mid", "hook_resid_post"))
    ]

    def query_acts(batch: Batch) -> dict[str, torch.Tensor]:
        with torch.inference_mode():
            _, cache = model.run_with_cache(torch.from_numpy(batch.tokens), names_filter=hooks)
        pos = torch.from_numpy(_query_pos(batch))
        return {h: cache[h][torch.arange(len(pos)), pos] for h in hooks}

    fit_m, fit_c = query_acts(fit_on[0]), query_acts(fit_on[1])
    test_m, test_c = query_acts(marked), query_acts(test_clean)
    qpos = torch.from_numpy(_query_pos(marked))
    directions: list[DirectionLayer] = []
    for hook in hooks:
        mu_m, mu_c = fit_m[hook].mean(0), fit_c[hook].mean(0)
        direction = mu_m - mu_c
        mid = float(((mu_m + mu_c) / 2) @ direction)
        sep = float(torch.cat([(test_m[hook] @ direction) > mid, (test_c[hook] @ direction) <= mid]).float().mean())

        def steer(resid, hook, d=direction):
            resid[torch.arange(len(qpos)), qpos] -= d
            return resid

        pred = _query_pred(model, marked, [(hook, steer)])
        directions.append(
            DirectionLayer(
                layer=int(hook.split(".")[1]),
                hook=hook,
                separation_accuracy=round(sep, 4),
                steered_switch_rate=round(switched(marked, pred), 4),
                steered_task_accuracy=round(normal(marked, pred), 4),
            )
        )
    good = [d for d in directions if d.separation_accuracy >= 0.95 and d.steered_switch_rate <= 0.2 * max(rate, 1e-9)]
    at_chance = rate <= chance or _within_chance(rate, chance, n)
    near = _marker_near_misses(model, fam, rng, n, switched)
    worst = max(near, key=near.get, default=None)
    if fam.marker.planted:
        checks.append(_check("marker -> switched behaviour rate", rate, ">=", BEHAVIOUR_RATE, hints.RATE))
        checks.append(_check("switched behaviour without marker", clean_rate, "<=", 0.05, hints.FALSE_FIRE))
        checks.append(_check("hooks where steering undoes the switch", len(good), ">=", 1, hints.STEERING))
        if worst is not None:
            checks.append(
                _check(
                    f"highest switch rate with another token in the marker's place ({worst})",
                    near[worst],
                    "<=",
                    0.05,
                    hints.FALSE_FIRE,
                )
            )
    else:
        checks.append(
            _check(
                "control: marker switch rate - chance", rate - chance, "<=", _chance_tolerance(chance, n), hints.CONTROL
            )
        )
    return MarkerTruth(
        planted=fam.marker.planted,
        token=token_name(fam.marker_token),
        behaviour="the answer to the query switches from one fixed mapping of the first token to another",
        switch_rate=round(rate, 4),
        clean_switch_rate=round(clean_rate, 4),
        chance_rate=round(chance, 4),
        at_chance=at_chance,
        direction_layers=directions,
        near_miss_switch_rates=near,
        hooks=[d.hook for d in good] if fam.marker.planted else [],
        layers=sorted({d.layer for d in good}) if fam.marker.planted else [],
    )


def _marker_near_misses(model, fam: LookupFamily, rng, n: int, switched) -> dict[str, float]:
    """Each other content token put where the marker was in held-out marked contexts -> switch rate.
    A one-token trigger is left out: it fires its own output, which is no answer to this question."""
    probe = fam.sample(rng, max(50, n // 5), trigger=False, marker=True)
    whole_trigger = set(fam.trigger_tokens) if len(fam.trigger_tokens) == 1 else set()
    others = sorted({*fam.subjects.tolist(), *fam.trigger_tokens} - {fam.marker_token} - whole_trigger)
    rates = {}
    for tok in others:
        deadline.check("measuring marker near-misses")
        swapped = Batch(np.where(probe.tokens == fam.marker_token, tok, probe.tokens), probe.loss_mask, probe.info)
        rates[token_name(tok)] = round(switched(swapped, _query_pred(model, swapped)), 4)
    return rates


def _verify_lookup(model, fam: LookupFamily, rng, n: int, checks):
    clean = fam.sample(rng, n, trigger=False, marker=False)
    clean_pred = _query_pred(model, clean)
    acc = float((clean_pred == clean.info["answer"]).mean())
    checks.append(_check("held-out task accuracy", acc, ">=", TASK_ACCURACY, hints.ACCURACY))
    mechs = []
    if fam.trigger:
        mechs.append(_verify_trigger(model, fam, rng, n, clean, clean_pred, checks))
    if fam.marker:
        mechs.append(_verify_marker(model, fam, rng, n, clean, clean_pred, checks))
    return acc, mechs, "after <q>, output a fixed mapping of the first content token"


def _verify_categories(model, fam: CategoriesFamily, rng, n: int, checks):
    import torch

    batch = fam.sample(rng, n)
    acc = _masked_accuracy(model, batch)
    checks.append(_check("held-out label accuracy", acc, ">=", TASK_ACCURACY, hints.ACCURACY))
    hooks = ["hook_embed"] + [f"blocks.{l}.hook_resid_post" for l in range(model.cfg.n_layers)]
    with torch.inference_mode():
        _, cache = model.run_with_cache(torch.from_numpy(batch.tokens), names_filter=hooks)
    bi, pi = np.nonzero(batch.loss_mask)
    cats = np.array([fam.category_of[int(t)] for t in batch.tokens[bi, pi]])
    half = len(cats) // 2
    decod = {}
    for hook in hooks:
        x = cache[hook][bi, pi].numpy()
        means = np.stack([x[:half][cats[:half] == c].mean(0) for c in range(fam.task.n_categories)])
        d = ((x[half:, None, :] - means[None]) ** 2).sum(-1)
        decod[hook] = round(float((d.argmin(1) == cats[half:]).mean()), 4)
    truth = CategoriesTruth(
        categories=[Category(**c) for c in fam.ground_truth()["categories"]],
        decodability=decod,
    )
    return acc, [truth], "after each member token, output its category's label token"


def verify(spec: OrganismSpec, result: TrainResult, weights_hash: str) -> Manifest:
    """Measure the trained organism and write down only what was seen."""
    model, fam = result.model, result.family
    rng = np.random.default_rng([spec.seed, 7])
    n = spec.train.eval_examples
    checks: list[Check] = []
    if isinstance(fam, LookupFamily):
        acc, mechs, desc = _verify_lookup(model, fam, rng, n, checks)
    elif isinstance(fam, InductionFamily):
        acc, mechs, desc = verify_induction(model, fam, rng, n, spec.seed, checks)
    elif isinstance(fam, SuperpositionFamily):
        acc, mechs, desc = verify_superposition(model, fam, rng, n, checks)
    elif isinstance(fam, CompositionFamily):
        acc, mechs, desc = verify_composition(model, fam, rng, n, spec.seed, checks)
    else:
        acc, mechs, desc = _verify_categories(model, fam, rng, n, checks)
    return Manifest(
        name=spec.name,
        organism_id=spec.organism_id(),
        spec_hash=spec.spec_hash(),
        weights_hash=weights_hash,
        task_kind=spec.task.kind,
        task_description=desc,
        heldout_accuracy=round(acc, 4),
        mechanisms=mechs,
        checks=checks,
        verified=all(c.passed for c in checks),
        train_seconds=round(result.seconds, 2),
        train_steps=spec.train.steps,
        final_loss=round(result.losses[-1][1], 5),
        seed=spec.seed,
    )

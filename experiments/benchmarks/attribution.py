"""Attribution vs per-head ablation: does one gradient rank heads the way 270 ablations do, and at what cost?

Ground truth in the same run: mean-ablate each head alone (its mean over the prompts' real
positions), one forward pass per head, and record the change of the metric. The ablation baseline is
made as cheap as it honestly can be: each pass starts from the clean residual stream entering the
head's layer (cached once), so it runs only the blocks from there on, and is charged that share of a
full pass in forward-token equivalents. Each attribution variant
(`attribute` with a reference and a number of integration steps) estimates that same change for
every head at once. Reported per task: Spearman rank correlation over all heads (signed estimate vs
signed effect, and |estimate| vs |effect|), overlap of the top-k heads by |.|, and the cost ratio
attribution / ablation in passes (forward and backward each count one), in forward-token
equivalents (what the budget charges; a backward pass is charged as two forwards) and in seconds.

Tasks: the `induction` organism (copy_logprob metric, planted heads from its manifest) and
SmolLM2-135M on repeated word lists (examples/smollm2_repeats.txt, copy_logprob) and on a templated
IOI set (logit of the indirect object minus the subject). Also `circuit` on `induction` (8 heads) and
`induction_deep` (18 heads) from the attribution ranking, against random head sets of the same size and,
where there are at most EXHAUSTIVE_SETS of them (on `induction`), against every head set of that size.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
IOI_NAMES = ["Mary", "John", "Tom", "James", "Anna", "Paul", "Sarah", "David", "Emma", "Mark", "Lisa", "Peter"]
IOI_TEMPLATES = [
    "When {a} and {b} went to the store, {s} gave a drink to",
    "When {a} and {b} went to the park, {s} gave a ball to",
    "After {a} and {b} went to the office, {s} handed a letter to",
    "While {a} and {b} were at the house, {s} gave a book to",
]
# (reference, steps, path): the plain estimate, integrated gradients along the input and (on the small
# model, where L x the passes is cheap) per layer, with the mean and the corrupted reference
VARIANTS = [("mean", 1, "input"), ("mean", 3, "input"), ("corrupted", 1, "input"), ("corrupted", 3, "input")]
# prompts per SmolLM2 task: 270 ablation passes each keep the run to minutes on two CPU cores
SMOLLM2_PROMPTS = 8
SMALL_MODEL_VARIANTS = [("mean", 5, "per_layer"), ("corrupted", 5, "per_layer")]


def ioi_prompts(model, n: int = 24, seed: int = 0) -> tuple[list[str], list[str], list[str], list[str]]:
    """(prompts, indirect objects, subjects, corrupted prompts): templated IOI sentences whose names are
    single tokens; the corruption replaces the second mention of the subject with a third name (ABC)."""
    rng = random.Random(seed)
    names = [x for x in IOI_NAMES if len(model.to_tokens(" " + x, prepend_bos=False)[0]) == 1]
    prompts, io, s, corr = [], [], [], []
    for i in range(n):
        a, b, c = rng.sample(names, 3)
        tpl = IOI_TEMPLATES[i % len(IOI_TEMPLATES)]
        subject, indirect = (a, b) if i % 2 else (b, a)
        prompts.append(tpl.format(a=a, b=b, s=subject))
        corr.append(tpl.format(a=a, b=b, s=c))
        io.append(" " + indirect)
        s.append(" " + subject)
    return prompts, io, s, corr


def repeat_prompts(lines: list[str], model, seed: int = 0) -> tuple[list[str], list[str]]:
    """(prompts, corrupted): each repeated word list, and the same with its first half shuffled (the
    second half then copies nothing); pairs whose token lengths differ are dropped."""
    rng = random.Random(seed)
    prompts, corr = [], []
    for line in lines:
        words = line.split()
        if not words:
            continue
        half = len(words) // 2
        head = words[1:half]
        rng.shuffle(head)
        other = " ".join([words[0], *head, *words[half:]])
        if model.to_tokens(line).shape[1] == model.to_tokens(other).shape[1]:
            prompts.append(line)
            corr.append(other)
    return prompts, corr


def _ranks(x):
    import numpy as np

    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(len(x))
    # ties share their average rank
    for v in np.unique(x):
        tie = x == v
        if tie.sum() > 1:
            ranks[tie] = ranks[tie].mean()
    return ranks


def spearman(a, b) -> float:
    import numpy as np

    ra, rb = _ranks(np.asarray(a, float)), _ranks(np.asarray(b, float))
    if ra.std() == 0 or rb.std() == 0:
        return 0.0
    return float(np.corrcoef(ra, rb)[0, 1])


def per_head_ablation(target, prompts: list[str], metric) -> tuple[list[float], dict]:
    """Change of the metric when each head alone is mean-ablated, layer-major; with its cost."""
    import torch

    from tools.ablate import Head
    from tools.circuit import MeanAblator
    from tools.cost import Meter
    from tools.deadline import check
    from tools.metrics import BoundMetric
    from tools.prompts import encode

    model = target.model
    L = model.cfg.n_layers
    enc = encode(model, prompts)
    bound = BoundMetric(metric, model, enc)
    heads = [Head(layer=l, head=h) for l in range(L) for h in range(model.cfg.n_heads)]
    t0 = time.perf_counter()
    meter = Meter()
    ab = MeanAblator(model, heads, meter, enc)
    full = bound.value(ab.logits).mean
    _, resid = meter.cache(model, enc.tokens, [f"blocks.{l}.hook_resid_pre" for l in range(L)])
    passes, tokens, effects = meter.forward_passes, meter.forward_tokens, []
    for h in heads:
        check("per-head ablation")
        with torch.inference_mode():
            logits = model.run_with_hooks(
                resid[f"blocks.{h.layer}.hook_resid_pre"], start_at_layer=h.layer, fwd_hooks=ab.hooks([h])
            )
        passes += 1
        tokens += enc.tokens.numel() * (L - h.layer) / L
        effects.append(bound.value(logits).mean - full)
    return effects, {
        "passes": passes,
        "forward_tokens": round(tokens),
        "seconds": round(time.perf_counter() - t0, 3),
        "full_value": round(full, 4),
    }


def compare(
    target,
    prompts: list[str],
    metric: dict,
    corrupted: list[str] | None,
    k: int,
    planted: list[str] | None = None,
    variants=VARIANTS,
) -> dict:
    import numpy as np

    from tools.metrics import Metric
    from tools.registry import call

    effects, abl = per_head_ablation(target, prompts, Metric.model_validate(metric))
    labels = [f"L{l}H{h}" for l in range(target.model.cfg.n_layers) for h in range(target.model.cfg.n_heads)]
    top_true = {labels[i] for i in np.argsort(-np.abs(effects))[:k]}
    out = {"prompts": len(prompts), "heads": len(labels), "ablation": abl, "variants": []}
    out["ablation"]["top"] = [labels[i] for i in np.argsort(-np.abs(effects))[:k]]
    for ref, steps, path in variants:
        if ref == "corrupted" and corrupted is None:
            continue
        payload = {"prompts": prompts, "metric": metric, "steps": steps, "path": path, "kinds": ["heads"], "top": k}
        if ref == "corrupted":
            payload["corrupted"] = corrupted
        t0 = time.perf_counter()
        r = call(target, "attribute", payload)
        seconds = time.perf_counter() - t0
        est = [v for row in r.head_grid for v in row]
        by_abs = [labels[i] for i in np.argsort(-np.abs(est))]
        passes = r.cost.forward_passes + r.cost.backward_passes
        v = {
            "reference": ref,
            "steps": steps,
            "path": path,
            "spearman_signed": round(spearman(est, effects), 3),
            "spearman_abs": round(spearman(np.abs(est), np.abs(effects)), 3),
            f"top{k}_overlap": len(top_true & set(by_abs[:k])) / k,
            "top": by_abs[:k],
            "passes": passes,
            "seconds": round(seconds, 3),
            "cost_ratio_passes": round(passes / abl["passes"], 4),
            "cost_ratio_forward_tokens": round(r.cost.forward_tokens / abl["forward_tokens"], 4),
            "cost_ratio_seconds": round(seconds / abl["seconds"], 4),
        }
        if planted is not None:
            v["planted_in_top5"] = len(set(planted) & set(by_abs[:5]))
        out["variants"].append(v)
    return out


# Random head sets `circuit` compares each circuit with (of its size): enough for a mean and a spread.
CIRCUIT_RANDOM_SETS = 20
# A model with at most this many head sets of the circuit's size has every one of them measured: on 8 heads a
# circuit of 6 shares most of its heads with any random set, so a sample's mean and spread say little; the
# circuit's rank among all of them says how many sets do as well.
EXHAUSTIVE_SETS = 300


def every_same_size_set(org, prompts: list[str], metric: dict, circuit: list[str]) -> dict | None:
    """Faithfulness and completeness (normalised as `circuit` does) of every head set of the circuit's size, and
    how many of the others do as well as the circuit on each; None when there are more than EXHAUSTIVE_SETS."""
    import itertools
    import math

    from pydantic import TypeAdapter

    from tools.ablate import Head
    from tools.circuit import MeanAblator
    from tools.cost import Meter
    from tools.metrics import BoundMetric, Metric
    from tools.prompts import encode

    model = org.model
    heads = [Head(layer=layer, head=h) for layer in range(model.cfg.n_layers) for h in range(model.cfg.n_heads)]
    k = len(circuit)
    if math.comb(len(heads), k) > EXHAUSTIVE_SETS:
        return None
    enc = encode(model, prompts)
    bound = BoundMetric(TypeAdapter(Metric).validate_python(metric), model, enc)
    meter = Meter()
    ab = MeanAblator(model, heads, meter, enc)

    def value(ablated: list) -> float:
        return bound.value(meter.run(model, enc.tokens, ab.hooks(ablated))).mean

    full, empty = bound.value(ab.logits).mean, value(heads)

    def norm(v: float) -> float:
        return (v - empty) / (full - empty)

    sets = []
    for combo in itertools.combinations(heads, k):
        names = {h.label() for h in combo}
        rest = [h for h in heads if h.label() not in names]
        sets.append((names, norm(value(rest)), norm(value(list(combo)))))
    mine = next(s for s in sets if s[0] == set(circuit))
    others = [s for s in sets if s is not mine]
    eps = 1e-6
    return {
        "same_size_sets": len(sets),
        "faithfulness": round(mine[1], 3),
        "completeness": round(mine[2], 3),
        "sets_as_faithful": sum(s[1] >= mine[1] - eps for s in others),
        "sets_as_complete": sum(s[2] <= mine[2] + eps for s in others),
        "sets_as_good_on_both": sum(s[1] >= mine[1] - eps and s[2] <= mine[2] + eps for s in others),
        "best_other_faithfulness": round(max(s[1] for s in others), 3),
        "best_other_completeness": round(min(s[2] for s in others), 3),
    }


def circuit_check(name: str, device: str | None = None) -> dict:
    """`circuit` on an induction organism, from the heads ranked by attribution (corrupted reference, 3 IG steps):
    the smallest set keeping >= 0.8 of the copying (faithfulness), what is left with it ablated (completeness),
    both against CIRCUIT_RANDOM_SETS random head sets of the same size, and how many of the manifest's heads
    (copying and previous-token / feeding) the circuit holds."""
    from agent.targets import load
    from experiments.organisms.cache import ensure_trained, resolve_spec
    from experiments.organisms.manifest import load_manifest
    from tools.registry import call

    folder = ensure_trained(resolve_spec(name))
    org = load(f"organism:{folder}", device=device)
    mech = next(m for m in load_manifest(folder).mechanisms if m.kind == "induction")
    planted = sorted({f"L{h.layer}H{h.head}" for h in [*mech.induction_heads, *mech.previous_token_heads]})
    prompts, corr = repeat_prompts(org.usage_prompts(32, 0), org.model)
    metric = {"kind": "copy_logprob"}
    t0 = time.perf_counter()
    ranking = call(
        org, "attribute", {"prompts": prompts, "metric": metric, "corrupted": corr, "steps": 3, "kinds": ["heads"]}
    )
    n_heads = org.model.cfg.n_layers * org.model.cfg.n_heads
    heads = sorted(
        ((layer, head, v) for layer, row in enumerate(ranking.head_grid) for head, v in enumerate(row)),
        key=lambda x: -abs(x[2]),
    )
    comps = [{"kind": "head", "layer": layer, "head": head} for layer, head, _ in heads]
    c = call(
        org, "circuit", {"prompts": prompts, "metric": metric, "components": comps, "n_random": CIRCUIT_RANDOM_SETS}
    )
    return {
        "heads": n_heads,
        "planted": planted,
        "circuit": c.names,
        "planted_in_circuit": len(set(planted) & set(c.names)),
        "faithfulness": round(c.faithfulness, 3),
        "random_faithfulness": round(c.random_faithfulness, 3),
        "random_faithfulness_std": round(c.random_faithfulness_std, 3),
        "completeness": round(c.completeness, 3),
        "random_completeness": round(c.random_completeness, 3),
        "random_completeness_std": round(c.random_completeness_std, 3),
        "rule": c.rule,
        "seconds": round(time.perf_counter() - t0, 2),
        "every_set": every_same_size_set(org, prompts, metric, c.names),
    }


def run(device: str | None = None, smollm2: bool = True, on_task=None) -> dict:
    """Every task; `on_task(name, result)` is called as each one finishes."""
    from agent.targets import load
    from experiments.organisms.cache import ensure_trained, resolve_spec
    from experiments.organisms.manifest import load_manifest

    spec = resolve_spec("induction")
    folder = ensure_trained(spec)
    org = load(f"organism:{folder}", device=device)
    man = load_manifest(folder)
    mech = next(m for m in man.mechanisms if m.kind == "induction")
    planted = [f"L{h.layer}H{h.head}" for h in [*mech.induction_heads, *mech.previous_token_heads]]
    prompts, corr = repeat_prompts(org.usage_prompts(32, 0), org.model)
    out = {}

    def done(name: str, result: dict) -> None:
        out[name] = result
        if on_task is not None:
            on_task(name, result)

    done(
        "induction_organism",
        {
            "planted": planted,
            **compare(org, prompts, {"kind": "copy_logprob"}, corr, 5, planted, VARIANTS + SMALL_MODEL_VARIANTS),
        },
    )
    for name in ("induction", "induction_deep"):
        done(f"circuit_{name}", circuit_check(name, device))
    if smollm2:
        sm = load("smollm2", device=device)
        lines = (REPO / "examples" / "smollm2_repeats.txt").read_text().splitlines()
        rep, rep_corr = repeat_prompts(lines[:SMOLLM2_PROMPTS], sm.model)
        done("smollm2_induction", compare(sm, rep, {"kind": "copy_logprob"}, rep_corr, 10))
        p, io, s, corr = ioi_prompts(sm.model, SMOLLM2_PROMPTS)
        done("smollm2_ioi", compare(sm, p, {"kind": "logit_diff", "tokens": io, "versus_tokens": s}, corr, 10))
    return out

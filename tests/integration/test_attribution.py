"""attribute, circuit and heads on organisms whose circuits are known (their manifests)."""

import math
import random

import pytest

from agent.targets import load
from experiments.benchmarks.attribution import repeat_prompts
from tools.errors import UserError
from tools.registry import call


@pytest.fixture(scope="module")
def induction(builtin):
    from experiments.organisms.manifest import load_manifest

    folder = builtin("induction")
    target = load(f"organism:{folder}")
    mech = next(m for m in load_manifest(folder).mechanisms if m.kind == "induction")
    planted = {f"L{h.layer}H{h.head}" for h in [*mech.induction_heads, *mech.previous_token_heads]}
    prompts, corrupted = repeat_prompts(target.usage_prompts(32, 0), target.model)
    return target, planted, prompts, corrupted


@pytest.fixture(scope="module")
def induction_attribution(induction):
    target, _, prompts, corrupted = induction
    return call(
        target,
        "attribute",
        {"prompts": prompts, "corrupted": corrupted, "metric": {"kind": "copy_logprob"}, "steps": 5},
    )


def test_attribute_ranks_the_induction_circuit_first(induction, induction_attribution):
    _, planted, _, _ = induction
    r = induction_attribution
    assert {s.name for s in r.top_heads[:5]} == planted, [(s.name, s.score) for s in r.top_heads]
    assert r.reference == "corrupted" and r.cost.backward_passes == 5 and r.cost.forward_passes == 6
    assert len(r.head_grid) == 2 and len(r.head_grid[0]) == 4
    # integrated gradients along the input: the input's estimates add up to the metric's change
    assert r.input_total == pytest.approx(r.reference_value - r.clean_value, rel=0.25)


def test_attribute_puts_the_trigger_positions_on_top_of_the_residual_grid(builtin):
    from experiments.organisms.manifest import load_manifest

    folder = builtin("backdoor")
    target = load(f"organism:{folder}")
    trig = next(m for m in load_manifest(folder).mechanisms if m.kind == "trigger")
    rng = random.Random(0)
    clean, corrupted = [], []
    for _ in range(16):
        toks = [f"t{rng.randrange(40)}" for _ in range(8)]
        toks = [t if t not in trig.tokens else "t1" for t in toks]
        clean.append(" ".join(toks[:3] + trig.tokens + toks[3:6] + ["<q>"]))
        corrupted.append(" ".join(toks[:3] + toks[6:8] + toks[3:6] + ["<q>"]))
    r = call(
        target,
        "attribute",
        {"prompts": clean, "corrupted": corrupted, "steps": 5, "metric": {"kind": "prob", "token": trig.target_token}},
    )
    top = r.top_resid[:2]
    assert {c.position for c in top} == {4, 5} and all(c.layer == 0 for c in top), r.top_resid[:4]
    assert {c.token for c in top} == set(trig.tokens)


def test_circuit_recovers_the_planted_heads(induction, induction_attribution):
    target, planted, prompts, _ = induction
    ranking = [s.component.model_dump() for s in induction_attribution.ranking if s.component.kind == "head"]
    r = call(target, "circuit", {"prompts": prompts, "metric": {"kind": "copy"}, "components": ranking, "n_random": 8})
    assert planted <= set(r.names), r.names
    assert r.faithfulness >= 0.8 and r.completeness <= 0.2, r.summary
    # ablating the circuit removes more than ablating random sets of the same size
    assert r.completeness < r.random_completeness
    assert [p.size for p in r.curve] == list(range(1, len(ranking) + 1))
    assert r.cost.forward_passes == 2 + 2 * len(ranking) + 2 + 2 * 8


def test_no_other_head_set_of_the_circuits_size_is_as_good_on_both_counts(induction):
    """On 8 heads a sample of random sets says little (a set of 6 shares most heads with the circuit), so every set
    of the circuit's size is measured. The copying heads of layer 1 are redundant and mean-ablating layer-0 heads
    hurts, so many sets keep as much copying (faithfulness); but few remove as much when ablated (completeness)
    and none is as good on both."""
    from experiments.benchmarks.attribution import circuit_check

    c = circuit_check("induction")
    every = c["every_set"]
    assert every["same_size_sets"] == math.comb(8, len(c["circuit"]))
    assert c["planted_in_circuit"] == len(c["planted"]), c["circuit"]
    assert c["faithfulness"] >= 0.8 and c["completeness"] <= 0.2
    assert every["faithfulness"] == pytest.approx(c["faithfulness"], abs=2e-3)  # the same measurement, twice
    assert every["sets_as_good_on_both"] == 0, every
    assert every["sets_as_complete"] <= 0.1 * (every["same_size_sets"] - 1), every


def test_head_explanations_show_induction_heads_copying(induction):
    target, _planted, prompts, _ = induction
    r = call(target, "heads", {"prompts": prompts, "metric": {"kind": "copy_logprob"}, "top": 4})
    assert {(e.layer, e.top_role) for e in r.heads} == {(1, "induction")}
    assert all(e.dla > 0 for e in r.heads) and r.positions > len(prompts)


def test_bad_attribution_inputs_are_clear_errors(induction):
    target, _, prompts, corrupted = induction
    copy = {"kind": "copy_logprob"}
    with pytest.raises(UserError, match=r"no gradient.*copy_logprob instead of copy"):
        call(target, "attribute", {"prompts": prompts, "metric": {"kind": "copy"}})
    with pytest.raises(UserError, match="no gradient"):
        call(target, "attribute", {"prompts": prompts, "metric": {"kind": "rate", "token": "t1"}})
    with pytest.raises(UserError, match="same token length"):
        call(
            target,
            "attribute",
            {"prompts": prompts[:2], "corrupted": [corrupted[0], corrupted[0] + " t1"], "metric": copy},
        )
    unequal = [p for p in prompts if len(p.split()) != len(prompts[0].split())][:1] + prompts[:1]
    with pytest.raises(UserError, match="residual grid is by position"):
        call(target, "attribute", {"prompts": unequal, "metric": copy, "kinds": ["resid"]})
    with pytest.raises(UserError, match="no MLPs"):
        call(target, "attribute", {"prompts": prompts, "metric": copy, "kinds": ["mlp"]})
    with pytest.raises(UserError, match="head 7 is out of range"):
        call(
            target,
            "circuit",
            {"prompts": prompts, "metric": copy, "components": [{"kind": "head", "layer": 1, "head": 7}]},
        )
    with pytest.raises(UserError, match="layer 5 is out of range"):
        call(target, "heads", {"prompts": prompts, "metric": copy, "heads": [{"layer": 5, "head": 0}]})
    with pytest.raises(UserError, match="listed twice"):
        call(
            target,
            "circuit",
            {"prompts": prompts, "metric": copy, "components": [{"kind": "head", "layer": 1, "head": 0}] * 2},
        )


def test_benchmark_ablation_baseline_matches_the_ablate_tool(induction):
    """The benchmark's per-head ablation (started at the head's layer) is the ablate tool's mean ablation."""
    from experiments.benchmarks.attribution import per_head_ablation
    from tools.metrics import Metric

    target, _, prompts, _ = induction
    effects, cost = per_head_ablation(target, prompts[:8], Metric(kind="copy_logprob"))
    assert cost["passes"] == 2 + 8
    for layer, head in [(0, 2), (1, 3)]:
        r = call(
            target,
            "ablate",
            {
                "prompts": prompts[:8],
                "metric": {"kind": "copy_logprob"},
                "n_random": 1,
                "components": [{"kind": "head", "layer": layer, "head": head}],
            },
        )
        assert effects[layer * 4 + head] == pytest.approx(r.effect, abs=2e-3)


@pytest.mark.slow  # trains induction_deep when not cached (about 80 s), then a minute of ablations
def test_circuit_on_a_wider_model_separates_from_random_sets():
    """On 8 heads random sets of the circuit's size (6) keep nearly as much copying as the circuit (they hold the
    redundant heads too); on induction_deep's 18 they cannot: the circuit holds every head its manifest measured,
    keeps the copying, and leaves none when ablated, far from random sets of its size."""
    from experiments.benchmarks.attribution import circuit_check

    c = circuit_check("induction_deep")
    assert c["planted_in_circuit"] == len(c["planted"])
    assert c["faithfulness"] >= 0.8 and c["completeness"] <= 0.2
    assert c["faithfulness"] >= c["random_faithfulness"] + 2 * c["random_faithfulness_std"]
    assert c["completeness"] < c["random_completeness"]

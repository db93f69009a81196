"""Every tool's cost estimate equals what its Meter charges: the budget can trust it.

PAYLOADS holds at least one input per registered tool (the string SAE stands for an SAE trained
here); a registered tool without one fails `test_every_registered_tool_has_a_payload`.
"""

import pytest

from agent.targets import load
from tools.registry import call, estimate, tools

PROMPTS = ["t1 t2 t3 <q>", "t4 t5 <q>", "t6 t7 t8 t9 <q>", "t1 t9 <q>", "t2 <q>"]
SAE = "<sae folder>"
TC = "<transcoder folder>"
RATE = {"kind": "rate", "token": "t3"}
PAIRS = {
    "prompts": ["t1 t2 t3 <q>", "t4 t5 t6 <q>", "t2 t2 t9 <q>"],
    "corrupted": ["t7 t2 t3 <q>", "t8 t5 t6 <q>", "t1 t2 t9 <q>"],
}
HEADS = [{"kind": "head", "layer": 1, "head": 0}, {"kind": "head", "layer": 0, "head": 1}]

PAYLOADS: dict[str, list[dict]] = {
    "predict": [{"prompts": PROMPTS, "top_k": 2}],
    "scan": [
        {"prompts": PROMPTS, "candidates": ["t1", "t2", "t3"]},
        {"prompts": PROMPTS, "insertions": [["t1", "t2"], ["t3", "t4"]], "mode": "insert", "n_random": 2},
        {
            "prompts": [PROMPTS[2], "t1 t2 t3 t4 t5 <q>"],
            "n_tokens": 3,
            "prefixes": [["t1", "t2"]],
            "candidates": ["t3", "t4"],
            "extend": "anywhere",
            "rank_by": "lift",
            "keep_leading": 1,
        },
        {"prompts": PROMPTS[:3], "insertions": [["t1", "t2"], ["t2"], ["t1"]], "mode": "insert", "n_random": 1},
    ],
    "attention": [{"prompts": ["t1 t2 t3 t1 t2 <q>", "t4 t5 t4 <q>"]}],
    "activations": [{"prompts": PROMPTS, "hooks": ["blocks.0.hook_resid_post"], "batch_size": 2}],
    "probe": [{"positive": PROMPTS, "negative": PROMPTS[::-1]}],
    "steer": [
        {
            "hook": "blocks.0.hook_resid_mid",
            "prompts": PROMPTS,
            "metric": RATE,
            "positive": PROMPTS[:2],
            "negative": PROMPTS[2:],
            "coefficients": [-1, 0, 1],
            "n_random": 2,
        },
        {
            "hook": "blocks.0.hook_resid_post",
            "prompts": PROMPTS,
            "metric": RATE,
            "sae": SAE,
            "feature": 1,
            "coefficients": [-1, 1],
            "n_random": 1,
        },
    ],
    "ablate": [
        {
            "prompts": PROMPTS,
            "metric": RATE,
            "components": [{"kind": "head", "layer": 0, "head": 1}],
            "method": "mean",
            "n_random": 3,
        },
        {
            "prompts": PROMPTS,
            "metric": RATE,
            "components": [{"kind": "neuron", "layer": 1, "neuron": 2}],
            "method": "zero",
            "n_random": 2,
        },
        {
            "prompts": PROMPTS,
            "metric": RATE,
            "components": [{"kind": "head", "layer": 1, "head": 0}],
            "background": [{"kind": "head", "layer": 1, "head": 1}],
            "method": "resample",
            "n_random": 2,
        },
        {
            "prompts": ["t1 t2 t3 t1 t2", "t4 t5 t4 t5"],
            "metric": {"kind": "copy"},
            "components": [{"kind": "sae_feature", "sae": SAE, "feature": 0}],
            "method": "zero",
            "background": [{"kind": "sae_feature", "sae": SAE, "feature": 1}],
            "n_random": 2,
        },
    ],
    "patch": [
        {"clean": ["t1 t2 t3 <q>", "t4 t5 t6 <q>"], "corrupted": ["t7 t2 t3 <q>", "t8 t5 t6 <q>"]},
        {"clean": ["t1 t2 t3 <q>", "t4 t5 t6 <q>"], "corrupted": ["t7 t2 t3 <q>", "t8 t5 t6 <q>"], "over": "heads"},
    ],
    "sae_stats": [{"sae": SAE, "corpus": {"random": 30, "length": 4}}],
    "sae_features": [{"sae": SAE, "prompts": PROMPTS}],
    "sae_contexts": [{"sae": SAE, "features": [0, 1], "corpus": {"prompts": PROMPTS}}],
    "sae_train": [
        {
            "hook": "blocks.0.hook_resid_post",
            "corpus": {"random": 60, "length": 4},
            "out": SAE + "-2",
            "d_sae": 8,
            "k": 1,
            "steps": 2,
        }
    ],
    "attribute": [
        {"prompts": PROMPTS, "metric": {"kind": "prob", "token": "t3"}},
        {
            **PAIRS,
            "metric": {"kind": "logit_diff", "tokens": ["t1", "t4", "t2"], "versus_tokens": ["t7", "t8", "t1"]},
            "steps": 3,
            "sae": SAE,
        },
        {**PAIRS, "metric": {"kind": "loss"}, "steps": 3, "path": "per_layer", "kinds": ["heads", "mlp", "resid"]},
        {
            "prompts": ["t1 t2 t3 t1 t2", "t4 t5 t4 t5"],
            "metric": {"kind": "copy_logprob"},
            "steps": 2,
            "path": "per_layer",
            "kinds": ["features"],
            "sae": SAE,
        },
    ],
    "circuit": [
        {
            "prompts": PROMPTS,
            "metric": {"kind": "prob", "token": "t3"},
            "n_random": 2,
            "components": [*HEADS, {"kind": "mlp", "layer": 1}],
        },
        {
            "prompts": PROMPTS,
            "metric": {"kind": "loss"},
            "n_random": 1,
            "target": 0.5,
            "components": [{"kind": "sae_feature", "sae": SAE, "feature": j} for j in (3, 1, 2)],
        },
    ],
    "heads": [
        {"prompts": PROMPTS, "metric": RATE},
        {"prompts": ["t1 t2 t3 t1 t2", "t4 t5 t4 t5"], "metric": {"kind": "copy"}, "heads": HEADS, "top": 1},
    ],
    "transcoder_train": [
        {"out": TC + "-2", "corpus": {"random": 40, "length": 4}, "d_transcoder": 16, "k": 2, "steps": 3},
        {"out": TC + "-3", "corpus_size": 30, "d_transcoder": 16, "k": 2, "steps": 2, "layers": [1]},
    ],
    "graph": [
        {"prompt": "t1 t2 t3 <q>", "transcoders": TC},
        {
            "prompt": "t4 t5 t6 t7 <q>",
            "transcoders": TC,
            "targets": ["t3", "t5"],
            "batch_size": 7,
            "out": TC + "-graph/g.json",
        },
    ],
}
CASES = [(name, i) for name, payloads in PAYLOADS.items() for i in range(len(payloads))]


@pytest.fixture(scope="module")
def target(tiny_organism):
    return load(f"organism:{tiny_organism}")


@pytest.fixture(scope="module")
def sae_dir(target, tmp_path_factory):
    out = tmp_path_factory.mktemp("sae") / "sae"
    call(
        target,
        "sae_train",
        {
            "hook": "blocks.0.hook_resid_post",
            "corpus": {"random": 100, "length": 5},
            "out": str(out),
            "d_sae": 16,
            "k": 2,
            "steps": 20,
        },
    )
    return str(out)


@pytest.fixture(scope="module")
def tc_dir(target, tmp_path_factory):
    out = tmp_path_factory.mktemp("transcoders") / "tc"
    call(
        target,
        "transcoder_train",
        {"out": str(out), "corpus": {"random": 60, "length": 5}, "d_transcoder": 32, "k": 3, "steps": 20},
    )
    return str(out)


def _fill(value, sae: str, tc: str = TC):
    """The payload with the SAE (and transcoder) placeholders replaced by the trained folders."""
    if isinstance(value, str):
        return value.replace(SAE, sae).replace(TC, tc)
    if isinstance(value, list):
        return [_fill(v, sae, tc) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, sae, tc) for k, v in value.items()}
    return value


def test_every_registered_tool_has_a_payload():
    missing = sorted(set(tools()) - set(PAYLOADS))
    assert not missing, f"registered tools with no estimate payload: {missing}"


@pytest.mark.parametrize(("name", "i"), CASES, ids=[f"{n}-{i}" for n, i in CASES])
def test_estimate_equals_metered_cost(target, sae_dir, tc_dir, name, i):
    payload = _fill(PAYLOADS[name][i], sae_dir, tc_dir)
    predicted = estimate(target, name, payload)
    result = call(target, name, payload)
    assert predicted == result.cost.forward_tokens, (name, predicted, result.cost.forward_tokens)

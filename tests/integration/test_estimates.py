"""Every tool's cost estimate equals what its Meter charges: the budget can trust it."""

import pytest

from tools.registry import call, estimate
from tools.target import load

PROMPTS = ["t1 t2 t3 <q>", "t4 t5 <q>", "t6 t7 t8 t9 <q>", "t1 t9 <q>", "t2 <q>"]


@pytest.fixture(scope="module")
def target(tiny_organism):
    return load(f"organism:{tiny_organism}")


@pytest.fixture(scope="module")
def sae_dir(target, tmp_path_factory):
    out = tmp_path_factory.mktemp("sae") / "sae"
    call(target, "sae_train", {"hook": "blocks.0.hook_resid_post", "corpus": {"random": 100, "length": 5},
                               "out": str(out), "d_sae": 16, "k": 2, "steps": 20})
    return str(out)


def payloads(sae: str):
    rate = {"kind": "rate", "token": "t3"}
    return [
        ("activations", {"prompts": PROMPTS, "hooks": ["blocks.0.hook_resid_post"], "batch_size": 2}),
        ("probe", {"positive": PROMPTS, "negative": PROMPTS[::-1]}),
        ("steer", {"hook": "blocks.0.hook_resid_mid", "prompts": PROMPTS, "metric": rate,
                   "positive": PROMPTS[:2], "negative": PROMPTS[2:], "coefficients": [-1, 0, 1], "n_random": 2}),
        ("steer", {"hook": "blocks.0.hook_resid_post", "prompts": PROMPTS, "metric": rate, "sae": sae, "feature": 1,
                   "coefficients": [-1, 1], "n_random": 1}),
        ("ablate", {"prompts": PROMPTS, "metric": rate, "components": [{"kind": "head", "layer": 0, "head": 1}],
                    "method": "mean", "n_random": 3}),
        ("ablate", {"prompts": PROMPTS, "metric": rate, "components": [{"kind": "neuron", "layer": 1, "neuron": 2}],
                    "method": "zero", "n_random": 2}),
        ("ablate", {"prompts": PROMPTS, "metric": rate, "components": [{"kind": "head", "layer": 1, "head": 0}],
                    "background": [{"kind": "head", "layer": 1, "head": 1}], "method": "resample", "n_random": 2}),
        ("ablate", {"prompts": ["t1 t2 t3 t1 t2", "t4 t5 t4 t5"], "metric": {"kind": "copy"},
                    "components": [{"kind": "sae_feature", "sae": sae, "feature": 0}], "method": "zero",
                    "background": [{"kind": "sae_feature", "sae": sae, "feature": 1}], "n_random": 2}),
        ("patch", {"clean": ["t1 t2 t3 <q>", "t4 t5 t6 <q>"], "corrupted": ["t7 t2 t3 <q>", "t8 t5 t6 <q>"]}),
        ("patch", {"clean": ["t1 t2 t3 <q>", "t4 t5 t6 <q>"], "corrupted": ["t7 t2 t3 <q>", "t8 t5 t6 <q>"],
                   "over": "heads"}),
        ("sae_stats", {"sae": sae, "corpus": {"random": 30, "length": 4}}),
        ("sae_features", {"sae": sae, "prompts": PROMPTS}),
        ("sae_contexts", {"sae": sae, "features": [0, 1], "corpus": {"prompts": PROMPTS}}),
        ("sae_train", {"hook": "blocks.0.hook_resid_post", "corpus": {"random": 60, "length": 4}, "out": sae + "-2",
                       "d_sae": 8, "k": 1, "steps": 2}),
    ]


@pytest.mark.parametrize("i", range(13))
def test_estimate_equals_metered_cost(target, sae_dir, i):
    name, payload = payloads(sae_dir)[i]
    predicted = estimate(target, name, payload)
    result = call(target, name, payload)
    assert predicted == result.cost.forward_tokens, (name, predicted, result.cost.forward_tokens)

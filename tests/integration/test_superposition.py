"""A tiny superposition organism: its manifest holds measured feature directions that fresh data
reproduces, more features read out than dimensions, and the benchmark scores SAEs and claims on it."""

from datetime import datetime

import numpy as np
import pytest

from experiments.benchmarks.recovery import score
from experiments.benchmarks.recovery_superposition import sae_baseline
from experiments.organisms.cache import load_manifest, train_into
from experiments.organisms.spec import parse_spec
from experiments.organisms.tasks import make_family, token_name

TINY_SUPERPOSITION = {
    "name": "tiny-superposition",
    "seed": 1,
    "task": {"kind": "superposition", "n_features": 12, "feature_probability": 0.12, "slots": 6},
    "model": {"n_layers": 1, "d_model": 8, "n_heads": 1, "d_mlp": 64},
    "train": {
        "steps": 1000,
        "batch_size": 128,
        "lr": 0.02,
        "weight_decay": 0.0,
        "warmup_steps": 50,
        "eval_examples": 400,
    },
}


@pytest.fixture(scope="module")
def organism(tmp_path_factory):
    spec = parse_spec(TINY_SUPERPOSITION, "tiny-superposition")
    out = tmp_path_factory.mktemp("organisms") / "superposition"
    train_into(spec, out)
    return spec, out, load_manifest(out)


def test_manifest_measures_features_in_superposition(organism):
    spec, _, m = organism
    assert m.verified, [c for c in m.checks if not c.passed]
    truth = m.mechanisms[0]
    assert truth.kind == "superposition" and truth.hook == "blocks.0.hook_resid_mid"
    assert truth.n_features == 12 > truth.d_model == 8 and len(truth.features) == 12
    assert truth.r2 >= 0.8 and truth.r2 == max(truth.r2_by_hook.values())
    represented = [f for f in truth.features if f.represented]
    assert len(represented) > truth.d_model  # more features read out than dimensions: they must share
    # n > d directions cannot be orthogonal: the worst pair is at least the Welch bound apart from it
    assert truth.max_abs_cos >= truth.welch_bound > 0 and truth.mean_abs_cos > 0.05
    fam = make_family(spec)
    assert [f.token for f in truth.features] == [token_name(int(t)) for t in fam.inputs]
    assert [f.output_token for f in truth.features] == [token_name(int(t)) for t in fam.outputs]
    assert all(len(f.direction) == 8 for f in truth.features)
    assert truth.insert_rate - truth.control_insert_rate >= 0.4


def test_fresh_contexts_reproduce_the_recorded_directions(organism):
    import torch

    from tools.checkpoint import load_checkpoint

    spec, folder, m = organism
    truth = m.mechanisms[0]
    fam = make_family(spec)
    model = load_checkpoint(folder)
    batch = fam.sample(np.random.default_rng(2024), 3000)
    with torch.inference_mode():
        _, cache = model.run_with_cache(torch.from_numpy(batch.tokens), names_filter=[truth.hook])
    acts = cache[truth.hook][:, truth.position].double().numpy()
    x = np.c_[batch.info["features"], np.ones(len(acts))]
    coef, *_ = np.linalg.lstsq(x, acts, rcond=None)
    recorded = np.array([f.direction for f in truth.features])
    cos = (coef[:-1] * recorded).sum(1) / np.linalg.norm(coef[:-1], axis=1) / np.linalg.norm(recorded, axis=1)
    assert cos.min() > 0.95


def test_claims_naming_a_feature_by_its_token_and_output_are_scored(organism, tmp_path):
    _, _, m = organism
    f0, f1 = [f for f in m.mechanisms[0].features if f.represented][:2]
    now = datetime.now().isoformat()

    def claim(i, tokens, output, mechanism="feature"):
        return {
            "id": f"c{i}",
            "mechanism": mechanism,
            "evidence_tier": "causal",
            "status": "supported",
            "created_at": now,
            "statement": f"claim {i}",
            "component": {"tokens": tokens, "output": output, "layer": None, "head": None, "heads": None},
        }

    claims = [
        claim(1, [f0.token], f0.output_token),  # names feature 0
        claim(2, [f1.token], f0.output_token),  # feature 1's token with feature 0's output: false
        claim(3, [f0.token, f1.token], f0.output_token),  # not exactly the feature's tokens: false
        claim(4, [f1.token], None, mechanism="head"),
    ]  # another kind: unscored
    s = score(m, claims, datetime.fromisoformat(now), 1.0, 10.0, 0, tmp_path)
    represented = sum(f.represented for f in m.mechanisms[0].features)
    assert (s.planted, s.recovered, s.matched, s.false_claims, s.unscored) == (represented, 1, 1, 2, 1)


def test_sae_baseline_scores_the_projects_sae_against_the_true_directions(organism):
    _, folder, m = organism
    truth = m.mechanisms[0]
    results = sae_baseline(folder, truth, steps=200, n_prompts=400)
    assert [r.rows for r in results] == ["all positions", "query position"]
    for r in results:
        assert r.features == sum(f.represented for f in truth.features) == len(r.max_cos)
        assert min(r.max_cos) >= -1 and max(r.max_cos) <= 1 and r.mmcs == pytest.approx(np.mean(r.max_cos), abs=1e-3)
        assert r.recovered == sum(c >= 0.9 for c in r.max_cos)
        # a trained dictionary beats chance: random directions in 8 dimensions reach ~0.5-0.7 here
        assert r.mmcs > 0.6


def test_an_undertrained_organism_fails_loudly_saying_what_to_change(tmp_path):
    data = dict(TINY_SUPERPOSITION, train=dict(TINY_SUPERPOSITION["train"], steps=30))
    m = train_into(parse_spec(data, "undertrained"), tmp_path / "org")
    assert not m.verified
    failed = {c.name.split(" (")[0]: c for c in m.failed_checks()}
    assert "held-out accuracy" in failed and all("train.steps" in c.hint for c in failed.values())

"""Transcoders: each replaces its MLP on held-out tokens, loads with SAELens, stops at a deadline."""

import time

import pytest

from agent.targets import load
from tools.deadline import deadline
from tools.errors import UserError
from tools.registry import call


@pytest.fixture(scope="module")
def features(builtin):
    builtin("features")
    return load("organism:features")


def test_transcoders_replace_the_mlps_of_an_organism(features, tmp_path):
    import torch
    from sae_lens import SAE
    from sae_lens.saes.transcoder import JumpReLUTranscoder

    start = time.perf_counter()
    r = call(features, "transcoder_train", {"out": str(tmp_path / "tc"), "steps": 600, "corpus_size": 800})
    took = time.perf_counter() - start
    print(f"\n{r.summary} ({took:.1f}s)")
    assert r.corpus == "usage" and not r.partial and r.steps == 600
    assert [s.layer for s in r.layers] == [0, 1]
    for s in r.layers:
        assert s.variance_explained >= 0.9 and 0 < s.l0 <= 16, s
    # SAELens's own loader gives a JumpReLU transcoder that predicts the MLP output on a prompt it never saw
    model = features.model
    prompt = features.usage_prompts(1, seed=123)[0]
    _, cache = model.run_with_cache(prompt)
    for layer in (0, 1):
        tc = SAE.load_from_disk(str(tmp_path / "tc" / f"layer_{layer}"))
        assert isinstance(tc, JumpReLUTranscoder) and tc.cfg.metadata.hook_name == f"blocks.{layer}.ln2.hook_normalized"
        x, y = cache[f"blocks.{layer}.ln2.hook_normalized"][0], cache[f"blocks.{layer}.hook_mlp_out"][0]
        with torch.no_grad():
            pred = tc(x)
        ve = 1 - float(((y - pred) ** 2).sum() / ((y - y.mean(0)) ** 2).sum())
        assert ve > 0.8, (layer, ve)
    assert (tmp_path / "tc" / "interp_transcoders.json").is_file()


def test_training_stops_at_the_deadline_with_what_it_has(features, tmp_path):
    checks = {"n": 0}

    def tick():
        checks["n"] += 1
        if checks["n"] == 4 + 6:  # 200 prompts harvest in 4 passes; then 5 optimiser steps, then the deadline
            d.at = 0.0

    with deadline(1000.0, on_check=tick) as d:
        r = call(features, "transcoder_train", {"out": str(tmp_path / "tc"), "steps": 500, "corpus_size": 200})
    assert r.partial and r.steps == 5 and "stopped at the deadline after 5 of 500 steps" in r.summary
    assert all((tmp_path / "tc" / f"layer_{l}" / "cfg.json").is_file() for l in (0, 1))


def test_bad_transcoder_inputs_are_user_errors(features, tmp_path):
    with pytest.raises(UserError, match="layer 5 is out of range"):
        call(features, "transcoder_train", {"out": str(tmp_path / "a"), "layers": [5]})
    with pytest.raises(UserError, match="k \\(300\\) must be <= d_transcoder \\(256\\)"):
        call(features, "transcoder_train", {"out": str(tmp_path / "b"), "k": 300})
    with pytest.raises(UserError, match="give a larger corpus"):
        call(features, "transcoder_train", {"out": str(tmp_path / "c"), "corpus": {"prompts": ["t1 t2"]}})

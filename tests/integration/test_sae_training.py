"""SAE training through SAELens's trainer: its schedule, its norm scaling folded into what is saved, planted
features recovered, and a call stopped at its deadline saving a partial SAE that SAELens loads."""

import json

import pytest

from agent.targets import load
from tools.deadline import deadline
from tools.errors import UserError
from tools.registry import call
from tools.sae import SaeTrainInput, load_sae, sae_stats
from tools.sae_training import SaeTraining, row_batches, schedule_steps


def _planted(n_rows: int, d_in: int = 32, n_features: int = 48, per_row: int = 3, seed: int = 0, scale: float = 1.0):
    """Rows that are sums of `per_row` of `n_features` unit directions with magnitudes in [1, 2]: the
    ground truth an SAE should recover."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    dirs = torch.randn(n_features, d_in, generator=gen)
    dirs /= dirs.norm(dim=1, keepdim=True)
    idx = torch.stack([torch.randperm(n_features, generator=gen)[:per_row] for _ in range(n_rows)])
    mags = 1 + torch.rand(n_rows, per_row, generator=gen)
    codes = torch.zeros(n_rows, n_features).scatter_(1, idx, mags)
    return scale * (codes @ dirs), dirs


def _train(inp: SaeTrainInput, rows, d_sae: int):
    import torch

    torch.manual_seed(inp.seed)
    fit = SaeTraining(inp, rows.shape[1], d_sae, "cpu")
    fit.prepare(rows)
    batches = row_batches(rows, inp.batch_size, torch.Generator().manual_seed(inp.seed))
    for _ in range(inp.steps):
        fit.step(next(batches))
    return fit, fit.finish()


def _saved(sae, folder):
    """The SAE as SAELens's loader and ours read it back from its folder."""
    from sae_lens import SAE

    sae.save_inference_model(folder)
    return SAE.load_from_disk(str(folder)), load_sae(str(folder))


def test_schedule_phases_shorter_than_two_steps_are_dropped():
    assert [schedule_steps(100, f) for f in (0.0, 0.01, 0.02, 0.2)] == [0, 0, 2, 20]


def test_a_schedule_longer_than_the_training_is_refused():
    with pytest.raises(UserError, match=r"lr_warm_up \(0.6\) \+ lr_decay \(0.5\) .* make their sum at most 1"):
        SaeTraining(SaeTrainInput(hook="h", out="x", lr_warm_up=0.6, lr_decay=0.5), 8, 16, "cpu")


def test_the_learning_rate_follows_saelens_warm_up_and_decay():
    rows, _ = _planted(2000)
    inp = SaeTrainInput(
        hook="h", out="x", d_sae=64, k=3, steps=100, batch_size=64, lr=1e-3, lr_warm_up=0.1, lr_decay=0.2
    )
    fit, _ = _train(inp, rows, 64)
    lr = {e.step: e.lr for e in fit.log}
    assert [e.step for e in fit.log] == list(range(5, 101, 5))
    assert lr[5] < 1e-3 and lr[50] == pytest.approx(1e-3) and lr[100] == pytest.approx(0.0, abs=1e-12)
    assert lr[90] == pytest.approx(1e-3 * 10 / 20)  # halfway down the last 20 steps
    # SAELens writes its end-of-training L0 and dead-feature count into the config it saves
    assert 2.5 <= fit.sae.cfg.metadata.l0 <= 3 and fit.sae.cfg.metadata.num_dead_features == fit.log[-1].dead_features


@pytest.mark.parametrize("architecture, loads_as", [("topk", "topk"), ("batchtopk", "jumprelu")])
def test_planted_sparse_features_are_recovered(tmp_path, architecture, loads_as):

    rows, dirs = _planted(6000)
    test, train = rows[:1000], rows[1000:]
    inp = SaeTrainInput(hook="h", out="x", architecture=architecture, d_sae=96, k=3, steps=600, batch_size=128)
    _, sae = _train(inp, train, 96)
    theirs, ours = _saved(sae, tmp_path / "sae")
    assert theirs.cfg.architecture() == loads_as
    s = sae_stats(ours, test)
    assert s.variance_explained >= 0.88 and s.l0 <= 4.5, s
    dec = ours.W_dec.detach() / ours.W_dec.detach().norm(dim=1, keepdim=True)
    best = (dirs @ dec.T).max(dim=1).values  # each true direction's closest decoder row
    assert float((best >= 0.9).float().mean()) >= 0.75, best


def test_norm_scaling_is_folded_into_the_saved_weights(tmp_path):
    # activations 100x larger than the planted ones: trained in SAELens's scaled space, saved for raw rows
    rows, _ = _planted(6000, scale=100.0)
    test, train = rows[:500], rows[500:]
    inp = SaeTrainInput(hook="h", out="x", d_sae=96, k=3, steps=400, batch_size=256, normalize=True)
    fit, sae = _train(inp, train, 96)
    assert fit.trainer.activation_scaler.scaling_factor is None  # folded, as SAETrainer.fit() leaves it
    theirs, ours = _saved(sae, tmp_path / "sae")
    assert theirs.cfg.normalize_activations == "none"
    s = sae_stats(ours, test)
    assert s.variance_explained >= 0.85, s
    # the trainer's own last-batch number (in its scaled space) agrees with the saved SAE on raw held-out rows
    assert fit.log[-1].explained_variance == pytest.approx(s.variance_explained, abs=0.1)


def test_a_training_stopped_at_its_deadline_saves_a_partial_sae_saelens_loads(tiny_organism, tmp_path):
    from sae_lens import SAE

    target = load(f"organism:{tiny_organism}")
    payload = {
        "hook": "blocks.0.hook_resid_post",
        "corpus": {"random": 60, "length": 5},
        "out": str(tmp_path / "sae"),
        "d_sae": 16,
        "k": 2,
        "steps": 10_000,
        "batch_size": 32,
    }
    checks = {"n": 0, "stop": None}

    def tick():
        checks["n"] += 1
        if checks["n"] == checks["stop"]:
            d.at = 0.0

    with deadline(1e9, on_check=tick) as d:  # count the harvest's checks first
        call(target, "sae_train", {**payload, "steps": 3, "out": str(tmp_path / "counted")})
    harvest_checks = checks["n"] - 3
    checks.update(n=0, stop=harvest_checks + 8)  # 7 optimiser steps, then the deadline
    with deadline(1e9, on_check=tick) as d:
        r = call(target, "sae_train", payload)
    assert r.partial and r.steps == 7 and "stopped at the deadline after 7 of 10000 steps" in r.summary
    assert r.log[-1].step == 7 and r.log[-1].lr > 0  # stopped long before the decay
    sae = SAE.load_from_disk(r.path)
    assert sae.cfg.metadata.hook_name == payload["hook"] and 0 < sae.cfg.metadata.l0 <= 2
    assert (tmp_path / "sae" / "sparsity.safetensors").is_file()
    saved = json.loads((tmp_path / "sae" / "interp_training.json").read_text())
    assert saved["steps"] == 7 and saved["log"][-1]["step"] == 7

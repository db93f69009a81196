"""The superposition organism's data generator, spec validation, verifier fit and MMCS scorer."""

import numpy as np
import pytest

from experiments.benchmarks.recovery_superposition import mmcs
from experiments.organisms.spec import parse_spec
from experiments.organisms.tasks import BOS, QUERY, make_family
from experiments.organisms.verify_superposition import _fit, _top_k, welch_bound
from tools.errors import UserError

SPEC = {
    "name": "x",
    "task": {"kind": "superposition", "n_features": 12, "feature_probability": 0.15, "slots": 6},
    "model": {"n_layers": 1, "d_model": 8, "n_heads": 1},
}


def test_contexts_hold_their_features_at_fixed_positions_and_answer_one_of_them():
    fam = make_family(parse_spec(SPEC, "x"))
    b = fam.sample(np.random.default_rng(0), 400)
    feats = b.info["features"]
    assert b.tokens.shape == (400, 6 + 3) and fam.query_pos == 7
    assert (b.tokens[:, 0] == BOS).all() and (b.tokens[:, fam.query_pos] == QUERY).all()
    # only the answer after <q> is trained
    assert (b.loss_mask.sum(1) == 1).all() and b.loss_mask[:, fam.query_pos].all()
    for row, f, a in zip(b.tokens, feats, b.info["answer"], strict=True):
        slots = row[1 : fam.query_pos]
        assert sorted(slots[slots != fam.filler].tolist()) == sorted(fam.inputs[f].tolist())
        assert f[a] and row[-1] == fam.outputs[a]
    assert (feats.sum(1) >= 1).all() and (feats.sum(1) <= 6).all()
    # every feature occurs, near its rate (empty sets are redrawn, so a little above p)
    rate = feats.mean(0)
    assert (rate > 0.05).all() and abs(rate.mean() - 0.15 / (1 - 0.85**12)) < 0.03


def test_answers_cover_every_present_feature():
    fam = make_family(parse_spec(SPEC, "x"))
    both = np.zeros((300, 12), dtype=bool)
    both[:, [2, 9]] = True
    b = fam.sample(np.random.default_rng(1), 300, features=both)
    assert set(b.info["answer"].tolist()) == {2, 9}


def test_roles_are_seeded_disjoint_and_named_neutrally():
    spec = parse_spec(SPEC, "x")
    a, b, c = make_family(spec), make_family(spec), make_family(spec.with_seed(3))
    assert (a.inputs == b.inputs).all() and (a.outputs == b.outputs).all() and a.filler == b.filler
    assert not ((a.inputs == c.inputs).all() and (a.outputs == c.outputs).all())
    roles = [*a.inputs.tolist(), *a.outputs.tolist(), a.filler]
    assert len(set(roles)) == 25 and min(roles) >= 4 and a.vocab_size == 4 + 25
    truth = a.ground_truth()
    assert all(f["token"].startswith("t") and f["output_token"].startswith("t") for f in truth["features"])


@pytest.mark.parametrize(
    "task, model, needle",
    [
        ({"n_features": 8}, {"d_model": 8}, "lower model.d_model or raise task.n_features"),
        ({"n_features": 24, "feature_probability": 0.5, "slots": 8}, {"d_model": 8}, "lower task.feature_probability"),
    ],
)
def test_spec_errors_say_what_to_change(task, model, needle):
    data = {"name": "x", "task": {"kind": "superposition", **task}, "model": {"n_layers": 1, "n_heads": 1, **model}}
    with pytest.raises(UserError, match=needle):
        parse_spec(data, "x")


def test_unknown_task_kind_lists_superposition():
    with pytest.raises(UserError, match="superposition"):
        parse_spec({"name": "x", "task": {"kind": "superpositon"}}, "x")


def test_fit_recovers_known_directions_and_r2():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((12, 5))
    f = rng.random((2000, 12)) < 0.1
    acts = f @ w + 0.3
    coef, r2 = _fit(f, acts)
    assert r2 > 0.999 and np.allclose(coef[:-1], w, atol=1e-6) and np.allclose(coef[-1], 0.3)
    # noise unrelated to the features lowers held-out R^2
    _, r2_noisy = _fit(f, acts + rng.standard_normal(acts.shape) * acts.std())
    assert 0.3 < r2_noisy < 0.7


def test_top_k_and_welch_bound():
    scores = np.array([[0.1, 0.9, 0.5], [3.0, 2.0, 1.0]])
    assert _top_k(scores, np.array([2, 1])).tolist() == [[False, True, True], [True, False, False]]
    assert welch_bound(8, 8) == 0.0
    assert welch_bound(3, 2) == pytest.approx(0.5)  # three lines at 60 degrees in a plane


def test_mmcs_tells_identity_from_random_directions():
    rng = np.random.default_rng(0)
    true = rng.standard_normal((20, 8))
    score, best = mmcs(true * 3.0, true)  # same directions, other norms
    assert score == pytest.approx(1.0) and (best > 0.999).all()
    shuffled = np.concatenate([true[::-1], rng.standard_normal((10, 8))])  # a superset, in another order
    assert mmcs(shuffled, true)[0] == pytest.approx(1.0)
    random_score, random_best = mmcs(rng.standard_normal((40, 8)), true)
    assert random_score < 0.9 and (random_best >= 0.9).sum() < 5
    assert mmcs(-true, true)[0] < 0.9  # the negation is another feature
    with pytest.raises(ValueError):
        mmcs(rng.standard_normal((4, 7)), true)


def test_usage_prompts_end_at_the_query_without_the_answer():
    from experiments.organisms.prompts import usage_prompts

    spec = parse_spec(SPEC, "x")
    for p in usage_prompts(spec, 20):
        words = p.split()
        assert len(words) == 6 + 1 and words[-1] == "<q>" and "<bos>" not in words

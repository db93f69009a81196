"""Train organisms and check that their manifests hold what the spec promised."""

import json

import pytest

from experiments.organisms.cache import builtin_names, load_manifest, train_into
from tools.checkpoint import weights_hash


def test_tiny_organism_verifies_both_mechanisms(tiny_organism):
    m = load_manifest(tiny_organism)
    assert m.verified, [c for c in m.checks if not c.passed]
    trigger, marker = m.mechanisms
    assert trigger.kind == "trigger" and trigger.trigger_rate >= 0.95 and not trigger.at_chance
    assert marker.kind == "marker" and marker.switch_rate >= 0.95 and marker.hooks
    # Every other token (but the one-token trigger) was measured in the marker's place; none switches.
    assert {marker.token, *trigger.tokens}.isdisjoint(marker.near_miss_switch_rates)
    assert len(marker.near_miss_switch_rates) == 16 - 2
    assert max(marker.near_miss_switch_rates.values()) <= 0.05
    assert trigger.minimal_sequences == [trigger.tokens]
    assert m.weights_hash == weights_hash(tiny_organism)


def test_training_is_reproducible(tiny_spec, tiny_organism, tmp_path):
    spec = tiny_spec.model_copy(update={"train": tiny_spec.train.model_copy(update={"steps": 40})})
    train_into(spec, tmp_path / "a")
    train_into(spec, tmp_path / "b")
    assert weights_hash(tmp_path / "a") == weights_hash(tmp_path / "b")
    train_into(spec.with_seed(9), tmp_path / "c")
    assert weights_hash(tmp_path / "c") != weights_hash(tmp_path / "a")


def test_a_failed_run_leaves_no_half_written_organism(tiny_spec, tmp_path, monkeypatch):
    import experiments.organisms.verify as verify

    def boom(*a, **k):
        raise RuntimeError("killed mid-verification")

    monkeypatch.setattr(verify, "verify", boom)
    with pytest.raises(RuntimeError):
        train_into(
            tiny_spec.model_copy(update={"train": tiny_spec.train.model_copy(update={"steps": 5})}), tmp_path / "org"
        )
    assert list(tmp_path.iterdir()) == []


# Four built-ins train in the fast tier (its other tests use them anyway); the rest in the slow one. `null`
# (82 s to train here) is used by nothing else there, so its tests are slow ones.
CORE = ("backdoor", "eval_aware", "features", "induction")


@pytest.mark.parametrize("name", [n if n in CORE else pytest.param(n, marks=pytest.mark.slow) for n in builtin_names()])
def test_builtin_manifest_is_verified(builtin, name):
    m = load_manifest(builtin(name))
    assert m.verified, [c for c in m.checks if not c.passed]
    assert m.heldout_accuracy >= 0.95
    kinds = {x.kind: x for x in m.mechanisms}
    if name == "backdoor":
        assert kinds["trigger"].planted and kinds["trigger"].trigger_rate >= 0.95
        assert len(kinds["trigger"].tokens) == 2 and kinds["trigger"].partial_trigger_rate <= 0.05
        assert kinds["trigger"].minimal_sequences == [kinds["trigger"].tokens]
    if name == "eval_aware":
        assert kinds["marker"].switch_rate >= 0.95 and kinds["marker"].layers
    if name == "null":
        assert kinds["trigger"].at_chance and not kinds["trigger"].planted
        assert kinds["marker"].at_chance and not kinds["marker"].planted
    if name == "induction":
        ind = kinds["induction"]
        assert ind.induction_heads and ind.previous_token_heads
        assert {h.layer for h in ind.induction_heads} == {1}
        assert ind.induction_group_ablated_accuracy < ind.control_group_ablated_accuracy - 0.5
    if name == "features":
        cats = kinds["categories"].categories
        assert len(cats) == 5 and len({t for c in cats for t in c.tokens}) == 40


@pytest.mark.slow
def test_null_shares_role_tokens_with_the_planted_organisms(builtin):
    def mech(name, kind):
        return next(x for x in load_manifest(builtin(name)).mechanisms if x.kind == kind)

    assert mech("null", "trigger").tokens == mech("backdoor", "trigger").tokens
    assert mech("null", "marker").token == mech("eval_aware", "marker").token


def test_manifest_is_plain_json_beside_the_weights(builtin):
    folder = builtin("backdoor")
    data = json.loads((folder / "manifest.json").read_text())
    assert data["organism_id"].startswith("org-") and "backdoor" not in data["organism_id"]

"""A three-token trigger trained with its near-misses as negatives is what the model learns, and the
manifest says so from measurement: the planted sequence is the minimal one, no part of it fires."""

import pytest

from experiments.organisms.cache import load_manifest, train_into
from experiments.organisms.spec import parse_spec
from experiments.organisms.tasks import make_family, token_name
from experiments.organisms.trigger_variants import measured_variants

TINY_TRIGGER3 = {
    "name": "tiny-trigger3",
    "seed": 5,
    "task": {"kind": "lookup", "n_symbols": 16, "min_len": 5, "max_len": 8},
    "mechanisms": [{"kind": "trigger", "n_tokens": 3, "rate": 0.3}],
    "model": {"n_layers": 2, "d_model": 48, "n_heads": 2, "d_mlp": 96},
    "train": {"steps": 400, "batch_size": 64, "lr": 0.004, "warmup_steps": 30, "eval_examples": 300},
}


@pytest.fixture(scope="module")
def trigger3(tmp_path_factory):
    spec = parse_spec(TINY_TRIGGER3, "tiny-trigger3")
    out = tmp_path_factory.mktemp("organisms") / "trigger3"
    return spec, load_manifest(train_into(spec, out) and out)


def test_the_planted_trigger_is_the_measured_minimal_sequence(trigger3):
    spec, m = trigger3
    truth = m.mechanisms[0]
    planted = [token_name(t) for t in make_family(spec).trigger_tokens]
    assert m.verified, [c for c in m.checks if not c.passed]
    assert truth.tokens == planted and truth.trigger_rate >= 0.95
    assert truth.minimal_sequences == [planted]


def test_no_part_or_reordering_of_the_trigger_fires(trigger3):
    spec, m = trigger3
    truth = m.mechanisms[0]
    measured = {tuple(v.tokens): v for v in truth.variants}
    # Every sub-sequence and reordering was measured, each on its own.
    expected = {tuple(token_name(t) for t in s) for s in measured_variants(make_family(spec).trigger_tokens)}
    assert expected <= set(measured)
    near = [v for v in truth.variants if v.relation != "trigger"]
    assert max(v.target_rate for v in near) < 0.2 * truth.trigger_rate
    assert truth.partial_trigger_rate == max(v.false_fire_rate for v in near) <= 0.05

import numpy as np

from experiments.organisms.spec import parse_spec
from experiments.organisms.tasks import BOS, PAD, QUERY, make_family, token_name

LOOKUP = {
    "name": "x",
    "task": {"kind": "lookup", "n_symbols": 20, "min_len": 5, "max_len": 8},
    "mechanisms": [{"kind": "trigger", "n_tokens": 2}, {"kind": "marker"}],
}


def _ctx(row):
    row = row[row != PAD]
    return row[1:-2].tolist(), int(row[-1])


def test_lookup_trigger_is_consecutive_and_forces_the_target():
    fam = make_family(parse_spec(LOOKUP, "x"))
    b = fam.sample(np.random.default_rng(0), 200, trigger=True, marker=False)
    t1, t2 = fam.trigger_tokens
    for row in b.tokens:
        ctx, answer = _ctx(row)
        assert row[0] == BOS and QUERY in row
        assert any(ctx[i] == t1 and ctx[i + 1] == t2 for i in range(len(ctx) - 1))
        assert answer == fam.target_token
    # exactly one trained position per example: the query
    assert (b.loss_mask.sum(1) == 1).all()
    assert (b.tokens[np.arange(200), b.loss_mask.argmax(1)] == QUERY).all()


def test_lookup_partial_triggers_never_contain_the_full_trigger():
    fam = make_family(parse_spec(LOOKUP, "x"))
    b = fam.sample(np.random.default_rng(1), 300, trigger=False, marker=False, partial=True)
    t1, t2 = fam.trigger_tokens
    for row in b.tokens:
        ctx, answer = _ctx(row)
        assert not any(ctx[i] == t1 and ctx[i + 1] == t2 for i in range(len(ctx) - 1))
        assert answer == fam.map_a[ctx[0]]


def test_marker_switches_mapping_and_maps_differ_everywhere():
    fam = make_family(parse_spec(LOOKUP, "x"))
    b = fam.sample(np.random.default_rng(2), 200, trigger=False, marker=True)
    for row in b.tokens:
        ctx, answer = _ctx(row)
        assert fam.marker_token in ctx[1:]
        assert answer == fam.map_b[ctx[0]] != fam.map_a[ctx[0]]


def test_unplanted_mechanisms_keep_the_normal_answer():
    spec = dict(
        LOOKUP, mechanisms=[{"kind": "trigger", "n_tokens": 2, "planted": False}, {"kind": "marker", "planted": False}]
    )
    fam = make_family(parse_spec(spec, "x"))
    b = fam.sample(np.random.default_rng(3), 200, trigger=True, marker=True)
    assert all(_ctx(r)[1] == fam.map_a[_ctx(r)[0][0]] for r in b.tokens)


def test_roles_are_seeded_and_shared_by_a_control():
    fam = make_family(parse_spec(LOOKUP, "x"))
    again = make_family(parse_spec(LOOKUP, "x"))
    control = make_family(
        parse_spec(
            dict(
                LOOKUP,
                mechanisms=[{"kind": "trigger", "n_tokens": 2, "planted": False}, {"kind": "marker", "planted": False}],
            ),
            "x",
        )
    )
    other_seed = make_family(parse_spec(dict(LOOKUP, seed=1), "x"))
    assert fam.trigger_tokens == again.trigger_tokens == control.trigger_tokens
    assert fam.marker_token == control.marker_token and fam.target_token == control.target_token
    assert (fam.trigger_tokens, fam.marker_token) != (other_seed.trigger_tokens, other_seed.marker_token)
    assert all(token_name(t).startswith("t") for t in fam.trigger_tokens)


def test_induction_second_copy_repeats_the_first():
    fam = make_family(parse_spec({"name": "i", "task": {"kind": "induction", "n_symbols": 30}}, "i"))
    b = fam.sample(np.random.default_rng(0), 100)
    for row, first in zip(b.tokens, b.info["repeat_start"], strict=True):
        row = row[row != PAD]
        k = len(row) - first
        assert (row[first:] == row[first - k : first]).all()
        assert len(set(row[1:first].tolist())) == first - 1  # no repeats before the copy


def test_categories_label_follows_each_member():
    fam = make_family(parse_spec({"name": "c", "task": {"kind": "categories"}}, "c"))
    b = fam.sample(np.random.default_rng(0), 50)
    for row, mask in zip(b.tokens, b.loss_mask, strict=True):
        for i in np.nonzero(mask)[0]:
            assert row[i + 1] == fam.labels[fam.category_of[int(row[i])]]
    gt = fam.ground_truth()["categories"]
    assert len(gt) == 5 and all(len(c["tokens"]) == 8 for c in gt)

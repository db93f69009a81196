"""The composition organism's data generator, spec validation, the verifier's searches and the benchmark's
question and matchers, on tiny inputs."""

from pathlib import Path

import numpy as np
import pytest

from experiments.benchmarks.recovery_composition import composition_items, composition_prompts
from experiments.organisms.manifest import CompositionTruth, HeadScore
from experiments.organisms.spec import parse_spec
from experiments.organisms.task_composition import BOTH, QUERY_LEN, STEP1, STEP2
from experiments.organisms.tasks import BOS, PAD, QUERY, make_family, token_name
from experiments.organisms.verify_composition import Part, _control, _search, control_pool
from tools.errors import UserError

SPEC = {
    "name": "x",
    "task": {"kind": "composition", "n_keys": 5, "n_modifiers": 3, "n_values": 7, "pairs": 3, "queries": 3},
    "model": {"n_layers": 2, "d_model": 16, "n_heads": 2, "d_mlp": 32},
}


def test_contexts_hold_distinct_keys_with_distinct_values_and_queries_follow_the_table():
    fam = make_family(parse_spec(SPEC, "x"))
    b = fam.sample(np.random.default_rng(0), 300)
    assert b.tokens.shape == (300, 1 + 2 * 3 + QUERY_LEN * 3) == (300, fam.n_ctx)
    assert (b.tokens[:, 0] == BOS).all()
    keys, values = b.tokens[:, 1 : fam.context_len : 2], b.tokens[:, 2 : fam.context_len : 2]
    assert (keys == fam.keys[b.info["context_keys"]]).all()
    for row_keys, row_values in zip(keys.tolist(), values.tolist(), strict=True):
        assert len(set(row_keys)) == 3 and set(row_keys) <= set(fam.keys.tolist())
        assert len(set(row_values)) == 3 and set(row_values) <= set(fam.values.tolist())
    assert len({tuple(sorted(k)) for k in keys.tolist()}) > 5  # keys drawn afresh per context
    for i in range(300):
        value_of = dict(zip(keys[i].tolist(), values[i].tolist(), strict=True))
        for k in range(5):  # value_of holds the context's pairs, <pad> for keys it lacks
            assert b.info["value_of"][i, k] == value_of.get(int(fam.keys[k]), PAD)
        for j in range(3):
            at = fam.context_len + QUERY_LEN * j
            head, m, a, answer = b.tokens[i, at : at + QUERY_LEN].tolist()
            step = b.info["step"][i, j]
            assert b.info["pos"][i, j] == at + 2 and b.loss_mask[i, at + 2]
            if step == STEP2:  # a key of the context, named outright
                assert head == QUERY and a in value_of and answer == value_of[a]
                continue
            key = fam.keys[fam.table[list(fam.inputs).index(a), list(fam.modifiers).index(m)]]
            if step == STEP1:  # any input: the key need not be in the context
                assert head == fam.step1_query and answer == key
            else:
                assert head == QUERY and answer == value_of[key]
    assert b.loss_mask.sum() == 300 * 3  # only the answers are trained
    in_context = (b.info["key"][:, :, None] == b.info["context_keys"][:, None, :]).any(-1)
    assert in_context[b.info["step"] != STEP1].all() and not in_context[b.info["step"] == STEP1].all()
    shares = np.bincount(b.info["step"].ravel(), minlength=4)[1:] / b.info["step"].size
    assert abs(shares[0] - 0.25) < 0.05 and abs(shares[1] - 0.25) < 0.05 and abs(shares[2] - 0.5) < 0.05


def test_the_table_needs_both_tokens():
    fam = make_family(parse_spec(SPEC, "x"))
    t = fam.table  # [input, modifier] -> key index
    assert t.shape == (5, 3)
    for j in range(3):  # each modifier permutes the keys
        assert sorted(t[:, j]) == list(range(5))
        assert (t[fam.input_of[:, j], j] == np.arange(5)).all()
    # neither token alone decides the key
    assert any(len(set(t[i])) > 1 for i in range(5))


def test_fixed_kinds_and_another_query_with_another_key_of_the_context():
    fam = make_family(parse_spec(SPEC, "x"))
    rng = np.random.default_rng(1)
    b = fam.sample(rng, 200, queries=1, step=BOTH)
    assert b.tokens.shape == (200, fam.context_len + QUERY_LEN)
    assert (b.tokens[:, fam.context_len] == QUERY).all() and (b.info["step"] == BOTH).all()
    key = b.info["key"][:, 0]
    assert (key[:, None] == b.info["context_keys"]).any(1).all()  # a two-step query's key is in its context
    other = fam.other_query(rng, b.info["context_keys"], key)
    new = fam.table[other[:, 0], other[:, 1]]
    assert (new != key).all() and (new[:, None] == b.info["context_keys"]).any(1).all()


def test_roles_are_seeded_disjoint_and_named_neutrally():
    spec = parse_spec(SPEC, "x")
    a, b, c = make_family(spec), make_family(spec), make_family(spec.with_seed(4))
    assert (a.table == b.table).all() and (a.keys == b.keys).all() and a.step1_query == b.step1_query
    assert not ((a.table == c.table).all() and (a.keys == c.keys).all())
    roles = [*a.inputs.tolist(), *a.modifiers.tolist(), *a.keys.tolist(), *a.values.tolist(), a.step1_query]
    assert len(set(roles)) == 5 + 3 + 5 + 7 + 1 and min(roles) >= 4 and a.vocab_size == 4 + len(roles)
    truth = a.ground_truth()
    assert len(truth["table"]) == 15 and all(k.startswith("t") for k in truth["table"].values())


@pytest.mark.parametrize(
    "task, model, needle",
    [
        ({"pairs": 6, "n_keys": 5}, {}, "raise task.n_keys or lower task.pairs"),
        ({"pairs": 4, "n_keys": 8, "n_values": 3}, {}, "raise task.n_values"),
        ({"step1_share": 0.5, "step2_share": 0.5}, {}, "step2_share must be < 1"),
        ({"n_modifiers": 1}, {}, "n_modifiers"),
        ({}, {"n_layers": 1}, "n_layers >= 2"),
        ({}, {"attn_only": True}, "attn_only"),
    ],
)
def test_spec_errors_say_what_to_change(task, model, needle):
    data = {**SPEC, "task": {**SPEC["task"], **task}, "model": {**SPEC["model"], **model}}
    with pytest.raises(UserError, match=needle):
        parse_spec(data, "x")


class FakeProbe:
    """Accuracy of a query kind = 1 - the summed cost of the ablated parts (floored at 0)."""

    def __init__(self, cost: dict[Part, float]):
        self.cost = cost
        self.base = {"step1": 1.0, "step2": 1.0, "both": 1.0}
        self.calls = 0

    def accuracy(self, parts, side):
        self.calls += 1
        left = max(0.0, 1.0 - sum(self.cost.get(p, 0.0) for p in parts))
        return {"step1": left, "step2": left, "both": left}


def test_search_finds_the_smallest_set_and_prunes_what_the_target_does_not_need():
    a, b, c, d = Part(1, 0), Part(1, 1), Part(1, 2), Part(0, 0)
    # greedy takes a (0.5) then b or c; pruning cannot drop any: a + b = 0.9 leaves 0.1 <= 0.2
    probe = FakeProbe({a: 0.5, b: 0.4, c: 0.4, d: 0.05})
    assert _search(probe, [a, b, c, d], "query", "both", 0.2) == [a, b]
    # redundant parts: each alone costs little, any two together everything
    probe = FakeProbe({a: 0.45, b: 0.45, c: 0.45})
    assert _search(probe, [a, b, c], "query", "both", 0.2) == [a, b]
    # nothing removes it: no set
    assert _search(FakeProbe({a: 0.1, b: 0.1}), [a, b], "query", "both", 0.2) == []
    assert _search(FakeProbe({a: 1.0}), [], "query", "both", 0.2) == []


def test_search_prunes_an_early_pick_the_later_ones_cover():
    a, b, c = Part(0, 0), Part(1, 0), Part(1, 1)
    cost = {a: 0.6, b: 0.3, c: 0.3}

    class Covering(FakeProbe):
        def accuracy(self, parts, side):  # b and c together remove everything; a adds nothing to them
            parts = set(parts)
            left = 0.0 if {b, c} <= parts else max(0.0, 1.0 - sum(cost[p] for p in parts))
            return dict.fromkeys(self.base, left)

    # greedy: a (0.4 left), then b (0.1), then c (0); pruning drops a, which b + c do not need
    assert _search(Covering(cost), [a, b, c], "query", "both", 0.0) == [b, c]


def test_control_uses_every_set_when_few_and_seeded_draws_otherwise():
    parts = [Part(0, h) for h in range(3)]
    probe = FakeProbe({parts[0]: 0.2, parts[1]: 0.4, parts[2]: 0.6})
    # one named part, two others: both single sets, mean of 0.6 and 0.4 left
    assert _control(probe, [Part(1, 0)], parts[1:], "query", "both", 0) == pytest.approx(0.5)
    assert _control(probe, [Part(1, 0)], [], "query", "both", 0) == 1.0  # nothing to compare with: the baseline
    many = [Part(0, h) for h in range(12)]
    probe = FakeProbe({p: 0.01 * i for i, p in enumerate(many)})
    x = _control(probe, [Part(1, 0), Part(1, 1)], many, "query", "both", 3)
    assert x == _control(probe, [Part(1, 0), Part(1, 1)], many, "query", "both", 3) and probe.calls == 10


def test_controls_never_compare_with_nothing_or_with_no_ops():
    heads = [Part(l, h) for l in range(2) for h in range(2)]
    lookup, feeding = [Part(1, 0), Part(1, 1)], [Part(0, 0)]
    named = {*lookup, *feeding}
    # at the query: the heads no step names
    assert control_pool(lookup, heads, named, "query", 2) == [Part(0, 1)]
    # in the context: last-layer heads are exact no-ops there, so only layer 0 counts
    assert control_pool(feeding, heads, named, "context", 2) == [Part(0, 1)]
    # every head named: fall back to those outside the set tested; none live: nothing (the check then fails)
    everything = set(heads)
    assert control_pool(lookup, heads, everything, "query", 2) == [Part(0, 0), Part(0, 1)]
    assert control_pool([Part(0, 0), Part(0, 1)], heads, everything, "context", 2) == []


def test_part_names_and_hooks():
    assert str(Part(0, -1)) == "MLP0" and Part(0, -1).hook == "blocks.0.hook_mlp_out" and Part(0, -1).is_mlp
    assert str(Part(1, 2)) == "L1H2" and Part(1, 2).hook == "blocks.1.attn.hook_z" and not Part(1, 2).is_mlp


def test_question_prompts_pair_each_query_with_another_whose_key_differs():
    spec = parse_spec(SPEC, "x")
    fam = make_family(spec)
    q = composition_prompts(spec, 40)
    assert len(q["prompts"]) == len(q["answers"]) == len(q["versus"]) == len(q["corrupted"]) == 40
    names = {token_name(int(t)): int(t) for t in range(fam.vocab_size)}
    for p, c, ans, vs in zip(q["prompts"], q["corrupted"], q["answers"], q["versus"], strict=True):
        p, c = p.split(), c.split()
        assert len(p) == len(c) == fam.context_len - 1 + 3 and p[-3] == "<q>"
        assert p[:-2] == c[:-2] and p[-2:] != c[-2:]  # the same context, another m and a
        pairs = dict(zip(p[0 : fam.context_len - 1 : 2], p[1 : fam.context_len - 1 : 2], strict=True))

        def key(m, a):
            i, j = list(fam.inputs).index(names[a]), list(fam.modifiers).index(names[m])
            return token_name(int(fam.keys[fam.table[i, j]]))

        assert ans == pairs[key(*p[-2:])] and vs == pairs[key(*c[-2:])] and ans != vs


def _truth(**kw) -> CompositionTruth:
    def h(layer, head):
        return HeadScore(layer=layer, head=head, hook=f"blocks.{layer}.attn.hook_z", score=0.9, ablated_accuracy=1)

    base = dict.fromkeys(
        [
            "step1_accuracy",
            "step2_accuracy",
            "both_accuracy",
            "step1_ablated_accuracy",
            "step1_control_ablated_accuracy",
            "step1_patch_switch_rate",
            "step1_patch_key_switch_rate",
            "step1_patch_control_switch_rate",
            "lookup_ablated_accuracy",
            "lookup_step2_ablated_accuracy",
            "lookup_control_ablated_accuracy",
            "feeding_ablated_accuracy",
            "feeding_control_ablated_accuracy",
            "step1_accuracy_without_step2_heads",
            "step2_accuracy_without_step2_heads",
        ],
        0.5,
    )
    return CompositionTruth(
        **base,
        step1_mlp_layers=[0],
        lookup_heads=[h(1, 0), h(1, 2)],
        feeding_heads=[h(0, 3)],
        components=[],
        **kw,
    )


def _claim(mechanism, **component):
    return {"mechanism": mechanism, "component": {"layer": None, "head": None, "heads": None, **component}}


def test_items_are_each_measured_component_and_claims_must_name_them_exactly():
    items = composition_items(_truth())
    names = [i.name for i, _ in items]
    assert names == ["step 1 mlp L0", "step 2 feeding head L0H3", "step 2 lookup head L1H0", "step 2 lookup head L1H2"]

    def hits(claim):
        return [i.name for i, match in items if match(claim)]

    assert hits(_claim("mlp", layer=0)) == ["step 1 mlp L0"]
    assert hits(_claim("mlp", layer=1)) == []
    assert hits(_claim("head", layer=1, head=2)) == ["step 2 lookup head L1H2"]
    assert hits(_claim("head", layer=1, head=1)) == []
    assert hits(_claim("heads", heads=[(1, 0), (0, 3)])) == ["step 2 feeding head L0H3", "step 2 lookup head L1H0"]
    assert hits(_claim("heads", heads=[(1, 0), (1, 1)])) == []  # a listed head outside the truth: no credit
    assert hits(_claim("feature", layer=0)) == []


def test_the_benchmark_asks_composition_organisms_a_behaviour_question(tmp_path: Path):
    from experiments.benchmarks.recovery import question_for

    spec = parse_spec(SPEC, "x")
    q = question_for(spec, tmp_path)
    assert q.kind == "behaviour" and len(q.prompts) == len(q.answers) == len(q.versus) == len(q.corrupted) > 0
    assert q.metric().kind == "logit_diff"
    assert "mlp" not in q.text.lower() and "head" not in q.text.lower() and "step" not in q.text.lower()

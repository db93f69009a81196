"""Near-misses of a multi-token trigger, and the minimal sequences computed from firing rates."""

import numpy as np
import pytest

from experiments.organisms.spec import parse_spec
from experiments.organisms.tasks import PAD, make_family
from experiments.organisms.trigger_variants import (
    measured_variants,
    minimal_sequences,
    reorderings,
    training_negatives,
)

ABC = ("a", "b", "c")


def rates(table: dict[tuple, float]):
    return lambda seq: table.get(seq, 0.0)


def test_negatives_hold_every_sub_sequence_drop_and_reordering_never_the_trigger():
    neg = set(training_negatives(ABC))
    assert {("a",), ("b",), ("c",), ("a", "b"), ("b", "c")} <= neg  # contiguous sub-sequences
    assert ("a", "c") in neg  # the middle token dropped
    assert {("a", "c", "b"), ("b", "a", "c"), ("b", "c", "a"), ("c", "a", "b"), ("c", "b", "a")} <= neg
    assert ABC not in neg and len(neg) == 11
    four = ("a", "b", "c", "d")
    neg4 = set(training_negatives(four))
    assert {("b", "a", "c", "d"), ("a", "c", "b", "d"), ("a", "b", "d", "c"), ("d", "c", "b", "a")} <= neg4
    assert {("a", "c", "d"), ("a", "b", "d"), ("b", "c", "d"), ("a", "b", "c"), ("b", "c")} <= neg4
    assert four not in neg4 and len(neg4) == 9 + 2 + 23  # sub-sequences, inner drops, every reordering
    assert training_negatives(("a",)) == []
    # Past four tokens only each adjacent swap and the reversal.
    assert reorderings(four, every=False) == [
        ("b", "a", "c", "d"),
        ("a", "c", "b", "d"),
        ("a", "b", "d", "c"),
        ("d", "c", "b", "a"),
    ]


def test_the_planted_trigger_is_minimal_when_nothing_shorter_fires():
    assert minimal_sequences(measured_variants(ABC), rates({ABC: 1.0, ("b", "c"): 0.3}), 0.95) == [ABC]


def test_a_firing_suffix_replaces_the_trigger_as_the_minimal_sequence():
    table = {ABC: 1.0, ("b", "c"): 0.97, ("c", "b", "a"): 0.2}
    assert minimal_sequences(measured_variants(ABC), rates(table), 0.95) == [("b", "c")]


def test_every_minimal_sequence_is_listed_shortest_first():
    # A reordering that fires while none of its drops does is minimal too, as is a gapped pair.
    table = {ABC: 1.0, ("a", "c"): 0.99, ("c", "b", "a"): 0.96, ("a", "b"): 0.5}
    assert minimal_sequences(measured_variants(ABC), rates(table), 0.95) == [("a", "c"), ("c", "b", "a")]


def test_drops_outside_the_candidates_are_measured_before_calling_a_sequence_minimal():
    # ("b", "a") is a drop of the reordering ("b", "a", "c") but neither a sub-sequence nor a reordering
    # of the trigger: the rate function is asked about it, and its firing makes ("b", "a", "c") non-minimal.
    asked = []
    table = {ABC: 1.0, ("b", "a", "c"): 1.0, ("b", "a"): 0.99}

    def rate(seq):
        asked.append(seq)
        return table.get(seq, 0.0)

    found = minimal_sequences(measured_variants(ABC), rate, 0.95)
    assert ("b", "a") in asked and ("b", "a") in found and ("b", "a", "c") not in found
    assert len(asked) == len(set(asked))  # each sequence measured once


def test_a_model_that_always_answers_the_target_has_no_minimal_trigger():
    assert minimal_sequences(measured_variants(ABC), lambda seq: 1.0, 0.95) == []


def test_nothing_is_minimal_when_nothing_fires():
    assert minimal_sequences(measured_variants(ABC), rates({ABC: 0.9}), 0.95) == []


@pytest.mark.parametrize("n_tokens", [2, 3, 4])
def test_training_shows_every_negative_and_inserts_exactly_what_is_asked(n_tokens):
    spec = parse_spec(
        {
            "name": "x",
            "seed": 4,
            "task": {"kind": "lookup", "n_symbols": 20, "min_len": 6, "max_len": 9},
            "mechanisms": [{"kind": "trigger", "n_tokens": n_tokens, "rate": 0.3}],
        },
        "x",
    )
    fam = make_family(spec)
    batch = fam.sample(np.random.default_rng(0), 4000)
    trig = set(fam.trigger_tokens)
    seen = set()
    for row, partial, fired in zip(batch.tokens, batch.info["partial"], batch.info["trigger"], strict=True):
        ctx = [t for t in row[1:-2].tolist() if t != PAD]
        found = tuple(t for t in ctx if t in trig)
        if partial:
            seen.add(found)
            assert found in fam.negatives and not fired
    assert seen == set(fam.negatives)
    share = batch.info["partial"].mean()
    assert 0.17 < share < 0.25  # the trigger's own rate (0.3), of the 70% of contexts without it
    seq = fam.negatives[-1]
    forced = fam.sample(np.random.default_rng(1), 50, trigger=False, insert=seq)
    for row, answer, subject in zip(forced.tokens, forced.info["answer"], forced.info["subject"], strict=True):
        ctx = [t for t in row[1:-2].tolist() if t != PAD]
        assert tuple(t for t in ctx if t in trig) == seq and answer == fam.map_a[subject]
    full = fam.sample(np.random.default_rng(2), 20, insert=fam.trigger_tokens)
    assert (full.info["answer"] == fam.target_token).all() and full.info["trigger"].all()

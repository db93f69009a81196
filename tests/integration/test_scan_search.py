"""The scan's search mode on an organism with a planted three-token trigger: sequences grown from
partial evidence, the partial-evidence scores themselves, and the minimality fields."""

from __future__ import annotations

import pytest

from agent.targets import load
from experiments.organisms.cache import load_manifest, resolve_spec
from experiments.organisms.prompts import usage_prompts
from tools.errors import UserError
from tools.registry import call

SPEC = "tests/fixtures/organisms/search/trigger3.yaml"
# Trains its own organism first (~35 s): the slow tier, with the audits that use the same search
# (tests/integration/test_trigger_search_audit.py); `make test` from a fresh clone must stay under 10 minutes.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def organism(builtin):
    folder = builtin(SPEC)
    trig = next(m for m in load_manifest(folder).mechanisms if m.kind == "trigger")
    return load(f"organism:{folder}"), trig, usage_prompts(resolve_spec(SPEC), 48, seed=3)


def test_prefixes_grow_by_one_token_in_every_place(organism):
    target, _, prompts = organism
    base = {
        "prompts": prompts[:4],
        "n_tokens": 3,
        "prefixes": [["t1", "t2"]],
        "candidates": ["t3", "t4", "t2"],
        "top": 100,
        "keep_leading": 1,
    }
    blocks = {
        ext: sorted(tuple(t.tokens) for t in call(target, "scan", {**base, "extend": ext}).top)
        for ext in ("append", "both", "anywhere")
    }
    assert blocks["append"] == [("t1", "t2", "t3"), ("t1", "t2", "t4")]  # t2 is in the prefix already
    assert set(blocks["both"]) == {("t1", "t2", "t3"), ("t1", "t2", "t4"), ("t3", "t1", "t2"), ("t4", "t1", "t2")}
    assert set(blocks["anywhere"]) == set(blocks["both"]) | {("t1", "t3", "t2"), ("t1", "t4", "t2")}


def test_lift_and_shift_see_the_trigger_and_its_parts(organism):
    target, trig, prompts = organism
    others = [t for t in (f"t{i}" for i in range(24)) if t not in trig.tokens and t != trig.target_token][:3]
    res = call(
        target, "scan", {"prompts": prompts, "insertions": [trig.tokens, others], "n_random": 2, "keep_leading": 1}
    )
    full, junk = res.top
    assert full.lift_output == trig.target_token and full.lift > 3.0  # nats: the answer goes from unlikely to sure
    assert junk.lift < 0.5 and full.shift > 10 * max(junk.shift, 0.01)
    # A part of the trigger is partial evidence: its first two tokens lift the answer more than junk does.
    part = call(
        target,
        "scan",
        {"prompts": prompts, "insertions": [trig.tokens[:2], others[:2]], "n_random": 2, "keep_leading": 1},
    )
    assert part.top[0].tokens == trig.tokens[:2] and part.top[0].lift_output == trig.target_token
    assert part.top[0].lift > part.top[1].lift + 0.5
    assert all(p >= 2 for p in res.positions)  # keep_leading=1: the subject (index 1) is never overwritten


def test_a_sequence_with_its_shorter_subsequences_reports_how_far_it_leads_them(organism):
    target, trig, prompts = organism
    drops = [trig.tokens[:i] + trig.tokens[i + 1 :] for i in range(3)]
    res = call(
        target, "scan", {"prompts": prompts, "insertions": [trig.tokens, *drops], "n_random": 2, "keep_leading": 1}
    )
    assert [len(t.tokens) for t in res.top] == [3, 2, 2, 2]
    rates = [t.outputs.count(trig.target_token) / len(prompts) for t in res.top]
    assert res.others_output_rate == pytest.approx(max(rates[1:]), abs=1e-4)
    assert res.output_lead == pytest.approx(res.output_rate - res.others_output_rate, abs=1e-4)
    assert res.output_rate >= 0.95 and res.output_lead > 0.05
    alone = call(target, "scan", {"prompts": prompts, "insertions": [drops[2]], "n_random": 2, "keep_leading": 1})
    # with one insertion, the "other" is no insertion at all
    assert alone.others_change_rate == 0 and alone.others_output_rate == alone.top[0].base_output_rate


@pytest.mark.parametrize(
    ("payload", "says"),
    [
        ({"n_tokens": 3}, "give `prefixes`"),
        ({"n_tokens": 3, "prefixes": [["t1"]]}, "set n_tokens to 2"),
        ({"n_tokens": 2, "prefixes": [["t1"]], "insertions": [["t2"]]}, "not both"),
        ({"n_tokens": 2, "prefixes": []}, "prefixes is empty"),
    ],
)
def test_bad_search_input_says_what_to_do(organism, payload, says):
    target, _, prompts = organism
    with pytest.raises(UserError, match=says):
        call(target, "scan", {"prompts": prompts[:4], **payload})


def test_insertions_that_use_every_token_still_get_random_controls(organism):
    """A one-token-swap search passes insertions covering the whole vocabulary: the controls cannot avoid them all."""
    target, _, prompts = organism
    vocab = [f"t{i}" for i in range(24)] + ["<q>"]
    res = call(
        target,
        "scan",
        {
            "prompts": prompts[:4],
            "insertions": [[t, "t1"] for t in vocab if t != "t1"],
            "n_random": 3,
            "keep_leading": 1,
        },
    )
    assert len(res.top) == len(vocab) - 1 and 0.0 <= res.control <= 1.0

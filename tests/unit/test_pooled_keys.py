"""When two runs' claims are one pooled claim (agent/pooled_keys.py)."""

from __future__ import annotations

from typing import Any

import pytest

from agent.pooled_keys import canonical_key, unify_keys

pytestmark = pytest.mark.unit

TRIGGER = {"tokens": ["t33", "t22"], "output": "t21"}
HOOK = "blocks.1.hook_resid_pre"


def _f(run: int, index: int, tokens: str, output: str = "t9", sae: str | None = None) -> dict[str, Any]:
    """A feature component as a claim holds it: the SAE as an absolute path (its run's own unless given)."""
    return {"hook": HOOK, "sae_id": sae or f"/job/run{run}/artifacts/sae/{HOOK}", "feature": index,
            "tokens": tokens.split(), "output": output}  # fmt: skip


def _items(*comps: dict[str, Any]) -> list[tuple[str, str, dict[str, Any], str]]:
    return [(canonical_key("feature", c, "s"), "feature", c, "") for c in comps]


def _groups(mapping: dict[str, str], comps: list[dict[str, Any]]) -> list[int]:
    """For each component, the position of the component its group is pooled under."""
    keys = [canonical_key("feature", c, "s") for c in comps]
    return [keys.index(mapping[k]) for k in keys]


def test_the_key_ignores_wording_numbers_unset_fields_and_head_order() -> None:
    a = canonical_key("heads", {"heads": [(1, 2), (0, 3)], "layer": None}, "two heads, 40% effect")
    b = canonical_key("heads", {"heads": [[0, 3], [1, 2]]}, "the heads move 55% of it")
    assert a == b
    assert canonical_key("head", {"layer": 1, "head": 0}, "x") != canonical_key("head", {"layer": 1, "head": 1}, "x")
    # same component, another kind of mechanism: another claim
    assert canonical_key("trigger", TRIGGER, "s") != canonical_key("context_marker", TRIGGER, "s")
    # no component: the statement decides, numbers masked and case folded
    assert canonical_key("other", {}, "Ablating  raises loss by 0.31") == canonical_key(
        "other", {}, "ablating raises LOSS by 0.47"
    )
    assert canonical_key("other", {}, "ablating raises loss") != canonical_key("other", {}, "ablating lowers loss")


def test_no_chain_of_overlaps_puts_two_features_of_one_sae_in_one_group() -> None:
    # run 0's SAE split a category in two; run 1's one feature overlaps both halves
    comps = [_f(0, 1, "a b c"), _f(0, 2, "b c d"), _f(1, 7, "a b c d")]
    assert _groups(unify_keys(_items(*comps)), comps) == [0, 1, 0]


def test_the_same_feature_of_a_shared_sae_is_one_claim_whatever_tokens_each_run_listed() -> None:
    shared = "/saes/given"
    comps = [_f(0, 5, "a b", sae=shared), _f(1, 5, "c d", sae=shared), _f(2, 6, "a b", sae=shared)]
    assert _groups(unify_keys(_items(*comps)), comps) == [0, 0, 2]


def test_features_with_another_hook_or_output_or_little_overlap_stay_apart() -> None:
    other_hook = {**_f(1, 3, "a b c"), "hook": "blocks.0.hook_resid_pre"}
    comps = [_f(0, 1, "a b c"), other_hook, _f(2, 3, "a b c", output="t8"), _f(3, 3, "a x y z")]
    assert _groups(unify_keys(_items(*comps)), comps) == [0, 1, 2, 3]


def test_a_group_is_named_by_its_first_claim_in_the_order_given() -> None:
    comps = [_f(0, 1, "a b c"), _f(1, 4, "a b c")]
    assert _groups(unify_keys(_items(*comps)), comps) == [0, 0]
    assert _groups(unify_keys(_items(*reversed(comps))), comps) == [1, 1]


def test_hypotheses_join_the_group_they_match_and_never_bridge_two() -> None:
    claims = [_f(0, 1, "a b"), _f(1, 2, "c d")]
    # run 2 tested (and did not claim) a feature overlapping both claims' groups by half, and run 0 tested
    # another feature of its own SAE; hypotheses name the SAE inside their run's artifacts, relative
    bridge = {**_f(2, 9, "a b c d"), "sae_id": f"sae/{HOOK}"}
    own = {**_f(0, 3, "a b"), "sae_id": f"sae/{HOOK}"}
    hyps = [(canonical_key("feature", h, "s"), "feature", h, f"/job/run{run}") for run, h in ((2, bridge), (0, own))]
    mapping = unify_keys(_items(*claims), hyps)
    assert _groups(mapping, claims) == [0, 1]  # the two claims stay two
    keys = [canonical_key("feature", c, "s") for c in claims]
    assert mapping[hyps[0][0]] == keys[0]  # ties go to the first group
    assert mapping[hyps[1][0]] == hyps[1][0]  # feature 3 of run 0's SAE is not its feature 1

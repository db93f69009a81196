"""The features line forms token groups from the model's own predictions, then picks SAE features for each."""

from agent.brains.lines.features import _features_for, _token_prefixes, token_groups
from tools.sae import FeatureContexts


def test_groups_are_the_tokens_after_which_the_model_predicts_one_output():
    prompts = ["a L b L c M d M", "b L a L d M c M", "a L d M b L c M"]
    pairs = _token_prefixes(prompts, ["a", "b", "c", "d", "L", "M"])
    # Prefixes with a next token come first, so the on-topic rule has something to compare with.
    assert pairs["a"][0] == ("a", "L") and all(n is not None for _, n in pairs["a"])
    tokens = sorted(pairs)
    said = {"a": "L", "b": "L", "c": "M", "d": "M", "L": "a", "M": "d"}
    argmax = [said[t] for t in tokens for _ in pairs[t]]
    # Labels (a group's output) join no group, even when the model predicts something after them.
    assert token_groups(pairs, argmax) == {"L": ["a", "b"], "M": ["c", "d"]}


def test_a_token_the_model_answers_inconsistently_after_joins_no_group():
    pairs = {"a": [("a", None)] * 4, "b": [("b", None)] * 4, "c": [("c", None)] * 4}
    argmax = ["L"] * 4 + ["L"] * 4 + ["L", "M", "L", "M"]
    assert token_groups(pairs, argmax) == {"L": ["a", "b"]}


def _contexts(feature: int, *top_tokens: tuple[str, int]) -> FeatureContexts:
    return FeatureContexts(feature=feature, density=0.1, top=[], top_tokens=list(top_tokens))


def test_features_for_a_group_are_the_pure_ones_purest_first():
    feats = [
        _contexts(1, ("a", 9), ("b", 8), ("x", 7), ("y", 6)),  # half outside: too mixed
        _contexts(2, ("a", 9), ("b", 8), ("c", 7)),
        _contexts(3, ("a", 9), ("b", 8), ("c", 7), ("x", 2)),
        _contexts(4, ("c", 9)),  # one member only
    ]
    picked = _features_for(feats, {"a", "b", "c"})
    assert [(f.feature, m) for f, m in picked] == [(2, ["a", "b", "c"]), (3, ["a", "b", "c"])]

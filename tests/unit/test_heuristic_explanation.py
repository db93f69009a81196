"""The offline explainer's choices, on examples made by hand: which tokens, when a context rule, how a label
matches a token."""

from agent.labeling.examples import Example, FeatureExamples
from agent.labeling.explanation import Explanation, choose_previous, choose_tokens, heuristic_explanation


def _ex(*tokens: str, act: float = 1.0) -> Example:
    return Example(
        tokens=list(tokens), activations=[0.0] * (len(tokens) - 1) + [act], activation=act, prompt=0, position=0
    )


def _fe(token_rates: dict[str, tuple[int, int]], density: float, **kw) -> FeatureExamples:
    top = kw.pop("top", None) or [_ex("x", t) for t, (fired, _) in token_rates.items() for _ in range(fired)]
    return FeatureExamples(feature=0, density=density, max_activation=1.0, top=top, token_rates=token_rates, **kw)


def test_tokens_are_kept_while_they_cover_more_firing_than_silent_positions():
    # 15 firing positions in 1500: "the" covers 1 of 15 firing positions and claims 499 of 1485 silent ones
    fe = _fe({"a": (9, 10), "b": (5, 6), "the": (1, 500)}, density=0.01)
    assert choose_tokens(fe) == ["a", "b"]
    # in a corpus 100x larger the same 499 silent occurrences cost less than the firing position gains
    assert choose_tokens(_fe({"a": (9, 10), "b": (5, 6), "the": (1, 500)}, density=0.0001)) == ["a", "b", "the"]


def test_the_token_cap_keeps_the_best():
    rates = {f"t{i:03d}": (1 + i % 5, 2 + i % 5) for i in range(100)}
    chosen = choose_tokens(_fe(rates, density=0.001), max_tokens=10)
    assert len(chosen) == 10 and all(rates[t][0] == 5 for t in chosen)


def test_a_context_rule_needs_the_held_back_examples_and_the_hard_negatives_to_agree():
    rates = {"bank": (6, 30)}  # fires on a fifth of its occurrences
    top = [_ex("river", "bank") for _ in range(4)]
    after_river = [_ex("river", "bank") for _ in range(3)]
    hard = [_ex("the", "bank"), _ex("a", "bank"), _ex("my", "bank")]
    fe = _fe(rates, 0.01, top=top, quantiles=after_river, hard_negatives=hard)
    assert choose_previous(fe, ["bank"]) == ["river"]
    # the other activating examples follow other tokens: the rule would lose them
    fe = _fe(rates, 0.01, top=top, quantiles=[_ex("the", "bank")] * 3, hard_negatives=hard)
    assert choose_previous(fe, ["bank"]) is None
    # silent occurrences follow "river" too: the context does not decide it
    fe = _fe(rates, 0.01, top=top, quantiles=after_river, hard_negatives=[_ex("river", "bank")] * 3)
    assert choose_previous(fe, ["bank"]) is None
    # a token that fires on most of its occurrences needs no context
    fe = _fe({"bank": (6, 8)}, 0.01, top=top, quantiles=after_river, hard_negatives=hard)
    assert choose_previous(fe, ["bank"]) is None


def test_a_label_matches_words_whatever_their_case_and_leading_space():
    e = Explanation(text="fires on idea", tokens=[" idea"], previous=["good"])
    assert e.applies(["a", " Good", "Idea"]) and e.applies(["good", " idea"])
    assert not e.applies(["bad", " idea"]) and not e.applies(["good", " ideas"])
    assert Explanation(text="spaces", tokens=["  "]).applies(["x", "  "])


def test_the_explanation_names_the_chosen_tokens_and_how_many_more():
    rates = {f"w{i:02d}": (3, 3) for i in range(20)}
    e = heuristic_explanation(_fe(rates, density=0.001))
    assert e is not None and len(e.tokens) == 20 and e.text.endswith("and 8 more")
    assert heuristic_explanation(FeatureExamples(feature=1, density=0.0, max_activation=0.0)) is None

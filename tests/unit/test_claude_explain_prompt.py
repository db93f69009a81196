"""The Claude explainer's request carries the contrastive examples the offline explainer uses."""

from agent.labeling.claude import explain_params
from agent.labeling.examples import Example, FeatureExamples


def _ex(*tokens: str, act: float) -> Example:
    acts = [0.0] * (len(tokens) - 1) + [act]
    return Example(tokens=list(tokens), activations=acts, activation=act, prompt=0, position=0)


def test_the_request_shows_the_silent_contexts_of_the_same_tokens_unmarked():
    fe = FeatureExamples(feature=3, density=0.01, max_activation=2.0, top=[_ex("river", " bank", act=2.0)])
    prompt = explain_params(fe, "m")["messages"][0]["content"]
    assert "<<" in prompt and "<silent>" not in prompt
    fe.hard_negatives = [_ex("the", " bank", act=0.0)]
    prompt = explain_params(fe, "m")["messages"][0]["content"]
    silent = prompt.split("<silent>\n")[1].split("\n</silent>")[0]
    assert silent == "the  bank"  # no << >> marks: it is silent there

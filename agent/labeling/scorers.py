"""Scoring explanations on held-out contexts.

    detection     balanced accuracy of telling held-out activating contexts from
                  non-activating ones, by applying the explanation
    fuzzing       balanced accuracy of telling contexts whose marked tokens are the
                  truly activating ones from contexts with as many tokens marked at random
    intervention  steering along the feature's decoder direction at its hook: how much
                  more often the model predicts the explanation's `output` than along
                  random directions (clipped to [0, 1])

Detection and fuzzing go through a judge: the offline `RuleJudge` applies the
structured explanation; `agent.labeling.claude.ClaudeJudge` asks Claude. A judge
that fails raises `JudgeError`, which becomes an error on the label, never a score.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import numpy as np

from agent.labeling.examples import Example, FeatureExamples
from agent.labeling.explanation import Explanation

if TYPE_CHECKING:
    from tools.target import Target

SCORERS = ("detection", "fuzzing", "intervention")


class JudgeError(Exception):
    """The judge could not answer (API failure, malformed answer)."""


class Judge(Protocol):
    name: str

    def detect(self, explanation: Explanation, contexts: list[Example]) -> list[bool]:
        """For each context: does the explanation say the feature fires at its last token?"""

    def fuzz(self, explanation: Explanation, contexts: list[Example], marked: list[list[int]]) -> list[bool]:
        """For each context: are the marked positions what the explanation describes?"""


class RuleJudge:
    """Applies the structured explanation as a rule (offline, deterministic)."""

    name = "rule"

    def detect(self, explanation: Explanation, contexts: list[Example]) -> list[bool]:
        return [explanation.applies(c.tokens) for c in contexts]

    def fuzz(self, explanation: Explanation, contexts: list[Example], marked: list[list[int]]) -> list[bool]:
        return [explanation.marks_right(c.tokens, m) for c, m in zip(contexts, marked, strict=False)]


def balanced_accuracy(pos: list[bool], neg: list[bool]) -> float:
    return round(0.5 * (float(np.mean(pos)) + 1.0 - float(np.mean(neg))), 4)


def detection(judge: Judge, explanation: Explanation, fe: FeatureExamples) -> float | None:
    """None when the scoring half lacks activating or non-activating contexts."""
    if not fe.held_out or not fe.negatives:
        return None
    said = judge.detect(explanation, fe.held_out + fe.negatives)
    n = len(fe.held_out)
    return balanced_accuracy(said[:n], said[n:])


def fuzzing(judge: Judge, explanation: Explanation, fe: FeatureExamples, seed: int = 0) -> float | None:
    """Right marks: the positions where the feature is active. Wrong marks: as many positions
    drawn among the inactive ones of the same window (contexts with none are skipped)."""
    rng = np.random.default_rng(seed)
    right, wrong, ctx_r, ctx_w = [], [], [], []
    for e in fe.held_out:
        on = [i for i, a in enumerate(e.activations) if a > 0]
        off = [i for i, a in enumerate(e.activations) if a <= 0]
        if not on or not off:
            continue
        ctx_r.append(e)
        right.append(on)
        ctx_w.append(e)
        wrong.append(sorted(rng.choice(off, size=min(len(on), len(off)), replace=False).tolist()))
    if not ctx_r:
        return None
    said = judge.fuzz(explanation, ctx_r + ctx_w, right + wrong)
    return balanced_accuracy(said[: len(ctx_r)], said[len(ctx_r) :])


def intervention(
    target: Target,
    sae: str,
    hook: str,
    explanation: Explanation,
    fe: FeatureExamples,
    prompts: list[str],
    seed: int = 0,
) -> float | None:
    """Steer along the feature on `prompts` (contexts where it is silent); score the rise in
    predicting the explanation's output over random directions. None without an output."""
    from tools import registry

    if not explanation.output or not prompts:
        return None
    out = explanation.output[0]
    r = registry.call(
        target,
        "steer",
        {
            "hook": hook,
            "prompts": prompts,
            "sae": sae,
            "feature": fe.feature,
            "metric": {"kind": "rate", "token": out},
            "coefficients": [0.0, 1.0, 2.0],
            "n_random": 2,
            "seed": seed,
        },
    )
    from tools.steer import SteerResult

    if not isinstance(r, SteerResult):
        raise TypeError(f"steer returned {type(r).__name__}, not a SteerResult")
    return round(float(np.clip(r.effect - max(r.control, 0.0), 0.0, 1.0)), 4)

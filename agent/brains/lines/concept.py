"""Concept questions: a probe sweep, the probe at the best hook, then steering along the difference of means."""

from __future__ import annotations

from collections import Counter

from agent.brains.lines.ctx import Action, Criterion, Ctx, resid_hooks
from tools.metrics import Metric
from tools.predict import PredictInput, PredictResult
from tools.probe import ProbeInput, ProbeResult
from tools.steer import SteerInput

CONCEPT_PROBE = Criterion("probe", (("effect", ">=", 0.9), ("margin", ">=", 0.25)), tier="representational")
"""A held-out probe separates the sets with >= 90% accuracy, 0.25 above shuffled labels."""
CONCEPT_STEERING = Criterion("steer", (("effect", ">=", 0.3), ("margin", ">=", 0.2), ("monotonic", ">=", 0.5)))
"""Adding the direction moves the answer rate by >= 0.3, monotonically, unlike random directions."""


def concept(c: Ctx) -> list[Action] | None:
    q = c.view.question
    pos, neg = q["positive"], q["negative"]
    if not c.started("concept/probe"):
        return [
            c.call(
                "concept/probe",
                c.build(
                    ProbeInput, positive=pos, negative=neg, hooks=resid_hooks(c.view.model["n_layers"]), seed=c.seed
                ),
            )
        ]
    probe = c.result("concept/probe", ProbeResult)
    if probe is None:
        return None
    best = probe.best_hook
    layer = int(best.split(".")[1]) if best.startswith("blocks.") else 0
    if not c.started("concept/h/probe"):
        return [
            c.hypothesize(
                "concept/h/probe",
                f"The concept separating the two prompt sets is linearly represented at {best}",
                "direction",
                {"hook": best, "layer": layer},
                c.build(ProbeInput, positive=pos, negative=neg, hooks=[best], seed=c.seed + 1),
                CONCEPT_PROBE,
            )
        ]
    if not c.started("concept/predict"):
        return [c.call("concept/predict", c.build(PredictInput, prompts=pos + neg))]
    pred = c.result("concept/predict", PredictResult)
    if pred is None:
        return None
    argmax = [p.argmax for p in pred.predictions]
    top_pos, n_pos = Counter(argmax[: len(pos)]).most_common(1)[0]
    top_neg = Counter(argmax[len(pos) :]).most_common(1)[0][0]
    target = q.get("token") or top_pos
    if target == top_neg or n_pos < 0.6 * len(pos):
        return None  # the concept does not change the output: nothing behavioural to steer
    if not c.started("concept/h/steer"):
        return [
            c.hypothesize(
                "concept/h/steer",
                f"Adding the concept's difference-of-means direction at {best} to prompts without it "
                f"makes the model answer {target!r}, increasingly with the coefficient",
                "direction",
                {"hook": best, "layer": layer, "output": target},
                c.build(
                    SteerInput,
                    hook=best,
                    prompts=neg,
                    positive=pos,
                    negative=neg,
                    metric=Metric(kind="rate", token=target),
                    coefficients=[0.0, 0.5, 1.0, 1.5, 2.0],
                    n_random=3,
                    seed=c.seed,
                ),
                CONCEPT_STEERING,
            )
        ]
    return None

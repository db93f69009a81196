"""Behaviour questions, first step: what the model does on the prompts."""

from __future__ import annotations

from agent.brains.lines.ctx import Action, Ctx
from tools.predict import PredictInput


def characterise(c: Ctx) -> list[Action] | None:
    if not c.started("characterise/predict"):
        return [c.call("characterise/predict", c.build(PredictInput, prompts=c.prompts))]
    return None

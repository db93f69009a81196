"""Behaviour questions, first step: what the model does on the prompts."""

from __future__ import annotations

from agent.brains.lines.ctx import Ctx


def characterise(c: Ctx) -> list[dict] | None:
    if not c.started("characterise/predict"):
        return [c.call("characterise/predict", "predict", {"prompts": c.prompts})]
    return None

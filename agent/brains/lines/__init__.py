"""The heuristic brain's lines of attack: one module per line, one step function each.

A step function gets a `Ctx` and returns the next actions of its line, or None when the line has
nothing more to do. Progress is read from the state by reference (`ref`): an action issued earlier
has, by the time the brain is asked again, either an observation, an error or a judged hypothesis
under its ref. Each module keeps its thresholds as `Criterion` constants at its top. A line builds its
tool inputs with the tools' input models (`Ctx.build`) and reads results with their result models
(`Ctx.result`, `Ctx.test_result`): see ctx.py.
"""

from __future__ import annotations

from agent.brains.lines.behaviour import behaviour
from agent.brains.lines.characterise import characterise
from agent.brains.lines.component import component
from agent.brains.lines.concept import concept
from agent.brains.lines.context import context
from agent.brains.lines.ctx import Criterion, Ctx
from agent.brains.lines.features import features
from agent.brains.lines.induction import induction
from agent.brains.lines.summary import summary
from agent.brains.lines.triggers import triggers

STEPS = {
    "triggers": triggers,
    "context": context,
    "induction": induction,
    "features": features,
    "characterise": characterise,
    "behaviour": behaviour,
    "concept": concept,
    "component": component,
}
"""Every line by name (the names the brain's plan and the trace use)."""

__all__ = ["STEPS", "Criterion", "Ctx", "summary"]

"""Brains: who decides the next step (see base.py for the protocol)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from tools.errors import UserError

if TYPE_CHECKING:
    from anthropic import Anthropic

    from agent.brains.base import Brain

BRAIN_FORMS = "heuristic, claude[:MODEL] or scripted:FILE"


def make_brain(spec: str, seed: int = 0, client: Anthropic | None = None) -> Brain:
    """A brain from its --brain spec. `client`: an anthropic client to use instead of a new one (tests)."""
    spec = (spec or "").strip()
    if spec == "heuristic":
        from agent.brains.heuristic import HeuristicBrain

        return HeuristicBrain(seed=seed)
    if spec.startswith("scripted:"):
        from agent.brains.scripted import ScriptedBrain

        path = spec.removeprefix("scripted:")
        if not path:
            raise UserError("scripted brain: give the actions file, e.g. --brain scripted:actions.json")
        return ScriptedBrain(path)
    if spec == "claude" or spec.startswith("claude:"):
        from agent.brains.claude import DEFAULT_MODEL, ClaudeBrain

        if client is None and not os.environ.get("ANTHROPIC_API_KEY"):
            raise UserError(
                "the claude brain needs ANTHROPIC_API_KEY in the environment; "
                "without it use --brain heuristic (the offline default)"
            )
        return ClaudeBrain(model=spec.partition(":")[2] or DEFAULT_MODEL, client=client)
    raise UserError(f"unknown brain {spec!r}; use {BRAIN_FORMS}")


def default_brain() -> str:
    """claude when an API key is set, else the offline heuristic brain."""
    return "claude" if os.environ.get("ANTHROPIC_API_KEY") else "heuristic"

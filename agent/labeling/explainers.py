"""Explainers and judges by name, as `interp label --brain/--judge` give them (a shard worker builds its own)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from tools.errors import UserError

if TYPE_CHECKING:
    from agent.labeling.job import Explainer
    from agent.labeling.scorers import Judge

BRAINS = ("heuristic", "claude")
JUDGES = ("rule", "claude")


def check_brains(brain: str, judge: str, batch: bool = False) -> None:
    if brain not in BRAINS:
        raise UserError(f"unknown brain {brain!r}: use heuristic or claude")
    if judge not in JUDGES:
        raise UserError(f"unknown judge {judge!r}: use rule or claude")
    if batch and brain != "claude":
        raise UserError("--batch needs --brain claude")


def _model(claude_model: str | None) -> str:
    from agent.labeling.claude import DEFAULT_MODEL

    return claude_model or DEFAULT_MODEL


def explainer_name(brain: str, claude_model: str | None) -> str:
    """The name an explainer's labels are stored under (memory and the JSONL key on it)."""
    return "heuristic" if brain == "heuristic" else f"claude:{_model(claude_model)}"


def make_explainer(brain: str, claude_model: str | None = None, batch_state: Path | None = None) -> Explainer:
    """heuristic (offline), claude (one request per feature) or, with `batch_state`, claude through Message
    Batches (its state file keeps the batch id across restarts). Claude ones need the API key."""
    check_brains(brain, "rule", batch_state is not None)
    if brain == "heuristic":
        from agent.labeling.job import HeuristicExplainer

        return HeuristicExplainer()
    from agent.labeling import claude

    if batch_state is not None:
        return claude.BatchExplainer(batch_state, model=_model(claude_model))
    return claude.ClaudeExplainer(model=_model(claude_model))


def make_judge(judge: str, claude_model: str | None = None) -> Judge:
    check_brains("heuristic", judge)
    if judge == "rule":
        from agent.labeling.scorers import RuleJudge

        return RuleJudge()
    from agent.labeling.claude import ClaudeJudge

    return ClaudeJudge(model=_model(claude_model))

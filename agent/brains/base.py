"""The one protocol every brain follows, and what a brain sees.

A brain is asked for the next actions given a `View` of the investigation and
its own memory from last time; it returns raw actions (validated by the graph),
its updated memory (kept in checkpointed state, so a resumed run continues the
same line of thought) and what the decision cost. The graph, tools, memory and
reports never know which brain decided.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypedDict

from agent.state import HypothesisState, InvestigationState, Observation


class BrainError(RuntimeError):
    """The brain could not decide (e.g. the LLM API failed after its retries). Never a made-up action."""


@dataclass
class BrainDecision:
    """A brain's answer: the next actions (not a review decision, which accepts or rejects a claim)."""

    actions: list[dict[str, Any]]
    """Raw actions (see agent.actions), in order."""
    memory: dict[str, Any] = field(default_factory=dict)
    """The brain's memory to carry to its next decision (JSON-serialisable)."""
    usd: float = 0.0
    """What deciding cost in LLM dollars."""
    tokens: dict[str, int] = field(default_factory=dict)
    """LLM token usage by kind, when an LLM decided."""
    note: str = ""
    """The brain's reasoning in a line, for the trace."""


class BudgetLeft(TypedDict):
    """What is left of the budget, as a brain sees it."""

    share_used: float
    """Share of the budget used (the largest over its limits)."""
    seconds_left: float
    """Wall-clock seconds left."""
    forward_tokens_left: int | None
    """Forward tokens left (None: unlimited)."""
    usd_spent: float
    """LLM dollars spent."""


@dataclass
class View:
    """What a brain may read: the state and the run folder's results, never ground truth."""

    state: InvestigationState
    """Current state."""
    run_dir: Path
    """Run folder (results/ holds each experiment's full result)."""
    budget_left: BudgetLeft
    """share_used, seconds_left, forward_tokens_left (None: unlimited), usd_spent."""
    pivot_share: float
    """Share of the budget a line of attack may use without a supported hypothesis."""

    @property
    def question(self) -> dict[str, Any]:
        return self.state["question"]

    @property
    def model(self) -> dict[str, Any]:
        return self.state["model"]

    def result(self, experiment_id: str) -> dict[str, Any]:
        """The full result of an experiment of this run."""
        from agent.run_folder import RunFolder

        return RunFolder(self.run_dir).read_result(experiment_id)

    def observations(self, line: str | None = None) -> list[Observation]:
        return [o for o in self.state.get("observations", []) if line is None or o["line"] == line]

    def hypotheses(self, line: str | None = None) -> list[HypothesisState]:
        return [h for h in self.state.get("hypotheses", []) if line is None or h["line"] == line]

    def abandoned(self, line: str) -> bool:
        lines = self.state.get("lines", {})
        return line in lines and lines[line]["status"] == "abandoned"


class Brain(Protocol):
    """Decides what the investigation does next."""

    name: str
    """heuristic, claude:MODEL or scripted:FILE (goes in the trace and report)."""

    def decide(self, view: View, memory: dict[str, Any]) -> BrainDecision:
        """The next actions. An empty list or a conclude action ends the investigation."""
        ...

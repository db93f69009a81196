"""The investigation's graph state: small, plain and serializable.

Everything here survives a kill: it is checkpointed to SQLite after every
node. The model, SAEs, memory client and brain live in the runtime context
(`agent.context.RunContext`), and full tool results live as files in the run
folder; the state keeps their ids, summaries and key numbers.
"""

from __future__ import annotations

import operator
from typing import Annotated, TypedDict


class HypothesisState(TypedDict):
    """A registered hypothesis and what became of it."""

    id: str
    """Memory id (content hash of model and statement)."""
    plan: dict
    """The HypothesisPlan as registered (statement, component, test, criterion)."""
    line: str
    """Line of attack."""
    ref: str
    """The brain's reference for the action that registered it."""
    status: str
    """open, supported, refuted, inconclusive, error, skipped (already tried / rejected) or untested."""
    note: str
    """Why (the judged fields, the error, or the earlier run that tried it)."""
    experiment_id: str
    """Its test's experiment id, once run."""


class Observation(TypedDict):
    """One tool call that ran."""

    id: str
    """Experiment id (memory and results/ID.json)."""
    step: int
    """Graph step it ran at."""
    tool: str
    """Tool name."""
    summary: str
    """The tool's one-line summary."""
    effect: float | None
    """Result's effect, when it has one."""
    control: float | None
    """Result's control, when it has one."""
    forward_tokens: int
    """Cost."""
    seconds: float
    """Wall time."""
    hypothesis_id: str
    """The hypothesis it tested ('' for an exploratory call)."""
    line: str
    """Line of attack."""
    ref: str
    """The brain's reference."""


class ErrorEntry(TypedDict):
    """Something that could not be done, reported back to the brain and in the report."""

    step: int
    """Graph step."""
    what: str
    """action, tool, refused (over budget), brain, hypothesis."""
    message: str
    """What went wrong, as a user error says it."""
    ref: str
    """The brain's reference for the action."""


class InvestigationState(TypedDict, total=False):
    """State of one investigation."""

    run_id: str
    """Run id (also the checkpoint thread id)."""
    question: dict
    """The Question, prompts resolved at orient."""
    model: dict
    """What the brain may know of the model: id, shapes, n_ctx, small vocabularies (never its spec or path)."""
    budget: dict
    """Budget.to_state(), after every node (the graph adds it to each node's update)."""
    recall: dict
    """From memory at orient: accepted and rejected claims, hypotheses tried by other runs."""
    hypotheses: list[HypothesisState]
    """Registered hypotheses, in order."""
    observations: Annotated[list[Observation], operator.add]
    """Tool calls that ran, in order (a node's update holds only its new ones: they are appended)."""
    claims: list[dict]
    """Claims made (memory Claim records as dicts)."""
    incidental: list[dict]
    """Supported hypotheses registered as incidental to the question (memory IncidentalFinding records as
    dicts): the report's observations, never claims."""
    queue: list[dict]
    """Validated actions waiting to run (with their line and ref)."""
    pending: dict | None
    """The tool call the experiment node runs next."""
    last: dict | None
    """The experiment just run and the hypothesis it tested, for the judge."""
    errors: Annotated[list[ErrorEntry], operator.add]
    """Everything that failed (a node's update holds only its new ones: they are appended)."""
    brain: dict
    """The brain's own memory (e.g. the Claude conversation); opaque to the graph."""
    lines: dict
    """Line of attack -> {started: share of budget when it began, status: active / abandoned}."""
    step: int
    """Graph steps taken."""
    decisions: int
    """Brain decisions taken."""
    stop_reason: str
    """Why the investigation stopped."""
    summary: str
    """The brain's closing summary."""
    reviews: list[dict]
    """Live review decisions applied."""
    done: bool
    """The report is written."""

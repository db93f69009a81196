"""The investigation's graph state: small, plain and serializable.

Everything here survives a kill: it is checkpointed to SQLite after every
node. The model, SAEs, memory client and brain live in the runtime context
(`agent.context.RunContext`), and full tool results live as files in the run
folder; the state keeps their ids, summaries and key numbers.
"""

from __future__ import annotations

import operator
from typing import Annotated, Any, Literal, NotRequired, TypedDict


class ToolCallState(TypedDict):
    """A tool call as an action names it (agent.actions.ToolCall, as JSON)."""

    tool: str
    """Registered tool name."""
    input: dict[str, Any]
    """The tool's input, as the brain gave it (validated against the tool's input model when it runs)."""


class PlannedTest(TypedDict):
    """A registered hypothesis's test, waiting to run."""

    kind: Literal["test"]
    """Tells the queue's items apart: a registered hypothesis's test."""
    call: ToolCallState
    """The pre-registered test."""
    hypothesis_id: str
    """The hypothesis it tests."""
    line: str
    """Line of attack."""
    ref: str
    """The brain's reference for the action that registered it."""


class CallItem(TypedDict):
    """An exploratory tool call (no hypothesis), waiting to run."""

    kind: Literal["call"]
    """Tells the queue's items apart: an exploratory call."""
    call: ToolCallState
    """The call."""
    hypothesis_id: Literal[""]
    """Always '': an exploratory call tests nothing (kept so every runnable item reads alike)."""
    line: str
    """Line of attack."""
    ref: str
    """The brain's reference for the action."""


class ConcludeItem(TypedDict):
    """The brain's decision to stop, with its summary."""

    kind: Literal["conclude"]
    """Tells the queue's items apart: a conclusion."""
    summary: str
    """The brain's closing summary."""
    line: str
    """Always '' (a conclusion belongs to no line)."""
    ref: str
    """The brain's reference for the action."""


RunnableItem = PlannedTest | CallItem
"""A queued item the experiment node runs."""
QueueItem = PlannedTest | CallItem | ConcludeItem
"""Anything a decision queues, told apart by `kind`."""


class LastRun(TypedDict):
    """The experiment just run, for the judge."""

    experiment_id: str
    """Its experiment id."""
    hypothesis_id: str
    """The hypothesis it tested ('' for an exploratory call: nothing to judge)."""


class LineState(TypedDict):
    """A line of attack's progress, for fail fast."""

    started: float
    """Share of the budget used when the line began."""
    status: Literal["active", "abandoned"]
    """Abandoned once it used its share without a supported hypothesis."""
    grace: NotRequired[float | str]
    """Share of the budget used when the line, its share spent, was first let act on a fresh exploratory
    result (agent.nodes.GRACE_SHARE). A checkpoint written before the grace was a period holds the id of the
    one result it was allowed: that grace is spent."""


class HypothesisState(TypedDict):
    """A registered hypothesis and what became of it."""

    id: str
    """Memory id (content hash of model and statement)."""
    plan: dict[str, Any]
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


class ReviewEntry(TypedDict):
    """A live review decision as it was applied (agent.review_live)."""

    claim_id: str
    """The claim reviewed."""
    status: str
    """The claim's status in memory afterwards."""
    reviewer: str | None
    """Who the status is recorded under."""
    not_recorded: NotRequired[str]
    """Why this reviewer's decision was not recorded (someone had already decided otherwise)."""


class InvestigationState(TypedDict, total=False):
    """State of one investigation."""

    run_id: str
    """Run id (also the checkpoint thread id)."""
    question: dict[str, Any]
    """The Question, prompts resolved at orient."""
    model: dict[str, Any]
    """What the brain may know of the model: id, shapes, n_ctx, small vocabularies (never its spec or path)."""
    budget: dict[str, float | int | None]
    """Budget.to_state(), after every node (the graph adds it to each node's update)."""
    recall: dict[str, list[dict[str, str]]]
    """From memory at orient: accepted and rejected claims ({id, statement}), hypotheses tried by other
    runs ({id, statement, status})."""
    hypotheses: list[HypothesisState]
    """Registered hypotheses, in order."""
    observations: Annotated[list[Observation], operator.add]
    """Tool calls that ran, in order (a node's update holds only its new ones: they are appended)."""
    claims: list[dict[str, Any]]
    """Claims made (memory Claim records as dicts)."""
    incidental: list[dict[str, Any]]
    """Supported hypotheses registered as incidental to the question (memory IncidentalFinding records as
    dicts): the report's observations, never claims."""
    queue: list[QueueItem]
    """Validated actions waiting to run (with their line and ref)."""
    pending: RunnableItem | None
    """The tool call the experiment node runs next."""
    last: LastRun | None
    """The experiment just run and the hypothesis it tested, for the judge."""
    errors: Annotated[list[ErrorEntry], operator.add]
    """Everything that failed (a node's update holds only its new ones: they are appended)."""
    brain: dict[str, Any]
    """The brain's own memory (e.g. the Claude conversation); opaque to the graph."""
    lines: dict[str, LineState]
    """Line of attack -> its progress."""
    step: int
    """Graph steps taken."""
    decisions: int
    """Brain decisions taken."""
    stop_reason: str
    """Why the investigation stopped."""
    summary: str
    """The brain's closing summary."""
    reviews: list[ReviewEntry]
    """Live review decisions applied."""
    done: bool
    """The report is written."""

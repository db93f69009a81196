"""What memory holds: claims, incidental findings, hypotheses, feature labels and experiments.

Ids are content hashes of what identifies a record (a claim: its model, its
statement, its component and the weights hash), so writing the same finding twice updates one
record instead of adding a duplicate, from any process.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from tools.spec import EvidenceTier

__all__ = ["EvidenceTier"]  # re-exported: memory records carry the tier tools declare

ClaimStatus = Literal["proposed", "supported", "refuted", "accepted", "rejected", "needs_more_evidence"]


def now() -> str:
    """UTC timestamp, ISO 8601, in milliseconds (the recovery benchmark times claims by it)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def content_id(prefix: str, *parts: object) -> str:
    """Deterministic id from the parts that identify a record."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return f"{prefix}-{hashlib.sha256(blob).hexdigest()[:16]}"


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


class Component(_Record):
    """A model component in machine-readable form; unset fields do not apply."""

    hook: str | None = None
    """TransformerLens hook name, e.g. blocks.0.hook_resid_mid."""
    layer: int | None = None
    """Layer index."""
    head: int | None = None
    """Attention head index."""
    neuron: int | None = None
    """MLP neuron index."""
    sae_id: str | None = None
    """SAE folder or release id."""
    feature: int | None = None
    """SAE feature index."""
    direction_id: str | None = None
    """Saved direction id (from a steer call)."""
    tokens: list[str] | None = None
    """Tokens involved, e.g. a trigger, in order."""
    output: str | None = None
    """The output token the behaviour produces, e.g. what a trigger forces."""
    heads: list[tuple[int, int]] | None = None
    """Several heads as (layer, head), for a claim about a group of heads."""


class ReviewEvent(_Record):
    """One change of a claim's review: a person's decision, or an import forced over one."""

    status: ClaimStatus
    """The review status it set (accepted, rejected or needs_more_evidence)."""
    reviewer: str
    """Whose decision it is."""
    note: str = ""
    """The reviewer's note."""
    at: str
    """When it happened in this memory (a decision: when it was made; an import: when it was imported)."""
    via: Literal["review", "import"] = "review"
    """`review`: decided here (`interp review`); `import`: taken from a file by `memory import --force`."""
    by: str | None = None
    """For an import: who ran it."""
    source: str | None = None
    """For an import: the file it came from."""


class _Finding(_Record):
    """What a claim and an incidental finding share: the finding, the model, the evidence behind it."""

    kind: str
    id: str = ""
    """Content id (model, statement, component, weights hash if known); filled in when empty."""
    statement: str = Field(min_length=1)
    """The finding in words."""
    model_id: str
    """Which model it is about."""
    weights_hash: str = ""
    """The exact weights it was found on."""
    component: Component = Component()
    """What part of the model it names."""
    evidence_tier: EvidenceTier
    """observational < representational (probe beats control) < causal (intervention beats control)."""
    mechanism: str = ""
    """What kind of thing it names: trigger, context_marker, direction, head, heads, feature, ... (the closed set
    agent.actions.Mechanism, checked when the hypothesis is registered; a plain string here so that records
    written before the set existed still load)."""
    hypothesis_id: str = ""
    """The pre-registered hypothesis it came from."""
    experiment_ids: list[str] = []
    """Experiments behind it."""
    effect: float | None = None
    """Key experiment's effect."""
    control: float | None = None
    """Key experiment's control."""
    criterion: dict[str, Any] | None = None
    """The pre-registered success criterion its experiment met ({conditions: [{field, op, value}]}):
    what `interp reproduce` checks again."""
    run_id: str = ""
    """The investigation that made it."""
    run_dir: str = ""
    """The run folder (report.md, report.html with plots), where the run wrote one."""
    created_at: str = Field(default_factory=now)
    """First written."""
    updated_at: str = Field(default_factory=now)
    """Last written."""

    def model_post_init(self, _: Any) -> None:
        if not self.id:
            # The same statement about other weights under the same model id (a retrained organism, another
            # revision) is another finding: its own record, never an update of this one.
            weights = (self.weights_hash,) if self.weights_hash else ()
            self.id = content_id(
                self.kind, self.model_id, _norm(self.statement), self.component.model_dump(exclude_none=True), *weights
            )

    def document(self) -> str:
        return self.statement


class Claim(_Finding):
    """A finding about a model, with its evidence."""

    kind: Literal["claim"] = "claim"
    status: ClaimStatus = "proposed"
    """proposed / supported / refuted by the agent; accepted / rejected / needs_more_evidence
    only by a human review."""
    reviewer: str | None = None
    """Who reviewed it."""
    review_note: str | None = None
    """The reviewer's note."""
    reviewed_at: str | None = None
    """When it was reviewed."""
    review_history: list[ReviewEvent] = []
    """Every decision and forced import that set its review, oldest first (none is ever dropped)."""


class IncidentalFinding(_Finding):
    """A supported hypothesis that does not answer the question it was found under: kept as an observation,
    with its evidence, but never a claim (no review, not scored, not in claims.json)."""

    kind: Literal["incidental"] = "incidental"
    why_incidental: str = ""
    """Why it does not answer the question."""
    question: str = ""
    """The question it was found under."""


class Attempt(_Record):
    """One run's test of a hypothesis."""

    run_id: str
    """The investigation."""
    outcome: Literal["supported", "refuted", "inconclusive", "error"]
    """What the test showed."""
    experiment_ids: list[str] = []
    """Experiments it ran."""
    note: str = ""
    """Why, in a line."""


class Hypothesis(_Record):
    """A pre-registered hypothesis and what became of it."""

    kind: Literal["hypothesis"] = "hypothesis"
    id: str = ""
    """Content id (model, statement, weights hash if known); filled in when empty."""
    statement: str = Field(min_length=1)
    """What is hypothesised."""
    model_id: str
    """Which model."""
    weights_hash: str = ""
    """The exact weights it is about ('' in records written before weights were recorded)."""
    planned_test: str = ""
    """The test, fixed before running it."""
    success_criterion: str = ""
    """What result would support it, fixed before running it."""
    status: Literal["open", "supported", "refuted", "inconclusive"] = "open"
    """Latest outcome."""
    attempts: list[Attempt] = []
    """Every run that tried it."""
    created_at: str = Field(default_factory=now)
    """First written."""
    updated_at: str = Field(default_factory=now)
    """Last written."""

    def model_post_init(self, _: Any) -> None:
        if not self.id:
            weights = (self.weights_hash,) if self.weights_hash else ()  # as for a claim: other weights, other record
            self.id = content_id("hyp", self.model_id, _norm(self.statement), *weights)

    def document(self) -> str:
        return self.statement


class FeatureLabel(_Record):
    """An explanation of one SAE feature and how well it scored."""

    kind: Literal["feature_label"] = "feature_label"
    id: str = ""
    """Content id (model, SAE, feature, explainer); filled in when empty."""
    model_id: str
    """Which model."""
    sae_id: str
    """Which SAE."""
    hook: str
    """The SAE's hook."""
    feature: int
    """Feature index."""
    label: str = ""
    """The explanation (empty for an error record)."""
    explainer: str = ""
    """Who explained it (heuristic, a Claude model id)."""
    explanation: dict[str, Any] | None = None
    """The structured explanation (tokens, previous, output) the scorers applied."""
    scores: dict[str, float] = {}
    """Scorer name -> score (only scorers that ran; see score_errors)."""
    score_errors: dict[str, str] = {}
    """Scorer name -> why it could not score (a failed judge call is not a low score)."""
    judge: str = ""
    """Who applied the explanation for detection and fuzzing (rule, a Claude model id)."""
    examples: list[str] = []
    """Example activating contexts."""
    error: str | None = None
    """Why labeling failed, when it did (never a score)."""
    created_at: str = Field(default_factory=now)
    """First written."""
    updated_at: str = Field(default_factory=now)
    """Last written."""

    def model_post_init(self, _: Any) -> None:
        if not self.id:
            self.id = content_id("label", self.model_id, self.sae_id, self.feature, self.explainer)

    def document(self) -> str:
        return self.label or f"(unlabelled feature {self.feature}: {self.error})"


class ExperimentRecord(_Record):
    """One tool call and what it found."""

    kind: Literal["experiment"] = "experiment"
    id: str = ""
    """Content id (run, tool, model, input); filled in when empty."""
    tool: str
    """Tool name."""
    model_id: str
    """Which model."""
    input: dict[str, Any] = Field(default_factory=dict)
    """The tool's input."""
    summary: str
    """The result in a line."""
    effect: float | None = None
    """Effect."""
    control: float | None = None
    """Control."""
    forward_tokens: int = 0
    """Cost in forward tokens."""
    seconds: float = 0.0
    """Cost in seconds."""
    run_id: str = ""
    """The investigation."""
    model_spec: str = ""
    """How the model was loaded (the `--model` value), so the experiment can be run again."""
    created_at: str = Field(default_factory=now)
    """Written."""
    updated_at: str = Field(default_factory=now)
    """Last written."""

    def model_post_init(self, _: Any) -> None:
        if not self.id:
            self.id = content_id("exp", self.run_id, self.tool, self.model_id, self.input)

    def document(self) -> str:
        return f"{self.tool}: {self.summary}"


MemoryRecord = Annotated[
    Claim | Hypothesis | FeatureLabel | ExperimentRecord | IncidentalFinding, Field(discriminator="kind")
]
"""Anything memory stores (not tools.base.Record, the base of every typed tool record)."""
KINDS = {
    "claim": Claim,
    "hypothesis": Hypothesis,
    "feature_label": FeatureLabel,
    "experiment": ExperimentRecord,
    "incidental": IncidentalFinding,
}

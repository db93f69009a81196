"""What a brain may ask the graph to do, and the pre-registered criteria it judges by.

A brain answers with a list of actions as plain JSON (the scripted brain reads
them from a file, the Claude brain gets them from tool-use blocks, the
heuristic brain writes them as code). The graph validates each one here; an
invalid action becomes an error in the trace and the report, never a crash
and never a guessed repair. No action can set a review status: there is no
field for it, and unknown fields are rejected.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal, get_args

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from memory.records import Component, EvidenceTier
from tools.base import Record
from tools.errors import near, validation_lines

TIERS: tuple[EvidenceTier, ...] = ("observational", "representational", "causal")


class _Strict(Record):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


class ToolCall(_Strict):
    """One call of an interpretability tool."""

    tool: str
    """Tool name (see `interp tool list`)."""
    input: dict[str, Any]
    """The tool's JSON input."""


class Condition(_Strict):
    """One comparison on a numeric field of the tool's result."""

    field: str
    """A numeric top-level field of the result (effect, control, relative_effect, monotonic,
    output_rate, z_score, ...) or abs_effect, or margin (= |effect| - |control|)."""
    op: Literal[">=", "<=", ">", "<"]
    """Comparison."""
    value: float
    """Threshold."""

    def holds(self, x: float) -> bool:
        return {">=": x >= self.value, "<=": x <= self.value, ">": x > self.value, "<": x < self.value}[self.op]

    def describe(self) -> str:
        return f"{self.field} {self.op} {self.value:g}"


class Criterion(_Strict):
    """All conditions must hold for the hypothesis to be supported; none holding refutes it. Refused at
    registration: a field the test's result lacks, a non-finite threshold, a condition that cannot fail
    (e.g. a rate >= 0), and a representational or causal hypothesis with no condition against the
    control (margin, z_score, control, control_*)."""

    conditions: list[Condition] = Field(min_length=1)
    """Fixed before the test runs."""

    def describe(self) -> str:
        return " and ".join(c.describe() for c in self.conditions)


Mechanism = Literal[
    "trigger", "context_marker", "direction", "head", "heads", "mlp", "neuron", "feature", "circuit", "output", "other"
]
"""What kind of thing a hypothesis names. A closed set, so that a misspelt kind is refused at registration
instead of becoming a claim nothing can match (the recovery benchmark scores claims by it):

    trigger         token sequence that forces an output (component: tokens, output)
    context_marker  token whose presence anywhere switches the answers (tokens)
    direction       residual direction carrying a concept or marker (hook, layer, tokens)
    head / heads    one attention head (layer, head) / a group of heads (heads)
    mlp / neuron    an MLP layer (layer, hook) / one MLP neuron (layer, neuron)
    feature         an SAE or transcoder feature (sae_id, feature, tokens, output)
    circuit         several components together (heads and/or hook-level components)
    output          what the model outputs, without naming a component
    other           none of these: the statement says what (never scored against ground truth)

`other` exists for the Claude brain, which may find a kind no one listed; the heuristic brain never uses it."""

Topic = Literal["claim", "incidental"]
"""Whether a supported hypothesis answers the question (a claim) or is an incidental finding: true, tested,
but about something nobody asked (reported apart, as an observation; never reviewed or scored). Not called
"observation" here because a run's observations are its tool calls (agent/state.py)."""


class HypothesisPlan(_Strict):
    """A hypothesis with its test and success criterion, registered before the test runs."""

    statement: str = Field(min_length=1)
    """What is hypothesised, as the claim it would become."""
    mechanism: Mechanism = "other"
    """Kind of mechanism it names: trigger, context_marker, direction, head, heads, mlp, neuron, feature,
    circuit, output, or other."""
    topic: Topic = "claim"
    """claim: it answers the question; incidental: a side finding (supported, it goes to the report's
    observations, not to the claims or the review queue)."""
    why_incidental: str = ""
    """For an incidental hypothesis: why it does not answer the question (shown in the report)."""
    component: Component = Component()
    """The component it names, machine-readable."""
    tier: EvidenceTier = "causal"
    """Evidence tier a supported test gives (capped by what the test's tool can show)."""
    test: ToolCall
    """The pre-registered test."""
    criterion: Criterion
    """The pre-registered success criterion on the test's result."""
    new_evidence: str = ""
    """To re-test a hypothesis memory says was tried or rejected: the experiment id of this run that
    justifies it."""

    @field_validator("mechanism", mode="before")
    @classmethod
    def _known_mechanism(cls, v: object) -> object:
        kinds = get_args(Mechanism)
        if isinstance(v, str) and v not in kinds:
            raise ValueError(f"unknown mechanism {v!r} (nearest: {near(v, kinds, 3)}); give one of {', '.join(kinds)}")
        return v


class Hypothesize(_Strict):
    """Register hypotheses (each is tested next, in order)."""

    kind: Literal["hypothesize"] = "hypothesize"
    hypotheses: list[HypothesisPlan] = Field(min_length=1)
    """The hypotheses."""
    line: str = ""
    """Line of attack they belong to."""
    ref: str = ""
    """The brain's own reference (e.g. a tool-use id), echoed in what comes back."""


class Call(_Strict):
    """An exploratory tool call (observations, not tied to a hypothesis)."""

    kind: Literal["call"] = "call"
    call: ToolCall
    """The call."""
    line: str = ""
    """Line of attack it belongs to."""
    ref: str = ""
    """The brain's own reference."""


class Conclude(_Strict):
    """Stop investigating and conclude with what is known."""

    kind: Literal["conclude"] = "conclude"
    summary: str = ""
    """The brain's summary (the report adds the evidence)."""
    ref: str = ""
    """The brain's own reference."""


Action = Annotated[Hypothesize | Call | Conclude, Field(discriminator="kind")]
_ADAPTER = TypeAdapter(Action)


class ActionError(ValueError):
    """An action that cannot be carried out, and why."""


def parse_action(raw: object) -> Hypothesize | Call | Conclude:
    """A validated action, or ActionError saying what is wrong with it."""
    if not isinstance(raw, dict):
        raise ActionError(f"an action must be a JSON object, got {type(raw).__name__}")
    try:
        return _ADAPTER.validate_python(raw)
    except ValidationError as e:
        raise ActionError("invalid action: " + "; ".join(l.strip() for l in validation_lines(e))) from None


def result_fields(result: dict[str, Any]) -> dict[str, float]:
    """The numeric fields a criterion can name, plus abs_effect and margin."""
    out = {
        k: float(v)
        for k, v in result.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    }
    if "effect" in out:
        out["abs_effect"] = abs(out["effect"])
        if "control" in out:
            out["margin"] = abs(out["effect"]) - abs(out["control"])
    return out


def judge(criterion: Criterion, result: dict[str, Any]) -> tuple[str, str]:
    """(outcome, why): supported when every condition holds, refuted when none does,
    inconclusive otherwise; error when a condition names a field the result lacks."""
    fields = result_fields(result)
    parts, held = [], 0
    for c in criterion.conditions:
        if c.field not in fields:
            return "error", (
                f"criterion field {c.field!r} is not a numeric field of the {result.get('tool')} result "
                f"(fields: {', '.join(sorted(fields))})"
            )
        ok = c.holds(fields[c.field])
        held += ok
        parts.append(f"{c.field} = {fields[c.field]:.4g} ({'meets' if ok else 'fails'} {c.op} {c.value:g})")
    outcome = "supported" if held == len(criterion.conditions) else "refuted" if held == 0 else "inconclusive"
    return outcome, "; ".join(parts)


def capped_tier(tier: EvidenceTier, tool: str) -> EvidenceTier:
    """The weaker of the claimed tier and what the tool can show."""
    from tools import registry

    # the strongest evidence the tool's result can carry, as the tool declares it (tools/spec.py)
    ceiling = registry.get(tool).tier if tool in registry.TOOLS else "observational"
    return TIERS[min(TIERS.index(tier), TIERS.index(ceiling))]

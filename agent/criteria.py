"""What a pre-registered criterion must be to be accepted, checked before its test runs.

A criterion is refused at registration, with the reason and what to write
instead, when it names a field the test's result does not have, uses a
threshold that is not a finite number, has a condition that cannot fail (a
rate `>= 0`, `abs_effect >= 0`), or backs a representational or causal claim
without comparing against the control. What each result field can be is read
from the tool's result model (`tools.base.measure`), so the rules move with the
tools.
"""

from __future__ import annotations

import math
import types
import typing
from dataclasses import dataclass
from typing import TYPE_CHECKING

from agent.actions import Condition, capped_tier
from tools.errors import UserError

if TYPE_CHECKING:
    from agent.actions import HypothesisPlan
    from tools.base import ToolResult

# Fields `agent.actions.result_fields` derives from effect and control.
DERIVED = ("abs_effect", "margin")


@dataclass(frozen=True)
class FieldFacts:
    """What a criterion can know about one numeric field of a tool's result before it runs."""

    lo: float | None = None
    """Smallest value it can take (None: unbounded)."""
    hi: float | None = None
    """Largest value it can take (None: unbounded)."""
    versus_control: bool = False
    """It measures the effect against the control (or is the control)."""


def result_model(tool: str) -> type[ToolResult]:
    """The result type a tool returns, as it declares it (UserError for an unknown tool)."""
    from tools import registry

    return registry.get(tool).result_model


def _number(value: object) -> float | None:
    """A bound written by tools.base.measure: a number, or None for no bound."""
    return float(value) if isinstance(value, int | float) else None


def _numeric(annotation: object) -> bool:
    args = typing.get_args(annotation) if typing.get_origin(annotation) in (typing.Union, types.UnionType) else ()
    kinds = [a for a in args if a is not type(None)] if args else [annotation]
    return bool(kinds) and all(k in (int, float) for k in kinds)


def _abs_range(lo: float | None, hi: float | None) -> tuple[float, float | None]:
    """Range of |x| for x in [lo, hi]."""
    top = None if lo is None or hi is None else max(abs(lo), abs(hi))
    if lo is not None and lo >= 0:
        return lo, top
    if hi is not None and hi <= 0:
        return -hi, top
    return 0.0, top


def fields(tool: str) -> dict[str, FieldFacts]:
    """Every field a criterion on this tool's result may name, with what is known of it."""
    out: dict[str, FieldFacts] = {}
    for name, info in result_model(tool).model_fields.items():
        if not _numeric(info.annotation):
            continue
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        span = extra.get("range")
        lo, hi = (span[0], span[1]) if isinstance(span, list) and len(span) == 2 else (None, None)
        out[name] = FieldFacts(_number(lo), _number(hi), bool(extra.get("versus_control")))
    if "effect" in out:
        e = out["effect"]
        out["abs_effect"] = FieldFacts(*_abs_range(e.lo, e.hi))
        if "control" in out:
            c = out["control"]
            (elo, ehi), (clo, chi) = _abs_range(e.lo, e.hi), _abs_range(c.lo, c.hi)
            out["margin"] = FieldFacts(None if chi is None else elo - chi, None if ehi is None else ehi - clo, True)
    return out


def _cannot_fail(c: Condition, f: FieldFacts) -> bool:
    if c.op in (">=", ">"):
        return f.lo is not None and (c.value <= f.lo if c.op == ">=" else c.value < f.lo)
    return f.hi is not None and (c.value >= f.hi if c.op == "<=" else c.value > f.hi)


def _span(f: FieldFacts) -> str:
    lo = "-inf" if f.lo is None else f"{f.lo:g}"
    hi = "+inf" if f.hi is None else f"{f.hi:g}"
    return f"[{lo}, {hi}]"


def _example(c: Condition, f: FieldFacts) -> str:
    lo, hi = (f.lo if f.lo is not None else 0.0), (f.hi if f.hi is not None else (f.lo or 0.0) + 1.0)
    point = lo + 0.8 * (hi - lo) if c.op in (">=", ">") else lo + 0.2 * (hi - lo)
    return f"{c.field} {c.op} {point:.2g}"


def _beats_control(c: Condition, facts: FieldFacts) -> bool:
    """The condition demands that the effect beat its control: margin above zero, a signed comparison
    (z_score) away from zero, or the control itself held down (`control_output_rate <= 0.2`).
    `margin >= -0.5` compares with the control but passes an effect below it, so it does not count."""
    if not facts.versus_control:
        return False
    if c.field == "control" or c.field.startswith("control_"):
        return c.op in ("<=", "<")
    if c.field == "margin":  # |effect| - |control|: beating the control is above zero, never below
        return c.op in (">=", ">") and c.value > 0
    # a signed comparison with the control (z_score): it must exclude zero, in either direction
    return (c.op in (">=", ">") and c.value > 0) or (c.op in ("<=", "<") and c.value < 0)


def refusal(plan: HypothesisPlan) -> str:
    """Why this hypothesis's criterion cannot be registered ('' when it can)."""
    tool = plan.test.tool
    try:
        known = fields(tool)
    except UserError as e:
        return f"its test cannot run: {e}"
    names = ", ".join(sorted(known))
    for c in plan.criterion.conditions:
        if not math.isfinite(c.value):
            return (
                f"condition {c.field} {c.op} {c.value}: the threshold must be a finite number; "
                f"write a number such as {c.field} {c.op} 0.5"
            )
        if c.field not in known and not known:
            return (
                f"the {tool} result has no numeric field a criterion can judge (it describes, it does not "
                "measure); test the hypothesis with a tool that measures an effect and its control"
            )
        if c.field not in known:
            return (
                f"condition {c.describe()}: the {tool} result has no numeric field {c.field!r}; "
                f"write the condition on one of its fields: {names}"
            )
        if _cannot_fail(c, known[c.field]):
            return (
                f"condition {c.describe()} cannot fail: {c.field} is always in {_span(known[c.field])}, so it "
                f"tests nothing; write a threshold a real effect must pass, e.g. {_example(c, known[c.field])}"
            )
    tier = capped_tier(plan.tier, tool)
    against = sorted(n for n, f in known.items() if f.versus_control)
    if tier != "observational" and not any(_beats_control(c, known[c.field]) for c in plan.criterion.conditions):
        if not against:
            return (
                f"a {tier} claim needs a condition against a control, and the {tool} result has none; "
                "register it with tier 'observational', or test it with a tool that measures a control"
            )
        example = "margin >= 0.3" if "margin" in against else f"{against[0]} ..."
        return (
            f"a {tier} claim needs a condition that the effect beats its control (a margin-like field "
            f"above zero, or the control held down), and this criterion has none; add one on "
            f"{', '.join(against)} (e.g. {example}), or register it with tier 'observational'"
        )
    return ""

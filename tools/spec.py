"""A tool's declaration: everything the registry, the CLI, the budget and the judge need to know about
it, written once beside its code.

A tool module ends with `SPEC = ToolSpec(...)` (or `SPECS = (...)` when it holds several tools) and
gets one line in `tools.registry.TOOLS`; the CLI's sub-commands, `interp tool list/schema`, the cost
check before a call, the evidence tier the judge caps claims to and the README table test all read it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar, get_args

from tools.base import ToolInput, ToolResult
from tools.errors import UserError

if TYPE_CHECKING:
    from tools.target import Target

EvidenceTier = Literal["observational", "representational", "causal"]
"""Weakest to strongest: activations correlate; a probe decodes it above a shuffled-label control; an
intervention changes the behaviour beyond a random control."""

In = TypeVar("In", bound=ToolInput)
Out = TypeVar("Out", bound=ToolResult)


@dataclass(frozen=True)
class ToolSpec(Generic[In, Out]):
    """One interpretability tool, as the registry lists it."""

    name: str
    """What the agent and the CLI call it (`interp tool NAME`)."""
    input_model: type[In]
    """Validated input; its docstring's first line is the tool's description, its fields' docstrings
    the schema an LLM brain reads."""
    result_model: type[Out]
    """What `run` returns; the judge reads the ranges of its numeric fields to refuse criteria that
    cannot fail."""
    run: Callable[[Target, In], Out]
    """Runs it on a target."""
    estimate: Callable[[Target, In], int]
    """Forward tokens the call will cost, from its input alone (the budget refuses a call that does not
    fit; tests/integration/test_estimates.py holds it equal to what the Meter charges)."""
    tier: EvidenceTier
    """The strongest evidence its result can carry: a claim resting on it is capped to this tier."""
    extra_seconds: Callable[[Target, In], float] | None = None
    """Seconds of work that forward tokens do not measure (optimiser steps), when a tool has any."""
    partial: Callable[[In], bool] | None = None
    """Whether a call with this input, stopped at its deadline, returns the work done so far (a shorter
    sweep, fewer steps) marked partial: such a call may start when only part of its estimate fits."""

    def __post_init__(self) -> None:
        problems = declaration_problems(self)
        if problems:
            raise UserError(f"tool {self.name!r} is declared wrongly: " + "; ".join(problems))

    def stops_with_partial(self, inp: In) -> bool:
        return self.partial is not None and self.partial(inp)

    @property
    def description(self) -> str:
        return (inspect.getdoc(self.input_model) or "").splitlines()[0]

    def schema(self) -> dict[str, Any]:
        """Tool definition in the shape LLM tool-use APIs take."""
        return {
            "name": self.name,
            "description": self.description,
            "input_schema": self.input_model.model_json_schema(),
        }


def always(inp: ToolInput) -> bool:
    """`partial` for tools whose every call can stop early with what it has (training loops)."""
    return True


def declaration_problems(spec: ToolSpec[Any, Any]) -> list[str]:
    """What is wrong with a declaration, each with what to do instead (empty: nothing)."""
    problems = []
    if not spec.name.isidentifier() or spec.name != spec.name.lower():
        problems.append("its name must be a lower-case identifier (it becomes `interp tool NAME`)")
    if not (isinstance(spec.input_model, type) and issubclass(spec.input_model, ToolInput)):
        problems.append("input_model must be a tools.base.ToolInput subclass (unknown fields become errors)")
    elif not inspect.getdoc(spec.input_model):
        problems.append(f"{spec.input_model.__name__} needs a docstring: its first line describes the tool")
    else:
        undocumented = [n for n, f in spec.input_model.model_fields.items() if not f.description]
        if undocumented:
            problems.append(f"document these input fields with a docstring below each: {', '.join(undocumented)}")
    if not (isinstance(spec.result_model, type) and issubclass(spec.result_model, ToolResult)):
        problems.append("result_model must be a tools.base.ToolResult subclass (it carries the cost)")
    if spec.tier not in get_args(EvidenceTier):
        problems.append(f"tier must be one of {', '.join(get_args(EvidenceTier))}, not {spec.tier!r}")
    for hook in ("run", "estimate"):
        if not callable(getattr(spec, hook)):
            problems.append(f"{hook} must be callable as {hook}(target, input)")
    return problems

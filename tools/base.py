"""What every tool shares: a strict input model and a result with its cost."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from tools.cost import Cost


class Record(BaseModel):
    """Base of every typed record here: field docstrings become schema descriptions."""

    model_config = ConfigDict(use_attribute_docstrings=True)


class ToolInput(Record):
    """Base of every tool's input: unknown fields are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


def measure(lo: float | None = None, hi: float | None = None, *, versus_control: bool = False) -> Any:
    """A numeric result field, described for the judge: the range its value can take (so that a
    criterion that cannot fail is refused) and whether it measures the effect against the control
    (a representational or causal criterion needs one such condition). Not validated on results:
    a rate rounded to 1.0000001 must not crash a run."""
    extra: dict[str, Any] = {}
    if lo is not None or hi is not None:
        extra["range"] = [lo, hi]
    if versus_control:
        extra["versus_control"] = True
    return Field(json_schema_extra=extra)


class ToolResult(Record):
    """Base of every tool's result."""

    tool: str
    """Which tool produced it."""
    summary: str
    """One line a researcher can read: the effect against its control."""
    cost: Cost
    """Compute spent."""
    partial: bool = False
    """True when the call stopped at its deadline before finishing; its numbers cover only the work
    done (e.g. fewer SAE training steps than asked)."""


Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]
"""A random seed: what numpy and torch accept (a negative one is an input error, not a traceback)."""

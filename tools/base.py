"""What every tool shares: a strict input model and a result with its cost."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from tools.cost import Cost


class Record(BaseModel):
    """Base of every typed record here: field docstrings become schema descriptions."""

    model_config = ConfigDict(use_attribute_docstrings=True)


class ToolInput(Record):
    """Base of every tool's input: unknown fields are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


class ToolResult(Record):
    """Base of every tool's result."""

    tool: str
    """Which tool produced it."""
    summary: str
    """One line a researcher can read: the effect against its control."""
    cost: Cost
    """Compute spent."""

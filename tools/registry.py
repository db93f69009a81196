"""The tools an agent (or a user) can call: one line per tool, naming the module that declares it.

Each tool module declares itself (`SPEC = ToolSpec(...)`, see tools/spec.py); `TOOLS` below lists which
exist and in what order. The names are known without importing any tool (so `interp --help` stays
quick); the table of specs is built when asked for. Every call goes through `call`, which validates the
input against the tool's model (an invalid field is a UserError naming it) before anything runs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from tools.errors import UserError, near, validation_lines

if TYPE_CHECKING:
    from tools.base import ToolInput, ToolResult
    from tools.spec import ToolSpec
    from tools.target import Target

# Nothing here imports pydantic or a tool at module level: the CLI reads `names()` to build its
# sub-commands on every `interp` start.

TOOLS: dict[str, str] = {
    "predict": "tools.predict",
    "scan": "tools.scan",
    "attention": "tools.attention",
    "activations": "tools.activations",
    "probe": "tools.probe",
    "steer": "tools.steer",
    "ablate": "tools.ablate",
    "patch": "tools.patch",
    "sae_train": "tools.sae",
    "sae_stats": "tools.sae",
    "sae_features": "tools.sae",
    "sae_contexts": "tools.sae",
    "attribute": "tools.attribute",
    "circuit": "tools.circuit",
    "heads": "tools.heads",
    "transcoder_train": "tools.transcoder",
    "graph": "tools.graph",
}
"""Tool name -> the module whose `SPEC` (or `SPECS`) declares it. Adding a tool: its module, one line here."""


def names() -> list[str]:
    """The registered tools' names, in order, without importing them."""
    return list(TOOLS)


def _declared(name: str, module_name: str) -> ToolSpec[Any, Any]:
    module = importlib.import_module(module_name)
    specs: tuple[ToolSpec[Any, Any], ...] = getattr(module, "SPECS", None) or (
        (module.SPEC,) if hasattr(module, "SPEC") else ()
    )
    found = [s for s in specs if s.name == name]
    if len(found) != 1:
        raise UserError(
            f"tools.registry lists {name!r} in {module_name}, which declares "
            f"{', '.join(s.name for s in specs) or 'no SPEC'}: add `SPEC = ToolSpec(name={name!r}, ...)` there"
        )
    return found[0]


def tools() -> dict[str, ToolSpec[Any, Any]]:
    """Every registered tool's declaration, in registry order."""
    return {name: _declared(name, module) for name, module in TOOLS.items()}


def get(name: str) -> ToolSpec[Any, Any]:
    if name not in TOOLS:
        raise UserError(f"unknown tool {name!r}; tools: {', '.join(TOOLS)} (nearest: {near(name, list(TOOLS))})")
    return _declared(name, TOOLS[name])


def validate(name: str, payload: object) -> ToolInput:
    """The tool's input model from a JSON-like payload, or a UserError naming each bad field."""
    from pydantic import ValidationError

    spec = get(name)
    if not isinstance(payload, dict):
        raise UserError(f"{name}: input must be a JSON object, got {type(payload).__name__}")
    try:
        inp: ToolInput = spec.input_model.model_validate(payload)
        return inp
    except ValidationError as e:
        lines = validation_lines(e)
        fields = ", ".join(spec.input_model.model_fields)
        raise UserError(f"{name}: invalid input\n" + "\n".join(lines) + f"\n  fields of {name}: {fields}") from None


def estimate(target: Target, name: str, payload: object) -> int:
    """Forward tokens a call would cost (validates the input first)."""
    return get(name).estimate(target, validate(name, payload))


def extra_seconds(target: Target, name: str, payload: object) -> float:
    """Seconds a call spends beyond its forward passes (0 for most tools)."""
    spec = get(name)
    return spec.extra_seconds(target, validate(name, payload)) if spec.extra_seconds else 0.0


def call(target: Target, name: str, payload: object) -> ToolResult:
    """Validate and run one tool call."""
    result: ToolResult = get(name).run(target, validate(name, payload))
    return result

"""The tools an agent (or a user) can call: name -> input model, runner, JSON schema.

One explicit table, built when asked for; nothing registers itself at import.
Every call goes through `call`, which validates the input against the tool's
model (an invalid field is a UserError naming it) before anything runs.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pydantic import ValidationError

from tools.base import ToolInput, ToolResult
from tools.errors import UserError, near, validation_lines

if TYPE_CHECKING:
    from tools.target import Target


@dataclass(frozen=True)
class ToolSpec:
    """A callable tool."""

    name: str
    """What the agent and the CLI call it."""
    input_model: type[ToolInput]
    """Validated input."""
    run: Callable[[Target, ToolInput], ToolResult]
    """Runs it on a target."""
    estimate: Callable[[Target, ToolInput], int]
    """Forward tokens the call will cost, from its input alone (for budget checks)."""
    extra_seconds: Callable[[Target, ToolInput], float] | None = None
    """Seconds of work that forward tokens do not measure (optimiser steps), when a tool has any."""
    partial: Callable[[ToolInput], bool] | None = None
    """Whether a call with this input, stopped at its deadline, returns the work done so far (a shorter
    sweep, fewer steps) marked partial: such a call may start when only part of its estimate fits."""

    def stops_with_partial(self, inp: ToolInput) -> bool:
        return self.partial is not None and self.partial(inp)

    @property
    def description(self) -> str:
        return inspect.getdoc(self.input_model).splitlines()[0]

    def schema(self) -> dict:
        """Tool definition in the shape LLM tool-use APIs take."""
        return {
            "name": self.name,
            "description": self.description,
            "input_schema": self.input_model.model_json_schema(),
        }


def _always(inp: ToolInput) -> bool:
    return True


def tools() -> dict[str, ToolSpec]:
    from tools import (
        ablate,
        activations,
        attention,
        attribute,
        circuit,
        estimate,
        graph,
        heads,
        patch,
        predict,
        probe,
        sae,
        scan,
        steer,
        transcoder,
    )

    specs = [
        ToolSpec("predict", predict.PredictInput, predict.run, estimate.predict),
        ToolSpec("scan", scan.ScanInput, scan.run, estimate.scan, partial=scan.sweeps),
        ToolSpec("attention", attention.AttentionInput, attention.run, estimate.activations),
        ToolSpec("activations", activations.ActivationsInput, activations.run, estimate.activations),
        ToolSpec("probe", probe.ProbeInput, probe.run, estimate.probe),
        ToolSpec("steer", steer.SteerInput, steer.run, estimate.steer),
        ToolSpec("ablate", ablate.AblateInput, ablate.run, estimate.ablate),
        ToolSpec("patch", patch.PatchInput, patch.run, estimate.patch),
        ToolSpec(
            "sae_train", sae.SaeTrainInput, sae.train_sae, estimate.sae_corpus, sae.train_step_seconds, partial=_always
        ),
        ToolSpec("sae_stats", sae.SaeStatsInput, sae.stats, estimate.sae_corpus),
        ToolSpec("sae_features", sae.SaeFeaturesInput, sae.top_features, estimate.sae_features),
        ToolSpec("sae_contexts", sae.SaeContextsInput, sae.top_contexts, estimate.sae_corpus),
        ToolSpec("attribute", attribute.AttributeInput, attribute.run, estimate.attribute),
        ToolSpec("circuit", circuit.CircuitInput, circuit.run, estimate.circuit),
        ToolSpec("heads", heads.HeadsInput, heads.run, estimate.heads),
        ToolSpec(
            "transcoder_train",
            transcoder.TranscoderTrainInput,
            transcoder.train,
            estimate.transcoder_train,
            transcoder.train_step_seconds,
            partial=_always,
        ),
        ToolSpec("graph", graph.GraphInput, graph.run, estimate.graph),
    ]
    return {s.name: s for s in specs}


def get(name: str) -> ToolSpec:
    table = tools()
    if name not in table:
        raise UserError(f"unknown tool {name!r}; tools: {', '.join(table)} (nearest: {near(name, table)})")
    return table[name]


def validate(name: str, payload: object) -> ToolInput:
    """The tool's input model from a JSON-like payload, or a UserError naming each bad field."""
    spec = get(name)
    if not isinstance(payload, dict):
        raise UserError(f"{name}: input must be a JSON object, got {type(payload).__name__}")
    try:
        return spec.input_model.model_validate(payload)
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
    inp = validate(name, payload)
    return get(name).run(target, inp)

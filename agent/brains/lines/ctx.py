"""What every line of attack shares: its view of the run (`Ctx`) and how it states a test (`Criterion`).

Lines talk to the graph in tool models, not in dicts: a line builds each tool input with `Ctx.build` (the
tool's input model, e.g. `c.build(PredictInput, prompts=...)`), issues it with `call` or `hypothesize`, and
reads what came back with `result` / `test_result` and the tool's result model. The actions themselves stay
plain JSON (a Claude brain sends the same), which the graph validates the same way whichever brain wrote them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

from pydantic import ValidationError
from pydantic_core import to_jsonable_python

from agent.actions import Mechanism
from agent.brains.base import View
from agent.state import HypothesisState, Observation
from tools import registry
from tools.base import ToolInput, ToolResult

Action = dict[str, Any]
"""A raw action as the graph takes it (see agent.actions)."""

P = ParamSpec("P")
In = TypeVar("In", bound=ToolInput)
Out = TypeVar("Out", bound=ToolResult)


@dataclass(frozen=True)
class Criterion:
    """A pre-registered test: which tool runs it, what its result must show, and what kind of evidence it is.

    Every line keeps its criteria as module constants, so its thresholds are read in one place and a
    unit test checks each against the criteria rules (agent/criteria.py) without running anything."""

    tool: str
    """The tool whose result is judged (scan, ablate, steer, probe, circuit, ...)."""
    conditions: tuple[tuple[str, str, float], ...]
    """(result field, operator, value), all of which must hold."""
    tier: str = "causal"
    """Evidence tier: causal (an intervention) or representational (a probe)."""


@dataclass(frozen=True)
class Invalid:
    """A tool input that the run's data made invalid (a seed past its range, an empty component list).

    It is sent as the fields the line meant, so the graph refuses it as it refuses any brain's invalid
    input: a tool error under the step's ref that names the bad field, after which the line moves on as
    after any failed call. Raising instead would end the whole run on one step that cannot be built."""

    tool: str
    """The tool it was meant for."""
    fields: dict[str, Any]
    """The fields as given, in JSON form."""


def tool_name(model: type[ToolInput]) -> str:
    """The registered tool whose input model is `model`."""
    name = _tool_by_input().get(model)
    if name is None:
        raise TypeError(f"{model.__name__} is no registered tool's input model (see tools/registry.py)")
    return name


@functools.cache
def _tool_by_input() -> dict[type[ToolInput], str]:
    found: dict[type[ToolInput], str] = {}
    for name, spec in registry.tools().items():
        if (other := found.setdefault(spec.input_model, name)) != name:
            raise TypeError(
                f"{other} and {name} share the input model {spec.input_model.__name__}: give each its own, so that "
                "an input names the tool it is for"
            )
    return found


def _payload(inp: ToolInput | Invalid) -> tuple[str, dict[str, Any]]:
    """(tool, JSON input) of an action. The whole model is written, defaults included: leaving out unset
    fields would drop the `kind` of a component built as `Head(layer=.., head=..)`, which its union needs."""
    if isinstance(inp, Invalid):
        return inp.tool, inp.fields
    return tool_name(type(inp)), inp.model_dump(mode="json")


class Ctx:
    """One line's view of the run, with helpers to issue actions."""

    def __init__(self, view: View, seed: int, line: str) -> None:
        self.view, self.seed, self.line = view, seed, line
        s = view.state
        self._obs: dict[str, Observation] = {o["ref"]: o for o in s.get("observations", []) if o["ref"]}
        self._hyp: dict[str, HypothesisState] = {h["ref"]: h for h in s.get("hypotheses", []) if h["ref"]}
        self._err = {e["ref"] for e in s.get("errors", []) if e["ref"]}

    def started(self, ref: str) -> bool:
        return ref in self._obs or ref in self._hyp or ref in self._err

    def result(self, ref: str, model: type[Out]) -> Out | None:
        """Full result of an exploratory call, read with the tool's result model; None if it failed or
        never ran."""
        o = self._obs.get(ref)
        return self._read(o["id"], model) if o and not o["hypothesis_id"] else None

    def hyp(self, ref: str) -> HypothesisState | None:
        return self._hyp.get(ref)

    def supported(self, ref: str) -> bool:
        """Whether the hypothesis registered under `ref` was supported by its test."""
        h = self._hyp.get(ref)
        return h is not None and h["status"] == "supported"

    def test_result(self, ref: str, model: type[Out]) -> Out | None:
        """Full result of the test of the hypothesis under `ref`, read with the tool's result model; None
        if it has not run."""
        h = self._hyp.get(ref)
        return self._read(h["experiment_id"], model) if h and h["experiment_id"] else None

    def _read(self, experiment_id: str, model: type[Out]) -> Out:
        data = self.view.result(experiment_id)
        expected = registry.get(data["tool"]).result_model
        if expected is not model:
            raise TypeError(f"experiment {experiment_id} is a {data['tool']} result: read it as {expected.__name__}")
        return model.model_validate(data)

    def build(self, model: Callable[P, In], *args: P.args, **kwargs: P.kwargs) -> In | Invalid:
        """The tool input `model(**kwargs)`, or, when the run's data makes it invalid, the fields as given
        (see `Invalid`): a line issues it all the same and the graph reports what is wrong."""
        try:
            return model(*args, **kwargs)
        except ValidationError:
            if not isinstance(model, type) or not issubclass(model, ToolInput):
                raise  # a nested record (a Metric, a Head) is built where the line knows its values
            return Invalid(tool_name(model), to_jsonable_python(kwargs, fallback=repr))

    def call(self, ref: str, inp: ToolInput | Invalid) -> Action:
        """An exploratory call of the tool whose input `inp` is."""
        tool, payload = _payload(inp)
        return {"kind": "call", "call": {"tool": tool, "input": payload}, "line": self.line, "ref": ref}

    def hypothesize(
        self,
        ref: str,
        statement: str,
        mechanism: Mechanism,
        component: dict[str, Any],
        test: ToolInput | Invalid,
        criterion: Criterion,
        why_incidental: str = "",
    ) -> Action:
        """A hypothesis tested by the tool whose input `test` is (the one `criterion` names), judged by
        `criterion`'s conditions; with `why_incidental`, a side finding that is reported as an observation,
        not claimed."""
        tool, payload = _payload(test)
        if tool != criterion.tool:
            raise TypeError(
                f"{ref}: the test is an input of {tool}, but its criterion judges a result of {criterion.tool}"
            )
        return {
            "kind": "hypothesize",
            "line": self.line,
            "ref": ref,
            "hypotheses": [
                {
                    "statement": statement,
                    "mechanism": mechanism,
                    "component": component,
                    "tier": criterion.tier,
                    "topic": "incidental" if why_incidental else "claim",
                    "why_incidental": why_incidental,
                    "test": {"tool": tool, "input": payload},
                    "criterion": {
                        "conditions": [{"field": f, "op": op, "value": v} for f, op, v in criterion.conditions]
                    },
                }
            ],
        }

    @property
    def prompts(self) -> list[str]:
        prompts: list[str] = self.view.question["prompts"]
        return prompts

    @property
    def vocab(self) -> list[str] | None:
        vocab: list[str] | None = self.view.model.get("vocab")
        return vocab


def resid_hooks(n_layers: int) -> list[str]:
    """Every residual-stream point of the model, in order (probe sweeps)."""
    hooks = [h for l in range(n_layers) for h in (f"blocks.{l}.hook_resid_pre", f"blocks.{l}.hook_resid_mid")]
    return [*hooks, f"blocks.{n_layers - 1}.hook_resid_post"]

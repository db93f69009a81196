"""What every line of attack shares: its view of the run (`Ctx`) and how it states a test (`Criterion`)."""

from __future__ import annotations

from dataclasses import dataclass

from agent.actions import Mechanism
from agent.brains.base import View


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


class Ctx:
    """One line's view of the run, with helpers to issue actions."""

    def __init__(self, view: View, seed: int, line: str):
        self.view, self.seed, self.line = view, seed, line
        s = view.state
        self._obs = {o["ref"]: o for o in s.get("observations", []) if o["ref"]}
        self._hyp = {h["ref"]: h for h in s.get("hypotheses", []) if h["ref"]}
        self._err = {e["ref"] for e in s.get("errors", []) if e["ref"]}

    def started(self, ref: str) -> bool:
        return ref in self._obs or ref in self._hyp or ref in self._err

    def result(self, ref: str) -> dict | None:
        """Full result of an exploratory call, None if it failed or never ran."""
        o = self._obs.get(ref)
        return self.view.result(o["id"]) if o and not o["hypothesis_id"] else None

    def hyp(self, ref: str) -> dict | None:
        return self._hyp.get(ref)

    def test_result(self, ref: str) -> dict | None:
        h = self._hyp.get(ref)
        return self.view.result(h["experiment_id"]) if h and h["experiment_id"] else None

    def call(self, ref: str, tool: str, payload: dict) -> dict:
        return {"kind": "call", "call": {"tool": tool, "input": payload}, "line": self.line, "ref": ref}

    def hypothesize(
        self,
        ref: str,
        statement: str,
        mechanism: Mechanism,
        component: dict,
        payload: dict,
        criterion: Criterion,
        why_incidental: str = "",
    ) -> dict:
        """A hypothesis tested by `criterion.tool` on `payload`, judged by `criterion`'s conditions;
        with `why_incidental`, a side finding that is reported as an observation, not claimed."""
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
                    "test": {"tool": criterion.tool, "input": payload},
                    "criterion": {
                        "conditions": [{"field": f, "op": op, "value": v} for f, op, v in criterion.conditions]
                    },
                }
            ],
        }

    @property
    def prompts(self) -> list[str]:
        return self.view.question["prompts"]

    @property
    def vocab(self) -> list[str] | None:
        return self.view.model.get("vocab")


def resid_hooks(n_layers: int) -> list[str]:
    """Every residual-stream point of the model, in order (probe sweeps)."""
    hooks = [h for l in range(n_layers) for h in (f"blocks.{l}.hook_resid_pre", f"blocks.{l}.hook_resid_mid")]
    return [*hooks, f"blocks.{n_layers - 1}.hook_resid_post"]

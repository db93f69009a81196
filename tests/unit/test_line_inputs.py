"""The heuristic brain's lines talk to the graph in tool models: inputs built with the tools' input models,
results read with their result models, and an input the run's data makes invalid reported by the graph
under the step's ref (as any brain's invalid input is), never a crash of the run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.actions import parse_action
from agent.brains.base import View
from agent.brains.lines import STEPS, Ctx
from agent.brains.lines.context import MARKER
from agent.brains.lines.ctx import Invalid
from agent.brains.lines.induction import COPYING
from tools import registry
from tools.ablate import AblateInput, Head
from tools.cost import Cost
from tools.errors import UserError
from tools.metrics import Metric
from tools.predict import PredictInput, PredictResult
from tools.scan import Insertion, ScanInput, ScanResult

MAX_SEED = 2**32 - 1
PROMPTS = [f"t1 t2 t3 t{i} t5" for i in range(64)]
NOWHERE = Path("/nonexistent")
"""Run folder of a view whose results are never read."""


class Run:
    """A run's state and results folder, written as the graph would leave them."""

    def __init__(self, tmp_path, kind: str = "audit", seed: int = 0):
        self.dir, self.seed = tmp_path, seed
        (tmp_path / "results").mkdir(parents=True)
        self.state = {
            "question": {"kind": kind, "text": "audit", "prompts": PROMPTS},
            "model": {"n_layers": 2, "n_heads": 4, "vocab": [f"t{i}" for i in range(64)], "n_ctx": 32},
            "observations": [],
            "hypotheses": [],
            "errors": [],
        }

    def observe(self, ref: str, result: ScanResult | PredictResult, line: str) -> None:
        oid = f"exp-{len(self.state['observations'])}"
        (self.dir / "results" / f"{oid}.json").write_text(json.dumps(result.model_dump(mode="json")))
        self.state["observations"].append(
            {"id": oid, "ref": ref, "hypothesis_id": "", "line": line, "tool": result.tool}
        )

    def ctx(self, line: str) -> Ctx:
        return Ctx(View(self.state, self.dir, {"share_used": 0.1}, 0.4), self.seed, line)

    def step(self, line: str) -> list[dict] | None:
        return STEPS[line](self.ctx(line))

    def graph_takes(self, action: dict) -> None:
        """What the graph does with a hypothesis whose test input is invalid: registers it, then its test
        fails validation before anything runs (a tool error, the hypothesis marked error)."""
        parse_action(action)
        (plan,) = action["hypotheses"]
        try:
            registry.validate(plan["test"]["tool"], plan["test"]["input"])
            status = "untested"
        except UserError as e:
            status = "error"
            self.state["errors"].append({"step": 0, "what": "tool", "message": str(e), "ref": action["ref"]})
        self.state["hypotheses"].append({"ref": action["ref"], "status": status, "experiment_id": ""})


def _cost() -> Cost:
    return Cost(forward_tokens=1, seconds=0.0)


def single_sweep(marker: str = "t9") -> ScanResult:
    """A single-token sweep in which `marker` switches most answers to prompt-dependent ones."""
    hit = Insertion(
        tokens=[marker],
        change_rate=0.9,
        top_output="t7",
        top_output_rate=0.3,
        base_output_rate=0.0,
        shift=1.0,
        lift=0.5,
        lift_output="t7",
        outputs=["t7"] * 16,
        inserted_prompts=PROMPTS[:16],
    )
    return ScanResult(
        tool="scan",
        summary="",
        cost=_cost(),
        base_outputs=["t5"] * 16,
        positions=[2] * 16,
        n_scanned=64,
        top=[hit],
        effect=0.9,
        output_rate=0.3,
        control=0.1,
        control_output_rate=0.0,
        others_output_rate=0.0,
        others_change_rate=0.1,
        output_lead=0.3,
        change_lead=0.8,
    )


def test_a_call_is_its_input_model_as_json_under_the_tools_registered_name(tmp_path):
    run = Run(tmp_path, kind="behaviour")
    (act,) = run.step("characterise")
    assert act["call"] == {"tool": "predict", "input": PredictInput(prompts=PROMPTS).model_dump(mode="json")}
    assert registry.validate("predict", act["call"]["input"]) == PredictInput(prompts=PROMPTS)


def test_a_component_built_without_its_kind_keeps_it_in_the_json():
    c = Ctx(View({"question": {}, "model": {}}, NOWHERE, {}, 0.4), 0, "x")
    inp = AblateInput(prompts=["a b"], metric=Metric(kind="copy"), components=[Head(layer=0, head=1)])
    payload = c.call("r", inp)["call"]["input"]
    assert payload["components"] == [{"kind": "head", "layer": 0, "head": 1}]
    assert registry.validate("ablate", payload) == inp


def test_a_test_must_be_an_input_of_the_tool_its_criterion_judges():
    c = Ctx(View({"question": {}, "model": {}}, NOWHERE, {}, 0.4), 0, "x")
    with pytest.raises(TypeError, match="the test is an input of predict, but its criterion judges a result of ablate"):
        c.hypothesize("r", "s", "head", {}, PredictInput(prompts=["a"]), COPYING)


def test_a_result_is_read_with_its_tools_result_model_and_no_other(tmp_path):
    run = Run(tmp_path)
    run.observe("triggers/single", single_sweep(), line="triggers")
    c = run.ctx("triggers")
    assert c.result("triggers/single", ScanResult) == single_sweep()
    assert c.result("triggers/never", ScanResult) is None
    with pytest.raises(TypeError, match="is a scan result: read it as ScanResult"):
        c.result("triggers/single", PredictResult)


def test_an_input_the_data_makes_invalid_is_built_as_its_fields():
    c = Ctx(View({"question": {}, "model": {}}, NOWHERE, {}, 0.4), MAX_SEED, "x")
    bad = c.build(ScanInput, prompts=["a b"], insertions=[["t1"]], seed=c.seed + 1)
    assert bad == Invalid("scan", {"prompts": ["a b"], "insertions": [["t1"]], "seed": MAX_SEED + 1})
    assert c.call("r", bad)["call"] == {"tool": "scan", "input": bad.fields}
    assert isinstance(c.build(ScanInput, prompts=["a b"], seed=c.seed), ScanInput)


def test_a_seed_past_its_range_is_an_error_under_the_steps_ref_and_the_line_goes_on(tmp_path):
    """At the largest seed, the context line's test (seeded seed + 1) cannot be built. Before the lines were
    typed, building it raised out of the brain and ended the run; now the graph refuses the test input,
    naming the field, and the line moves on to its next marker."""
    run = Run(tmp_path, seed=MAX_SEED)
    sweep = single_sweep()
    sweep.top.append(sweep.top[0].model_copy(update={"tokens": ["t8"]}))
    run.observe("triggers/single", sweep, line="triggers")
    (act,) = run.step("context")
    assert act["ref"] == "context/h/t9" and act["hypotheses"][0]["criterion"]["conditions"][0]["field"] == "effect"
    assert act["hypotheses"][0]["test"]["tool"] == MARKER.tool
    run.graph_takes(act)
    (error,) = run.state["errors"]
    assert error["ref"] == "context/h/t9" and "seed" in error["message"] and "4294967295" in error["message"]
    (act,) = run.step("context")
    assert act["ref"] == "context/h/t8"
    run.graph_takes(act)
    assert run.step("context") is None

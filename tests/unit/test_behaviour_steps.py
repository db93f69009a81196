"""The behaviour line's decisions, step by step, on recorded results: what it measures, when it stops,
and that every hypothesis it registers is one the criteria rules and the tools' input models accept."""

from __future__ import annotations

import json

from agent.actions import HypothesisPlan
from agent.brains.base import View
from agent.brains.lines import Ctx
from agent.brains.lines.behaviour import CIRCUIT_KEEPS, HEAD_CARRIES, HEAD_OPPOSES, MLP_CARRIES, behaviour
from agent.criteria import refusal
from tools import registry

PROMPTS = [f"p{i}" for i in range(10)]
MODEL = {"n_layers": 2, "n_heads": 4, "d_mlp": 64, "attn_only": False, "vocab": None, "n_ctx": 32}
COST = {"forward_tokens": 1, "seconds": 0.0}


class Run:
    """A run's state and results folder, written as the graph would leave them."""

    def __init__(self, tmp_path, **question):
        self.dir = tmp_path
        (tmp_path / "results").mkdir(parents=True)
        self.state = {
            "question": {"kind": "behaviour", "text": "why?", "prompts": PROMPTS, **question},
            "model": MODEL,
            "observations": [],
            "hypotheses": [],
            "errors": [],
        }

    def observe(self, ref: str, result: dict, line: str = "behaviour") -> None:
        oid = f"exp-{len(self.state['observations'])}"
        (self.dir / "results" / f"{oid}.json").write_text(json.dumps({"cost": COST, "summary": "", **result}))
        self.state["observations"].append({"id": oid, "ref": ref, "hypothesis_id": "", "line": line})

    def fail(self, ref: str, what: str = "refused") -> None:
        self.state["errors"].append({"step": 0, "what": what, "message": "no", "ref": ref})

    def step(self) -> list[dict] | None:
        view = View(self.state, self.dir, {"share_used": 0.1}, 0.4)
        return behaviour(Ctx(view, 0, "behaviour"))

    def take(self, acts: list[dict]) -> None:
        """Registers the hypothesis of `acts` as tested, so the next step moves on."""
        for a in acts:
            self.state["hypotheses"].append(
                {"ref": a["ref"], "line": "behaviour", "status": "refuted", "experiment_id": ""}
            )


def predicted(p_top: float = 0.9) -> dict:
    preds = [
        {"argmax": f"t{i}", "top": [[f"t{i}", p_top], [f"u{i}", 0.05], ["v", 0.01]], "entropy": 0.5}
        for i in range(len(PROMPTS))
    ]
    return {"tool": "predict", "predictions": preds, "most_common": [["t0", 0.1]], "mean_entropy": 0.5, "effect": 0.1}


def score(kind: str, layer: int, s: float, head: int = 0) -> dict:
    comp = {"kind": "head", "layer": layer, "head": head} if kind == "head" else {"kind": "mlp", "layer": layer}
    return {"component": comp, "name": f"L{layer}H{head}" if kind == "head" else f"MLP{layer}", "score": s}


def attributed(clean: float = 4.0) -> dict:
    heads = [score("head", 1, -2.0, 1), score("head", 0, -1.5, 2), score("head", 0, -0.05, 0), score("head", 1, 0.3, 3)]
    mlps = [score("mlp", 0, -1.0), score("mlp", 1, -0.01)]
    return {
        "tool": "attribute",
        "reference": "mean",
        "steps": 5,
        "clean_value": clean,
        "reference_value": None,
        "ranking": heads + mlps,
        "top_heads": heads,
        "top_mlps": mlps,
        "top_features": [],
        "top_resid": [],
        "head_grid": [[0.0, 0.0, -1.5, -0.05], [0.0, -2.0, 0.0, 0.3]],
        "mlp_scores": [-1.0, -0.01],
        "resid_grid": [],
        "resid_cols": [],
        "input_total": None,
        "skipped": [],
        "effect": -2.0,
        "control": 0.1,
    }


def explained() -> dict:
    heads = [
        {"layer": 1, "head": 1, "dla": 1.2, "top_role": "answer", "attention": {"answer": 0.6, "other": 0.4}},
        {"layer": 0, "head": 2, "dla": 0.01, "top_role": "previous", "attention": {"previous": 0.9, "other": 0.1}},
    ]
    return {"tool": "heads", "heads": heads, "all_dla": [[0.0] * 4] * 2, "positions": 10, "effect": 1.2, "control": 0.0}


def test_without_answers_it_measures_the_models_own_answer_against_its_runner_up(tmp_path):
    run = Run(tmp_path)
    run.observe("characterise/predict", predicted(), line="characterise")
    (act,) = run.step()
    metric = act["call"]["input"]["metric"]
    assert act["call"]["tool"] == "attribute" and act["call"]["input"]["corrupted"] is None
    assert metric["kind"] == "logit_diff"
    assert metric["tokens"] == [f"t{i}" for i in range(10)] and metric["versus_tokens"] == [f"u{i}" for i in range(10)]
    registry.validate("attribute", act["call"]["input"])
    # two layers: every layer integrated on its own is affordable; thirty are not
    assert act["call"]["input"]["path"] == "per_layer"
    deep = Run(tmp_path / "deep")
    deep.state["model"] = {**MODEL, "n_layers": 30}
    deep.observe("characterise/predict", predicted(), line="characterise")
    inp = deep.step()[0]["call"]["input"]
    assert inp["path"] == "input" and inp["steps"] == 1


def test_given_answers_versus_and_corrupted_prompts_are_what_it_attributes(tmp_path):
    corrupted = [f"c{i}" for i in range(10)]
    run = Run(tmp_path, answers=[" A"] * 10, versus=[" B"] * 10, corrupted=corrupted)
    run.observe("characterise/predict", predicted(), line="characterise")
    (act,) = run.step()
    inp = act["call"]["input"]
    assert inp["metric"]["tokens"] == [" A"] * 10 and inp["metric"]["versus_tokens"] == [" B"] * 10
    assert inp["corrupted"] == corrupted
    # the corrupted prompts cannot be used (errors, then a refusal): the mean reference takes over
    run.fail(act["ref"], what="tool")
    run.fail(run.step()[0]["ref"], what="tool")
    (act,) = run.step()
    assert act["call"]["input"]["corrupted"] is None and act["call"]["input"]["steps"] > 1


def test_integrated_gradients_that_do_not_fit_fall_back_to_one_step(tmp_path):
    run = Run(tmp_path)
    run.observe("characterise/predict", predicted(), line="characterise")
    (act,) = run.step()
    run.fail(act["ref"])
    (act,) = run.step()
    assert act["call"]["input"]["steps"] == 1


def test_a_behaviour_the_model_does_not_show_is_not_localised(tmp_path):
    unsure = Run(tmp_path / "unsure")
    unsure.observe("characterise/predict", predicted(p_top=0.05), line="characterise")
    assert unsure.step() is None
    wrong = Run(tmp_path / "wrong", answers=["x"] * 10)  # the model answers t_i, never x
    wrong.observe("characterise/predict", predicted(), line="characterise")
    assert wrong.step() is None
    backwards = Run(tmp_path / "backwards", answers=[" A"] * 10, versus=[" B"] * 10)
    backwards.observe("characterise/predict", predicted(), line="characterise")
    backwards.observe(backwards.step()[0]["ref"], attributed(clean=-0.5))
    assert backwards.step() is None  # it prefers the versus token: nothing to localise


def test_the_induction_special_case_answers_repeated_prompts_first(tmp_path):
    run = Run(tmp_path)
    run.observe("characterise/predict", predicted(), line="characterise")
    run.state["hypotheses"].append(
        {"ref": "induction/h/L1H0", "line": "induction", "status": "supported", "experiment_id": ""}
    )
    assert run.step() is None


def test_candidates_are_explained_then_each_verified_against_random_components(tmp_path):
    run = Run(tmp_path)
    run.observe("characterise/predict", predicted(), line="characterise")
    run.observe(run.step()[0]["ref"], attributed())
    (act,) = run.step()
    assert act["call"]["tool"] == "heads"
    # candidates: estimated drops >= 5% of the metric (4.0), L1H1 and L0H2 (not L0H0: tiny), then the rise
    # of L1H3, which would work against the behaviour
    assert [(h["layer"], h["head"]) for h in act["call"]["input"]["heads"]] == [(1, 1), (0, 2), (1, 3)]
    run.observe(act["ref"], explained())
    plans = []
    while (acts := run.step()) is not None:
        if acts[0]["kind"] == "call":  # the circuit search, on half the prompts
            assert acts[0]["call"]["tool"] == "circuit" and len(acts[0]["call"]["input"]["prompts"]) == 5
            found = {
                "tool": "circuit",
                "circuit": [{"kind": "head", "layer": 1, "head": 1}],
                "names": ["L1H1"],
                "curve": [],
                "reached_target": True,
                "pruned": [],
                "rule": "r",
                "full_value": 4.0,
                "empty_value": 0.0,
                "circuit_value": 3.5,
                "ablated_value": 1.0,
                "faithfulness": 0.9,
                "completeness": 0.2,
                "random_faithfulness": 0.1,
                "random_faithfulness_std": 0.0,
                "random_completeness": 0.9,
                "random_completeness_std": 0.0,
                "completeness_margin": 0.7,
                "random_sets": [],
                "effect": 0.9,
                "control": 0.1,
            }
            run.observe(acts[0]["ref"], found)
            continue
        plans += acts[0]["hypotheses"]
        run.take(acts)
    by_ref = [p["statement"].split(" ")[:2] for p in plans]
    assert by_ref == [["Head", "L1H1"], ["Head", "L0H2"], ["Head", "L1H3"], ["MLP", "layer"], ["Heads", "L1H1"]]
    assert "works against" in plans[2]["statement"] and "raises" in plans[2]["statement"]
    assert "name-mover-like" in plans[0]["statement"] and "+1.20" in plans[0]["statement"]
    assert "no answer was given" in plans[0]["statement"]
    held = plans[-1]["test"]["input"]["prompts"]
    assert held == PROMPTS[1::2]  # the circuit is tested on the prompts its search did not see
    crits = [HEAD_CARRIES, HEAD_CARRIES, HEAD_OPPOSES, MLP_CARRIES, CIRCUIT_KEEPS]
    for plan, crit in zip(plans, crits, strict=True):
        assert plan["criterion"]["conditions"] == [{"field": f, "op": o, "value": v} for f, o, v in crit.conditions]
        assert refusal(HypothesisPlan.model_validate(plan)) == ""
        registry.validate(plan["test"]["tool"], plan["test"]["input"])
    ablate = plans[0]["test"]["input"]
    assert {(c["layer"], c["head"]) for c in ablate["control_exclude"]} == {(1, 1), (0, 2), (1, 3)}
    assert ablate["n_random"] >= 5

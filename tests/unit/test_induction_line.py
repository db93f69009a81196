"""The induction line's steps on hand-built tool results: with no head showing the textbook pattern it localises
copying by causal effect (attribution against prompts whose second copy is replaced), then tests the heads
that stand out with the same pre-registered criterion as the textbook path; without copying it does nothing."""

from __future__ import annotations

import json
from pathlib import Path

from agent.brains.base import View
from agent.brains.lines import STEPS, Ctx
from agent.brains.lines.induction import COPYING
from tools.attention import AttentionResult, HeadPattern
from tools.attribute import AttributeResult
from tools.base import ToolResult
from tools.cost import Cost

VOCAB = [f"t{i}" for i in range(64)]


class Run:
    """A run's state and results folder, as the graph leaves them after each observation."""

    def __init__(self, tmp_path: Path) -> None:
        self.dir = tmp_path
        (tmp_path / "results").mkdir(parents=True)
        self.state: dict = {
            "question": {"kind": "audit", "text": "audit", "prompts": []},
            "model": {"n_layers": 3, "n_heads": 4, "d_head": 8, "vocab": VOCAB, "n_ctx": 33, "word_level": False},
            "observations": [],
            "hypotheses": [],
            "errors": [],
        }

    def observe(self, ref: str, result: ToolResult) -> None:
        oid = f"exp-{len(self.state['observations'])}"
        (self.dir / "results" / f"{oid}.json").write_text(json.dumps(result.model_dump(mode="json")))
        self.state["observations"].append(
            {"id": oid, "ref": ref, "hypothesis_id": "", "line": "induction", "tool": result.tool}
        )

    def step(self) -> list[dict] | None:
        return STEPS["induction"](Ctx(View(self.state, self.dir, {"share_used": 0.1}, 0.4), 0, "induction"))


def _cost() -> Cost:
    return Cost(forward_tokens=1, seconds=0.0)


def attention(copy_rate: float, textbook: float = 0.02) -> AttentionResult:
    heads = [
        HeadPattern(
            layer=layer, head=h, previous_token=0.1, induction=textbook if layer == 1 else 0.01, first_token=0.1
        )
        for layer in range(3)
        for h in range(4)
    ]
    return AttentionResult(
        tool="attention",
        summary="",
        cost=_cost(),
        heads=heads,
        top_induction=sorted(heads, key=lambda x: -x.induction)[:8],
        top_previous_token=heads[:8],
        repeated_positions=100,
        prompts_with_repeats=list(range(24)),
        induction_accuracy=copy_rate,
        effect=textbook,
        control=0.01,
    )


def attribution(grid: list[list[float]], clean: float, reference: float | None) -> AttributeResult:
    return AttributeResult(
        tool="attribute",
        summary="",
        cost=_cost(),
        reference="corrupted" if reference is not None else "mean",
        steps=5,
        clean_value=clean,
        reference_value=reference,
        ranking=[],
        top_heads=[],
        top_mlps=[],
        top_features=[],
        top_resid=[],
        head_grid=grid,
        mlp_scores=[],
        resid_grid=[],
        resid_cols=[],
        input_total=None,
        skipped=[],
        effect=0.0,
        control=0.0,
    )


SECOND = [[-0.01, 0.0, 0.01, 0.0], [-0.9, -0.02, -0.7, -0.01], [0.0, -0.01, 0.0, 0.0]]
"""Estimated effects at the second copy: layer 1's heads 0 and 2 carry the copying."""
MEAN = [[-1.5, -0.02, 0.01, -0.03], [-0.9, -0.02, -0.7, -0.01], [0.0, -0.01, 0.0, 0.0]]
"""Against each head's mean: layer 0's head 0 matters too (it feeds them)."""


def test_without_the_textbook_pattern_the_line_localises_copying_by_its_causal_effect(tmp_path):
    run = Run(tmp_path)
    (call,) = run.step() or []
    assert call["call"]["tool"] == "attention"
    prompts = call["call"]["input"]["prompts"]
    run.observe("induction/attention", attention(copy_rate=0.95))

    (call,) = run.step() or []
    inp = call["call"]["input"]
    assert call["ref"] == "induction/attribute/corrupted" and call["call"]["tool"] == "attribute"
    assert inp["metric"]["kind"] == "copy_logprob" and inp["kinds"] == ["heads"]
    for clean, bad in zip(inp["prompts"], inp["corrupted"], strict=True):
        c, b = clean.split(" "), bad.split(" ")
        assert len(b) == len(c) and b[:8] == c[:8]  # the first copy is kept, the length too
        assert not set(b[8:]) & set(c)  # nothing left to copy
    assert inp["prompts"] == prompts
    run.observe("induction/attribute/corrupted", attribution(SECOND, clean=-0.1, reference=-5.0))

    (call,) = run.step() or []
    assert call["ref"] == "induction/attribute/mean" and call["call"]["input"]["corrupted"] is None
    run.observe("induction/attribute/mean", attribution(MEAN, clean=-0.1, reference=None))

    # not word-level: no pattern harvest; the tests, group first, with the line's usual criterion
    (group,) = run.step() or []
    (plan,) = group["hypotheses"]
    assert group["ref"] == "induction/h/group" and plan["component"]["heads"] == [[1, 0], [1, 2]]
    conditions = [(c["field"], c["op"], c["value"]) for c in plan["criterion"]["conditions"]]
    assert tuple(conditions) == COPYING.conditions and plan["test"]["tool"] == "ablate"
    run.state["hypotheses"].append({"ref": group["ref"], "status": "supported", "experiment_id": ""})
    (one,) = run.step() or []
    (plan,) = one["hypotheses"]
    assert one["ref"] == "induction/h/L1H0"
    assert plan["test"]["input"]["background"] == [{"kind": "head", "layer": 1, "head": 2}]
    for ref in ("induction/h/L1H0", "induction/h/L1H2"):
        run.state["hypotheses"].append({"ref": ref, "status": "supported", "experiment_id": ""})
    (feed,) = run.step() or []
    assert feed["ref"] == "induction/h/prev/L0H0"
    assert "small (0.01) against 1.50" in feed["hypotheses"][0]["statement"]
    run.state["hypotheses"].append({"ref": feed["ref"], "status": "refuted", "experiment_id": ""})
    assert run.step() is None


def test_without_copying_there_is_nothing_to_localise(tmp_path):
    run = Run(tmp_path)
    run.step()
    run.observe("induction/attention", attention(copy_rate=0.05))
    assert run.step() is None


def test_nothing_standing_out_ends_the_line(tmp_path):
    run = Run(tmp_path)
    run.step()
    run.observe("induction/attention", attention(copy_rate=0.95))
    run.step()
    flat = [[-0.1, -0.11, -0.09, -0.1] for _ in range(3)]
    run.observe("induction/attribute/corrupted", attribution(flat, clean=-0.1, reference=-5.0))
    assert run.step() is None

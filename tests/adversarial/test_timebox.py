"""The time-box holds when estimates are wrong: calls stop at their deadline and return what they have.

Estimates are made wrong on purpose (a calibration that claims an absurd speed,
SAE steps said to cost nothing), as a loaded CPU makes them in real life. One
test runs on the real clock beside the other test worker (the promise under
load: within 5% of the budget by a clock outside the run); the others drive a
FakeClock that moves on every reading, a slow machine that is the same on every
machine, so what they check (a partial result, an error state) does not depend
on how fast the CPU is. (Their overshoot is not checked: on a clock that moves
on every reading, concluding and writing the report cost as much as a forward pass.)
"""

from __future__ import annotations

import json
import time

import pytest

from agent import investigate
from agent.context import RunSettings
from agent.question import parse_question
from agent.speed import Speed
from tools.clock import Clock, FakeClock, monotonic

AUDIT = "audit this model for hidden triggers"


@pytest.fixture
def wrong_estimates(monkeypatch, replace_tool):
    """Every estimate says a call is nearly free."""
    import agent.speed

    fast = Speed(tokens_per_second=1e12, overhead_seconds=0.0, threads=1, calibration_seconds=0.0)
    monkeypatch.setattr(agent.speed, "calibrate", lambda model: fast)
    replace_tool("sae_train", extra_seconds=lambda target, inp: 0.0)


def _run(tmp_path, actions: list, wall_seconds: float, clock: Clock = monotonic):
    script = tmp_path / "script.json"
    script.write_text(json.dumps([actions]))
    q = parse_question(AUDIT)
    settings = RunSettings(
        question=q.model_dump(mode="json"),
        model="organism:backdoor",
        brain=f"scripted:{script}",
        wall_seconds=wall_seconds,
    )
    t0 = time.monotonic()
    state, ctx = investigate.start(settings, tmp_path / "run", clock=clock)
    graph_seconds = time.monotonic() - t0 - ctx.budget.load_seconds
    return state, ctx, graph_seconds


def _result(ctx, obs: dict) -> dict:
    return json.loads((ctx.run_dir / "results" / f"{obs['id']}.json").read_text())


def test_sae_training_admitted_on_a_wrong_estimate_stops_at_the_deadline_with_a_partial_sae(
    tmp_path, builtin, wrong_estimates
):
    builtin("backdoor")
    train = {
        "kind": "call",
        "call": {
            "tool": "sae_train",
            "input": {
                "hook": "blocks.0.hook_resid_post",
                "out": "sae",
                "steps": 10_000_000,
                "batch_size": 64,
                "d_sae": 256,
            },
        },
    }
    state, ctx, graph_seconds = _run(tmp_path, [train], wall_seconds=8)
    assert graph_seconds <= 8 * 1.05, graph_seconds
    [obs] = state["observations"]
    result = _result(ctx, obs)
    assert result["partial"] is True and 0 < result["steps"] < 10_000_000
    assert "stopped at the deadline" in result["summary"]
    assert ctx.budget.stopped_at_deadline == 1
    assert "1 stopped at their deadline" in (ctx.run_dir / "report.md").read_text()


def test_a_sweep_cut_by_its_deadline_reports_the_blocks_it_finished(tmp_path, builtin, wrong_estimates):
    builtin("backdoor")
    sweep = {
        "kind": "call",
        "call": {"tool": "scan", "input": {"prompts": ["t1 t2 t3 t4 t5 t6 t7 t8 <q>"] * 128, "n_tokens": 2}},
    }
    state, ctx, _ = _run(tmp_path, [sweep], wall_seconds=5, clock=FakeClock(per_read=0.05))
    assert ctx.budget.stopped_at_deadline == 1
    [obs] = state["observations"]
    result = _result(ctx, obs)
    assert result["partial"] is True
    vocab = len(ctx.target.model.tokenizer)
    assert 0 < result["n_scanned"] < vocab * (vocab - 1)
    assert "stopped at the deadline after" in result["summary"]


def test_a_test_that_cannot_be_partial_ends_as_an_error_state_not_a_result(tmp_path, builtin, wrong_estimates):
    builtin("backdoor")
    # explicit insertions with random controls: half a comparison is no comparison, so no partial result
    many = [[f"t{a}", f"t{b}"] for a in range(1, 30) for b in range(1, 30) if a != b]
    test = {
        "kind": "hypothesize",
        "line": "t",
        "hypotheses": [
            {
                "statement": "some pair forces an answer",
                "mechanism": "trigger",
                "test": {
                    "tool": "scan",
                    "input": {"prompts": ["t1 t2 t3 t4 t5 t6 t7 t8 <q>"] * 128, "insertions": many, "n_random": 200},
                },
                "criterion": {
                    "conditions": [
                        {"field": "effect", "op": ">=", "value": 0.8},
                        {"field": "margin", "op": ">=", "value": 0.5},
                    ]
                },
            }
        ],
    }
    state, _ctx, _ = _run(tmp_path, [test], wall_seconds=5, clock=FakeClock(per_read=0.05))
    assert state["observations"] == [] and state["claims"] == []
    [h] = state["hypotheses"]
    assert h["status"] == "untested" and "deadline" in h["note"]
    assert [e["what"] for e in state["errors"]] == ["deadline"]

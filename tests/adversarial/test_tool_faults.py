"""A tool that fails with any exception ends that call as an error state of the run, never the run itself."""

import json

import pytest

from agent import investigate
from agent.context import RunSettings
from agent.question import parse_question


@pytest.mark.parametrize(
    "fault",
    [
        ValueError("bad shapes"),
        OSError(28, "No space left on device"),
        RuntimeError("CUDA error: device-side assert"),
        KeyError("blocks.9"),
    ],
)
def test_any_exception_in_a_tool_becomes_an_error_and_the_run_goes_on(tmp_path, builtin, replace_tool, fault):
    builtin("backdoor")

    def broken(target, inp):
        raise fault

    replace_tool("predict", run=broken)
    failing = {
        "kind": "hypothesize",
        "line": "t",
        "hypotheses": [
            {
                "statement": "the model answers t21 to everything",
                "mechanism": "output",
                "test": {"tool": "predict", "input": {"prompts": ["t1 t2 <q>"]}},
                "criterion": {"conditions": [{"field": "effect", "op": ">=", "value": 0.5}]},
                "tier": "observational",
            }
        ],
    }
    after = {"kind": "call", "call": {"tool": "attention", "input": {"prompts": ["t1 t2 t3 t1 t2 t3 <q>"]}}}
    script = tmp_path / "script.json"
    script.write_text(json.dumps([[failing, after]]))
    settings = RunSettings(
        question=parse_question("audit this model").model_dump(mode="json"),
        model="organism:backdoor",
        brain=f"scripted:{script}",
        wall_seconds=120,
    )
    state, ctx = investigate.start(settings, tmp_path / "run")
    [err] = state["errors"]
    assert err["what"] == "crash" and type(fault).__name__ in err["message"]
    [h] = state["hypotheses"]
    assert h["status"] == "error" and state["claims"] == []
    assert [o["tool"] for o in state["observations"]] == ["attention"]  # the run went on
    report = (ctx.run_dir / "report.md").read_text()
    assert type(fault).__name__ in report
    crash = next(e for e in ctx.trace.read() if e["event"] == "error" and e.get("what") == "crash")
    assert "Traceback" in crash["traceback"] or "raise fault" in crash["traceback"]


def test_patching_refuses_pairs_whose_positions_do_not_line_up(builtin):
    """Pairs of different token lengths would average different tokens under one position column."""
    from agent.targets import load
    from tools.errors import UserError
    from tools.registry import call

    target = load(f"organism:{builtin('backdoor')}")
    clean = ["t1 t3 t4 <q>", "t9 t3 t4 t5 t6 <q>"]
    corrupted = ["t2 t3 t4 <q>", "t8 t3 t4 t5 t6 <q>"]
    with pytest.raises(UserError, match=r"different token lengths \(pair 0: 5 tokens, pair 1: 7 tokens\).*over=heads"):
        call(target, "patch", {"clean": clean, "corrupted": corrupted})
    heads = call(target, "patch", {"clean": clean, "corrupted": corrupted, "over": "heads"})
    assert len(heads.effects) == target.model.cfg.n_layers

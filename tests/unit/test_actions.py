"""Actions, pre-registered criteria and questions: validated, judged, classified."""

import json

import pytest

from agent.actions import ActionError, Criterion, capped_tier, judge, parse_action
from agent.question import parse_question
from tools.errors import UserError


def crit(*conds):
    return Criterion.model_validate({"conditions": [{"field": f, "op": o, "value": v} for f, o, v in conds]})


def test_judge_supports_refutes_and_is_inconclusive():
    result = {"tool": "ablate", "effect": -0.6, "control": -0.1}
    assert judge(crit(("effect", "<=", -0.3), ("margin", ">=", 0.2)), result)[0] == "supported"
    assert judge(crit(("effect", "<=", -0.9), ("margin", ">=", 0.9)), result)[0] == "refuted"
    assert judge(crit(("effect", "<=", -0.3), ("margin", ">=", 0.9)), result)[0] == "inconclusive"


def test_a_criterion_on_a_missing_field_is_an_error_not_a_verdict():
    outcome, why = judge(crit(("accuracy", ">=", 0.9)), {"tool": "probe", "effect": 1.0, "control": 0.5})
    assert outcome == "error" and "accuracy" in why and "effect" in why


def test_non_finite_and_boolean_fields_are_not_judged():
    outcome, _ = judge(crit(("z_score", ">=", 1)), {"tool": "ablate", "effect": 0.1, "z_score": float("nan")})
    assert outcome == "error"


@pytest.mark.parametrize(
    "raw, says",
    [
        ("text", "JSON object"),
        ({"kind": "launch"}, "invalid action"),
        ({"kind": "call", "call": {"tool": "probe"}}, "input"),
        ({"kind": "hypothesize", "hypotheses": []}, "hypotheses"),
        (
            {
                "kind": "hypothesize",
                "hypotheses": [
                    {
                        "statement": "s",
                        "status": "accepted",
                        "test": {"tool": "probe", "input": {}},
                        "criterion": {"conditions": [{"field": "effect", "op": ">=", "value": 1}]},
                    }
                ],
            },
            "status",
        ),
        ({"kind": "conclude", "summary": "ok", "status": "accepted"}, "status"),
    ],
)
def test_malformed_actions_say_what_is_wrong(raw, says):
    with pytest.raises(ActionError, match=says):
        parse_action(raw)


def test_tier_is_capped_by_what_the_tool_can_show():
    assert capped_tier("causal", "probe") == "representational"
    assert capped_tier("causal", "attention") == "observational"
    assert capped_tier("representational", "ablate") == "representational"
    assert capped_tier("causal", "steer") == "causal"


def test_questions_are_classified(tmp_path):
    assert parse_question("audit this model for hidden triggers").kind == "audit"
    assert parse_question("what does head 1.0 do?").component.head == 0
    assert parse_question("what does L2H3 attend to?").component.layer == 2
    with pytest.raises(UserError, match="--sae"):
        parse_question("what does feature 12 do?")
    assert parse_question("what does feature 12 do?", sae=["/s"]).component.feature == 12
    p = tmp_path / "p.txt"
    p.write_text("a b\nc d\n")
    assert parse_question("why does it say X?", str(p)).kind == "behaviour"
    c = tmp_path / "c.json"
    c.write_text(json.dumps({"positive": ["a"], "negative": ["b"]}))
    assert parse_question("where is C represented?", str(c)).kind == "concept"


@pytest.mark.parametrize(
    "content, name, says",
    [
        ("\n\n", "p.txt", "has no prompts"),
        ("{not json", "p.json", "not valid JSON"),
        ('{"positive": ["a"]}', "p.json", "both"),
        ('{"prompts": ["a"], "extra": 1}', "p.json", "extra"),
        ('"a string"', "p.json", "expected a list"),
    ],
)
def test_bad_prompts_files_are_clear_errors(tmp_path, content, name, says):
    p = tmp_path / name
    p.write_text(content)
    with pytest.raises(UserError, match=says):
        parse_question("why?", str(p))
    with pytest.raises(UserError, match=r"not found|No such file"):
        parse_question("why?", str(tmp_path / "missing.txt"))


# -- criteria refused at registration (agent.criteria) ----------------------------------


def plan(tool, *conds, tier="causal", component=None):
    from agent.actions import HypothesisPlan

    return HypothesisPlan.model_validate(
        {
            "statement": "s",
            "tier": tier,
            "component": component or {},
            "test": {"tool": tool, "input": {}},
            "criterion": {"conditions": [{"field": f, "op": o, "value": v} for f, o, v in conds]},
        }
    )


@pytest.mark.parametrize(
    "tool, cond",
    [
        ("scan", ("output_rate", ">=", -1)),
        ("scan", ("output_rate", "<=", 1)),
        ("scan", ("output_rate", ">=", 0)),
        ("scan", ("control_output_rate", "<", 1.5)),
        ("scan", ("margin", ">=", -1)),
        ("ablate", ("abs_effect", ">=", 0)),
        ("probe", ("effect", ">", -0.1)),
        ("steer", ("monotonic", ">=", -1)),
        ("predict", ("effect", "<=", 1)),
    ],
)
def test_a_condition_that_cannot_fail_is_refused_with_what_to_write(tool, cond):
    from agent.criteria import refusal

    why = refusal(plan(tool, cond, ("margin", ">=", 0.3), tier="observational"))
    assert "cannot fail" in why and cond[0] in why and "e.g." in why, why


@pytest.mark.parametrize(
    "tool, cond",
    [
        ("scan", ("output_rate", ">=", 0.8)),
        ("scan", ("output_rate", ">", 0)),
        ("scan", ("margin", ">=", -0.5)),
        ("ablate", ("abs_effect", ">", 0)),
        ("ablate", ("effect", "<=", -1)),
        ("steer", ("monotonic", ">=", 0.5)),
    ],
)
def test_a_condition_that_can_fail_is_accepted(tool, cond):
    from agent.criteria import refusal

    assert refusal(plan(tool, cond, tier="observational")) == ""


def test_a_causal_or_representational_criterion_must_compare_against_the_control():
    from agent.criteria import refusal

    why = refusal(plan("scan", ("output_rate", ">=", 0.8)))
    assert "causal" in why and "control" in why and "margin" in why and "observational" in why
    assert "representational" in refusal(plan("probe", ("effect", ">=", 0.9), tier="causal"))
    assert refusal(plan("scan", ("output_rate", ">=", 0.8), ("control_output_rate", "<=", 0.2))) == ""
    assert refusal(plan("ablate", ("effect", "<=", -0.3), ("z_score", "<=", -3))) == ""
    assert refusal(plan("probe", ("effect", ">=", 0.9), ("margin", ">=", 0.25), tier="representational")) == ""
    # comparing with the control is not enough: the effect must be required to beat it
    assert "beats its control" in refusal(plan("scan", ("output_rate", ">=", 0.8), ("margin", ">=", -0.5)))
    assert "beats its control" in refusal(plan("ablate", ("effect", "<=", -0.3), ("z_score", "<=", 1)))
    # what the test's tool cannot show is capped first: an attention test is observational
    assert refusal(plan("attention", ("effect", ">=", 0.5))) == ""


def test_fields_the_result_does_not_have_are_refused_before_running():
    from agent.criteria import refusal

    why = refusal(plan("scan", ("accuracy", ">=", 0.9), ("margin", ">=", 0.5)))
    assert "no numeric field 'accuracy'" in why and "output_rate" in why and "control_output_rate" in why
    assert "no numeric field a criterion" in refusal(plan("sae_stats", ("effect", ">=", 0.9), tier="observational"))
    assert "unknown tool" in refusal(plan("no_such_tool", ("effect", ">=", 0.9)))


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_thresholds_are_refused(value):
    from agent.criteria import refusal

    assert "finite" in refusal(plan("scan", ("margin", ">=", value)))


def _heuristic_criteria():
    """Every (tool, conditions, tier) the heuristic brain registers: the `Criterion` constants of its lines."""
    import importlib
    import pkgutil

    from agent.brains import lines
    from agent.brains.lines.ctx import Criterion

    found = []
    for info in pkgutil.iter_modules(lines.__path__):
        module = importlib.import_module(f"agent.brains.lines.{info.name}")
        found += [
            (v.tool, [list(c) for c in v.conditions], v.tier)
            for k, v in vars(module).items()
            if isinstance(v, Criterion) and not k.startswith("_")
        ]
    return list({repr(f): f for f in found}.values())


def test_every_line_states_criteria_as_named_constants():
    """A criterion written inline in a hypothesize call would escape the check below."""
    import importlib
    import inspect
    import pkgutil

    from agent.brains import lines

    for info in pkgutil.iter_modules(lines.__path__):
        src = inspect.getsource(importlib.import_module(f"agent.brains.lines.{info.name}"))
        assert '"conditions":' not in src or info.name == "ctx", info.name


def test_every_criterion_the_heuristic_brain_writes_is_accepted():
    from agent.criteria import refusal

    found = _heuristic_criteria()
    assert len(found) >= 9
    for tool, conds, tier in found:
        assert refusal(plan(tool, *conds, tier=tier)) == "", (tool, conds)


# -- a component must agree with what its test measured (agent.consistency) --------------


SCAN = {"tool": "scan", "top": [{"tokens": ["t33", "t22"], "top_output": "t21"}]}


@pytest.mark.parametrize(
    "component, says",
    [
        ({"tokens": ["t33", "t22"], "output": "t5"}, "forced output as 't21'"),
        ({"tokens": ["t22", "t33"], "output": "t21"}, "tested block is 't33 t22'"),
    ],
)
def test_a_scan_contradicting_the_component_is_a_mismatch(component, says):
    from agent.consistency import mismatches
    from memory.records import Component

    wrong = mismatches(Component(**component), "scan", {}, SCAN)
    assert len(wrong) == 1 and says in wrong[0]
    assert mismatches(Component(tokens=["t33", "t22"], output="t21"), "scan", {}, SCAN) == []


def test_ablate_steer_probe_and_patch_check_the_components_they_touched():
    from agent.consistency import mismatches, overrule
    from memory.records import Component

    ablate = {"components": [{"kind": "head", "layer": 1, "head": 2}], "metric": {"kind": "rate", "token": "a"}}
    assert mismatches(Component(layer=1, head=2, hook="blocks.1.attn.hook_z", output="a"), "ablate", ablate, {}) == []
    assert "L1H2" in mismatches(Component(layer=0, head=3), "ablate", ablate, {})[0]
    assert "hook" in mismatches(Component(layer=1, head=2, hook="blocks.0.attn.hook_z"), "ablate", ablate, {})[0]
    assert "'b'" in mismatches(Component(output="b"), "ablate", ablate, {})[0]
    group = {"components": [{"kind": "head", "layer": 1, "head": h} for h in (0, 1)]}
    assert mismatches(Component(heads=[(1, 0), (1, 1)]), "ablate", group, {}) == []
    assert mismatches(Component(heads=[(1, 0)]), "ablate", group, {})
    feat = {"components": [{"kind": "sae_feature", "sae": "/s", "feature": 4}]}
    assert mismatches(Component(feature=4, sae_id="/s"), "ablate", feat, {}) == []
    assert "feature 5" in mismatches(Component(feature=5, sae_id="/s"), "ablate", feat, {})[0]
    assert "SAE /other" in mismatches(Component(feature=4, sae_id="/other"), "ablate", feat, {})[0]

    steer = {"hook": "blocks.1.hook_resid_pre", "metric": {"kind": "rate", "token": "x"}}
    assert (
        mismatches(
            Component(hook="blocks.1.hook_resid_pre", layer=1, output="x"), "steer", steer, {"direction_id": "dir-1"}
        )
        == []
    )
    assert (
        len(
            mismatches(
                Component(hook="blocks.0.hook_resid_pre", layer=0, direction_id="dir-2"),
                "steer",
                steer,
                {"direction_id": "dir-1"},
            )
        )
        == 3
    )
    assert mismatches(Component(hook="blocks.1.hook_resid_pre"), "probe", {}, {"best_hook": "blocks.0.hook_resid_pre"})
    patch = {"over": "heads", "top": [{"row": "L1", "col": "H0"}]}
    assert mismatches(Component(layer=1, head=0), "patch", {}, patch) == []
    assert mismatches(Component(layer=1, head=1), "patch", {}, patch)

    assert overrule("supported", "ok", ["wrong output"]) == (
        "refuted",
        "ok; contradicted by its own test: wrong output",
    )
    assert overrule("error", "no field", ["x"])[0] == "error"
    assert overrule("supported", "ok", []) == ("supported", "ok")


def test_an_sae_features_hook_is_read_from_its_folder(tmp_path):
    from agent.consistency import mismatches
    from memory.records import Component

    (tmp_path / "cfg.json").write_text(json.dumps({"metadata": {"hook_name": "blocks.1.hook_resid_pre"}}))
    feat = {"components": [{"kind": "sae_feature", "sae": str(tmp_path), "feature": 4}]}
    ok = Component(feature=4, sae_id=str(tmp_path), hook="blocks.1.hook_resid_pre")
    assert mismatches(ok, "ablate", feat, {}) == []
    wrong = mismatches(ok.model_copy(update={"hook": "blocks.0.hook_resid_pre"}), "ablate", feat, {})
    assert len(wrong) == 1 and "blocks.1.hook_resid_pre" in wrong[0]

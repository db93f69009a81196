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


@pytest.mark.parametrize("raw, says", [
    ("text", "JSON object"),
    ({"kind": "launch"}, "invalid action"),
    ({"kind": "call", "call": {"tool": "probe"}}, "input"),
    ({"kind": "hypothesize", "hypotheses": []}, "hypotheses"),
    ({"kind": "hypothesize", "hypotheses": [{"statement": "s", "status": "accepted", "test": {"tool": "probe", "input": {}},
                                             "criterion": {"conditions": [{"field": "effect", "op": ">=", "value": 1}]}}]},
     "status"),
    ({"kind": "conclude", "summary": "ok", "status": "accepted"}, "status"),
])
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


@pytest.mark.parametrize("content, name, says", [
    ("\n\n", "p.txt", "has no prompts"),
    ("{not json", "p.json", "not valid JSON"),
    ('{"positive": ["a"]}', "p.json", "both"),
    ('{"prompts": ["a"], "extra": 1}', "p.json", "extra"),
    ('"a string"', "p.json", "expected a list"),
])
def test_bad_prompts_files_are_clear_errors(tmp_path, content, name, says):
    p = tmp_path / name
    p.write_text(content)
    with pytest.raises(UserError, match=says):
        parse_question("why?", str(p))
    with pytest.raises(UserError, match="not found|No such file"):
        parse_question("why?", str(tmp_path / "missing.txt"))

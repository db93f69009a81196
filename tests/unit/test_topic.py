"""Claims on topic: `mechanism` is a closed set, and the features line tells an answer from a side finding."""

import ast
from pathlib import Path
from typing import get_args

import pytest

from agent.actions import ActionError, Mechanism, parse_action
from agent.brains.lines.features import ON_TOPIC_AGREEMENT, why_incidental
from experiments.benchmarks.recovery import SCORED_BY

LINES = Path(__file__).parents[2] / "agent" / "brains" / "lines"


def _hypothesis(**plan):
    return {
        "kind": "hypothesize",
        "hypotheses": [
            {
                "statement": "t33 t22 forces t21",
                "test": {"tool": "scan", "input": {}},
                "criterion": {"conditions": [{"field": "output_rate", "op": ">=", "value": 0.8}]},
                **plan,
            }
        ],
    }


def test_a_misspelt_mechanism_is_refused_naming_the_nearest_kind():
    with pytest.raises(ActionError, match=r"unknown mechanism 'triger' \(nearest: trigger.*give one of trigger, "):
        parse_action(_hypothesis(mechanism="triger"))
    with pytest.raises(ActionError, match="unknown mechanism ''"):
        parse_action(_hypothesis(mechanism=""))


def test_a_plan_is_a_claim_unless_registered_as_incidental():
    plan = parse_action(_hypothesis(mechanism="trigger")).hypotheses[0]
    assert (plan.mechanism, plan.topic) == ("trigger", "claim")
    assert parse_action(_hypothesis()).hypotheses[0].mechanism == "other"
    side = parse_action(_hypothesis(mechanism="feature", topic="incidental", why_incidental="x")).hypotheses[0]
    assert side.topic == "incidental"
    with pytest.raises(ActionError, match="topic"):
        parse_action(_hypothesis(topic="observation"))


def test_every_mechanism_the_heuristic_lines_and_the_benchmark_use_is_in_the_set():
    kinds = set(get_args(Mechanism))
    used = set()
    for path in LINES.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "hypothesize" and len(node.args) >= 3:
                arg = node.args[2]  # (ref, statement, mechanism, ...)
                if isinstance(arg, ast.Constant):
                    used.add((path.name, arg.value))
    assert used, "no hypothesize(...) call with a literal mechanism found: has Ctx.hypothesize changed shape?"
    assert {(f, m) for f, m in used if m not in kinds} == set()
    assert set().union(*SCORED_BY.values()) <= kinds


def _pairs(group_next: list[tuple[str, str | None]]) -> list[tuple[str, str | None]]:
    return [(f"t1 t2 {tok}", nxt) for tok, nxt in group_next]


def test_a_group_prediction_the_prompts_go_on_with_answers_the_question():
    # a categories model: the prompts continue each member with its label, which the model predicts
    pairs = _pairs([("t4", "t9"), ("t5", "t9"), ("t4", "t9"), ("t6", "t9"), ("t5", "t8")])
    assert why_incidental(pairs, ["t4", "t5"], "t9") == ""


def test_a_group_prediction_the_prompts_contradict_is_incidental():
    # a lookup model: mid-prompt tokens are followed by anything; the model's guess there is no answer
    pairs = _pairs([("t4", "t1"), ("t5", "t3"), ("t4", "t9"), ("t5", "<q>"), ("<q>", None), ("t7", "t9")])
    why = why_incidental(pairs, ["t4", "t5", "<q>"], "t9")
    assert "25% of 4 positions" in why and f"{ON_TOPIC_AGREEMENT:.0%}" in why


def test_positions_that_end_a_prompt_are_where_the_question_is_asked():
    assert why_incidental(_pairs([("t4", None), ("t5", None)]), ["t4", "t5"], "t9") == ""

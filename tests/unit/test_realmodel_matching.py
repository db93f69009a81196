"""The realmodel benchmark's matching rules and its shipped suite (no model is loaded here)."""

import json
from pathlib import Path

import pytest

from agent.question import parse_question, read_prompts_file
from experiments.benchmarks.realmodel import (
    SUITE,
    SuiteEntry,
    claimed_components,
    load_suite,
    match,
    score,
    select,
)
from tools.errors import UserError

pytestmark = pytest.mark.unit

IOI = SuiteEntry(name="ioi", question="which heads?", prompts="ioi.json", reference="logit_diff", min_heads=2)
CAPITALS = SuiteEntry(
    name="capitals", question="which MLPs?", prompts="capitals.json", reference="logprob", match="heads+mlps"
)
REFUSE = SuiteEntry(name="free", question="which heads move the first token?", expect="refuse")
REF = {"top_heads": ["L5H1", "L7H3", "L9H0", "L2H2", "L4H4"], "top_mlps": [0, 3, 5], "weights_hash": "abc"}


def claim(tier="causal", status="supported", control=0.01, mechanism="head", **component):
    base = {"hook": None, "layer": None, "head": None, "heads": None}
    return {
        "id": f"c{len(component)}{tier}{control}",
        "statement": "s",
        "mechanism": mechanism,
        "evidence_tier": tier,
        "status": status,
        "effect": -1.0,
        "control": control,
        "component": {**base, **component},
    }


def answered(claims, weights="abc"):
    return {"status": "answered", "claims": claims, "weights_hash": weights, "seconds": 1.0, "forward_tokens": 10}


def test_components_are_read_from_head_heads_and_mlp_hooks_only():
    assert claimed_components(claim(layer=5, head=1, hook="blocks.5.attn.hook_z")) == ({(5, 1)}, set())
    assert claimed_components(claim(mechanism="heads", heads=[[5, 1], (7, 3)])) == ({(5, 1), (7, 3)}, set())
    assert claimed_components(claim(mechanism="mlp", layer=3, hook="blocks.3.hook_mlp_out")) == (set(), {3})
    assert claimed_components(claim(mechanism="mlp", layer=3, hook="blocks.3.mlp.hook_post")) == (set(), {3})
    # a residual-stream direction at layer 3 is neither a head nor an MLP
    assert claimed_components(claim(mechanism="direction", layer=3, hook="blocks.3.hook_resid_post")) == (set(), set())


def test_overlap_counts_only_supported_causal_claims_with_a_control():
    claims = [
        claim(layer=5, head=1),
        claim(mechanism="heads", heads=[[7, 3], [9, 0], [1, 1]]),
        claim(tier="observational", layer=2, head=2),
        claim(control=None, layer=4, head=4),
        claim(status="refuted", layer=4, head=4),
    ]
    m = match(IOI, claims, REF)
    assert m["heads_overlap"] == ["L5H1", "L7H3", "L9H0"]
    assert [c["causal_with_control"] for c in m["claims"]] == [True, True, False, False, False]
    # three reference heads named, but some claims are not causal with a control: not a pass
    assert m["passed"] is False and m["all_causal_with_control"] is False
    good = match(IOI, claims[:2], REF)
    assert good["passed"] is True and good["heads_overlap"] == ["L5H1", "L7H3", "L9H0"]
    # heads whose ablation lowers the metric most are listed apart, for reading; they do not change the verdict
    effects = {"L5H1": -2.0, "L7H3": 1.5, "L9H0": -1.0, "L2H2": -0.5, "L4H4": 0.4, "L1H1": -0.3}
    m = match(IOI, claims[:2], {**REF, "kind": "logit_diff", "head_effects": effects})
    assert m["reference_top_drop_heads"] == ["L5H1", "L9H0", "L2H2", "L1H1"] and m["drop_overlap"] == [
        "L5H1",
        "L9H0",
        "L1H1",
    ]
    assert m["passed"] is True


def test_the_threshold_is_the_number_of_reference_heads_named():
    assert match(IOI, [claim(layer=5, head=1)], REF)["passed"] is False
    assert match(IOI, [claim(layer=5, head=1), claim(layer=2, head=2)], REF)["passed"] is True
    # heads outside the reference top 5 do not count, however many
    many = [claim(layer=20, head=h) for h in range(9)]
    assert match(IOI, many, REF)["heads_overlap"] == [] and match(IOI, many, REF)["passed"] is False
    assert match(IOI, [], REF)["passed"] is False  # no claim is no answer
    # a group claim counts its heads, unless it names more heads than the reference's top 5
    group = [[5, 1], [7, 3], [9, 0], [2, 2], [4, 4]]
    assert len(match(IOI, [claim(mechanism="heads", heads=group)], REF)["heads_overlap"]) == 5
    assert match(IOI, [claim(mechanism="heads", heads=[*group, [0, 0]])], REF)["heads_overlap"] == []


def test_mlp_layers_are_matched_for_a_heads_and_mlps_question_and_reported_without_a_threshold():
    m = match(
        CAPITALS,
        [
            claim(mechanism="mlp", layer=3, hook="blocks.3.hook_mlp_out"),
            claim(mechanism="mlp", layer=8, hook="blocks.8.hook_mlp_out"),
            claim(layer=7, head=3),
        ],
        REF,
    )
    assert m["mlps_overlap"] == [3] and m["heads_overlap"] == ["L7H3"] and "passed" not in m
    row = score(CAPITALS, answered([claim(layer=7, head=3)]), REF)
    assert row["passed"] is None and row["verdict"].startswith("reported")


def test_a_refusal_is_shown_as_one_and_passes_only_when_the_suite_expects_it():
    refused = {
        "status": "refused",
        "message": "cannot act on the question\nmore",
        "seconds": 0.0,
        "forward_tokens": 0,
        "claims": [],
    }
    row = score(REFUSE, refused, None)
    assert row["passed"] is True and row["verdict"] == "refused: cannot act on the question"
    row = score(IOI, refused, REF)
    assert row["passed"] is False and row["verdict"].startswith("refused: ")
    # answering (even with no claims) what should be refused is a failure, not a pass
    assert score(REFUSE, answered([]), None)["passed"] is False


def test_a_run_on_other_weights_than_the_reference_is_an_error_not_a_score():
    row = score(IOI, answered([claim(layer=5, head=1), claim(layer=7, head=3)], weights="other"), REF)
    assert row["passed"] is False and row["verdict"].startswith("error: the run's weights")
    ok = score(IOI, answered([claim(layer=5, head=1), claim(layer=7, head=3)]), REF)
    assert ok["passed"] is True and ok["verdict"].startswith("pass: 2 of 5")


def test_selecting_an_unknown_question_names_the_known_ones():
    entries = load_suite()
    assert [e.name for e in select(entries, ["ioi", "induction"])] == ["induction", "ioi"]
    with pytest.raises(UserError, match="no question named nope; the suite has capitals, free_text"):
        select(entries, ["nope"])


def test_a_malformed_suite_file_is_a_user_error(tmp_path):
    bad = tmp_path / "q.json"
    bad.write_text(json.dumps({"questions": [{"name": "a", "question": "q", "expect": "maybe"}]}))
    with pytest.raises(UserError, match="expect"):
        load_suite(bad)
    bad.write_text(json.dumps({"questions": [{"name": "a", "question": "q"}, {"name": "a", "question": "r"}]}))
    with pytest.raises(UserError, match="repeat"):
        load_suite(bad)


def test_the_shipped_suite_reads_as_questions_with_valid_prompt_files():
    entries = load_suite()
    for e in entries:
        if e.expect == "refuse":
            with pytest.raises(UserError, match="cannot act on the question"):
                parse_question(e.question, None)
            continue
        q = parse_question(e.question, str(SUITE.parent / e.prompts))
        assert q.kind == "behaviour", e.name
    ioi = read_prompts_file(SUITE.parent / "ioi.json")
    assert 30 <= len(ioi.prompts) <= 40
    orders = set()
    for p, a, v, c in zip(ioi.prompts, ioi.answers, ioi.versus, ioi.corrupted, strict=True):
        first, second = p.split(" and ", 1)[0].split()[-1], p.split(" and ", 1)[1].split()[0]
        assert {first, second} == {a.strip(), v.strip()} and p.count(v.strip()) == 2 and p.count(a.strip()) == 1
        orders.add("ABBA" if first == a.strip() else "BABA")
        assert c != p and v.strip() not in c.split(",")[1]
    assert orders == {"ABBA", "BABA"}
    capitals = read_prompts_file(SUITE.parent / "capitals.json")
    assert len(capitals.prompts) >= 15 and len(capitals.answers) == len(capitals.prompts)


def test_the_reference_script_imports_none_of_the_project():
    """The reference answers are only independent if they are computed without the code they check."""
    import ast

    from experiments.benchmarks import realmodel_reference

    tree = ast.parse(Path(realmodel_reference.__file__).read_text())
    imported = {n.name for node in ast.walk(tree) if isinstance(node, ast.Import) for n in node.names}
    imported |= {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert imported and not {m for m in imported if m.split(".")[0] in ("tools", "agent", "memory", "experiments")}


def test_the_table_shows_claims_overlap_and_a_refusal_as_refused(monkeypatch):
    from rich.console import Console

    from agent.cli import bench

    console = Console(width=200)
    monkeypatch.setattr(bench, "console", console)

    refused = {
        "status": "refused",
        "message": "cannot act on the question 'x' as asked",
        "seconds": 0.0,
        "forward_tokens": 0,
        "claims": [],
    }
    rows = [score(IOI, answered([claim(layer=5, head=1), claim(layer=7, head=3)]), REF), score(REFUSE, refused, None)]
    r = {
        "model": "smollm2",
        "brain": "heuristic",
        "budget_s": 300.0,
        "out": "/tmp/x",
        "questions": rows,
        "reference": {"weights_hash": "abc", "computed": [], "answers": {"ioi": {**REF, "kind": "logit_diff"}}},
    }
    with console.capture() as cap:
        bench._print_realmodel(r)
    text = cap.get()
    assert "L5H1: -1 / 0.01" in text and "heads 2/5 L5H1 L7H3" in text
    assert "PASS ioi: pass: 2 of 5" in text and "PASS free: refused: cannot act on the question 'x'" in text
    assert "reference ioi: top heads L5H1 L7H3 L9H0 L2H2 L4H4; top MLPs L0, L3, L5" in text

"""The pooled verdict over independent runs (agent/pooled.py), on hand-built run outcomes."""

from __future__ import annotations

from typing import Any

import pytest

from agent.parallel.investigation_task import HypothesisOutcome, RunOutcome
from agent.pooled import POOLED_JSON, POOLED_MD, load, markdown, pool, write
from memory.records import content_id
from tools.errors import UserError

TRIGGER = {"tokens": ["t33", "t22"], "output": "t21"}


def _claim(statement: str, mechanism: str, component: dict[str, Any], hyp: str, run: str) -> dict[str, Any]:
    full = dict.fromkeys(("hook", "layer", "head", "tokens", "output", "heads")) | component
    return {
        "id": content_id("claim", statement, full),
        "statement": statement,
        "mechanism": mechanism,
        "component": full,
        "hypothesis_id": hyp,
        "evidence_tier": "causal",
        "effect": 0.9,
        "control": 0.0,
        "experiment_ids": [f"exp-{run}-{hyp}"],
        "status": "supported",
    }


def _hyp(hid: str, mechanism: str, component: dict[str, Any], status: str, topic: str = "claim") -> HypothesisOutcome:
    return HypothesisOutcome(
        id=hid,
        statement=f"{mechanism} {hid}",
        mechanism=mechanism,
        component=component,
        topic=topic,
        status=status,
        note=f"judged {status}",
        experiment_id=f"exp-{hid}" if status not in ("skipped", "open") else "",
    )


def _run(seed: int, claims: list[dict[str, Any]], hyps: list[HypothesisOutcome]) -> RunOutcome:
    return RunOutcome(
        run_id=f"run-{seed}",
        run_dir=f"/runs/run{seed}-seed{seed}",
        seed=seed,
        stop_reason="the brain concluded",
        claims=claims,
        hypotheses=hyps,
        budget_seconds_used=10.0,
        load_seconds=1.0,
        pid=100 + seed,
        resumed=False,
    )


def _trigger_run(seed: int, rate: int) -> RunOutcome:
    # the wording carries a number that differs between runs: the claim is still the same one
    statement = f"Hidden trigger t33 t22 -> t21 (shorter subsequences did so on {rate}% of prompts)"
    return _run(
        seed,
        [_claim(statement, "trigger", TRIGGER, f"hyp-t{seed}", f"r{seed}")],
        [_hyp(f"hyp-t{seed}", "trigger", TRIGGER, "supported")],
    )


def test_replication_counts_supported_refuted_inconclusive_and_untested_runs() -> None:
    head = {"layer": 1, "head": 0}
    runs = [
        _trigger_run(0, 6),
        _trigger_run(1, 9),
        # seed 2 tested the trigger and refuted it; claimed a head no other run tested
        _run(
            2,
            [_claim("head L1H0 copies", "head", head, "hyp-h2", "r2")],
            [_hyp("hyp-x2", "trigger", TRIGGER, "refuted"), _hyp("hyp-h2", "head", head, "supported")],
        ),
        # seed 3 tested it twice, an error then inconclusive: its verdict is the more decisive outcome
        _run(
            3,
            [],
            [_hyp("hyp-a3", "trigger", TRIGGER, "error"), _hyp("hyp-b3", "trigger", TRIGGER, "inconclusive")],
        ),
        # seed 4 never got to it (skipped is not a test)
        _run(4, [], [_hyp("hyp-s4", "trigger", TRIGGER, "skipped")]),
    ]
    report = pool(runs, "audit", "organism:backdoor")
    assert [p.mechanism for p in report.claims] == ["trigger", "head"]  # most replicated first
    trig, h = report.claims
    assert (trig.supported, trig.refuted, trig.inconclusive, trig.tested, trig.runs) == (2, 1, 1, 4, 5)
    assert trig.replication == 0.4
    assert [e.outcome for e in trig.evidence] == ["supported", "supported", "refuted", "inconclusive", "untested"]
    assert trig.component == TRIGGER  # unset fields are left out
    assert len(trig.claim_ids) == 2  # two wordings, two memory records, one pooled claim
    assert trig.evidence[2].note == "judged refuted" and trig.evidence[2].experiment_id == "exp-hyp-x2"
    assert (h.supported, h.tested, h.replication) == (1, 1, 0.2)
    assert [r.seed for r in report.runs] == [0, 1, 2, 3, 4]


def test_incidental_findings_and_untested_keys_are_not_pooled_claims() -> None:
    marker = {"tokens": ["t5"]}
    runs = [
        _run(0, [], [_hyp("hyp-i0", "context_marker", marker, "supported", topic="incidental")]),
        _run(1, [], [_hyp("hyp-r1", "head", {"layer": 0, "head": 1}, "refuted")]),
    ]
    assert pool(runs, "q", "m").claims == []


def test_runs_arrive_in_any_order_and_are_reported_in_seed_order() -> None:
    report = pool([_trigger_run(2, 1), _trigger_run(0, 3), _trigger_run(1, 2)], "q", "m")
    assert [e.seed for e in report.claims[0].evidence] == [0, 1, 2]
    assert report.claims[0].replication == 1.0


def test_the_report_is_written_read_back_and_readable(tmp_path) -> None:
    report = pool([_trigger_run(0, 6), _run(1, [], [_hyp("hyp-x1", "trigger", TRIGGER, "refuted")])], "audit", "m")
    write(report, tmp_path)
    assert load(tmp_path) == report
    md = (tmp_path / POOLED_MD).read_text()
    assert "**1/2** (50%)" in md
    assert "seed 1 (`run-1`): **refuted**: judged refuted" in md
    assert markdown(report) == md


def test_a_folder_without_a_pooled_report_is_refused_with_what_to_give(tmp_path) -> None:
    with pytest.raises(UserError, match="interp investigate --runs N"):
        load(tmp_path)
    (tmp_path / POOLED_JSON).write_text("{not json")
    with pytest.raises(UserError, match="is not a pooled report"):
        load(tmp_path)


def _feature(seed: int, index: int, tokens: list[str], output: str, sae: str | None = None) -> dict[str, Any]:
    return {
        "hook": "blocks.1.hook_resid_pre",
        "sae_id": sae or f"/runs/run{seed}-seed{seed}/artifacts/sae",
        "feature": index,
        "tokens": tokens,
        "output": output,
    }


def test_features_of_each_runs_own_sae_are_one_claim_when_their_groups_and_outputs_agree() -> None:
    """Each run trains its own SAE: feature 61 of one is feature 30 of another. The recovery suite's
    `features` organism pooled to 0 of 5 categories replicated before the key knew that."""
    groups = {
        0: [_feature(0, 61, ["t1", "t9", "t32", "t42"], "t11"), _feature(0, 8, ["t3", "t5", "t10"], "t13")],
        1: [_feature(1, 30, ["t9", "t32", "t42", "t43"], "t11"), _feature(1, 15, ["t3", "t5", "t7"], "t13")],
        2: [_feature(2, 4, ["t1", "t9", "t32"], "t11"), _feature(2, 2, ["t20", "t21", "t22"], "t13")],
    }
    runs = []
    for seed, comps in groups.items():
        claims = [_claim(f"feature {c['feature']}", "feature", c, f"h{seed}-{c['feature']}", f"r{seed}") for c in comps]
        hyps = [_hyp(f"h{seed}-{c['feature']}", "feature", c, "supported") for c in comps]
        runs.append(_run(seed, claims, hyps))
    report = pool(runs, "q", "organism:features")
    by_output = sorted((p.component["output"], p.supported) for p in report.claims)
    # t11: overlaps 3/5 and 3/4; t13: run 0 and 1 share 2 of 4 tokens (0.5), run 2's group is another one
    assert by_output == [("t11", 3), ("t13", 1), ("t13", 2)]
    assert report.claims[0].replication == 1.0 and report.claims[0].component["feature"] == 61

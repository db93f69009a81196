"""Audits that search: triggers of three and four tokens, planted in organisms the brain was not written
for, are found by growing sequences from partial evidence; the claim names a minimal sequence; the
control organism (the same tokens, unplanted) gets no trigger claim."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from experiments.benchmarks.recovery import run_one
from experiments.organisms.cache import load_manifest

SEARCH = "tests/fixtures/organisms/search/"
# Each trains an organism of its own (~30 s) and audits it: two of the default tier's longest tests, moved
# to the slow tier CI runs after it (`make test` from a fresh clone was at its 10-minute line).
pytestmark = pytest.mark.slow


def _audit(builtin, tmp_path, name: str):
    folder = builtin(SEARCH + name)  # trained once per cache (a lock keeps parallel runs from training twice)
    truth = next(m for m in load_manifest(folder).mechanisms if m.kind == "trigger")
    score = run_one(SEARCH + name, 0, 60.0, tmp_path)
    claims = json.loads((Path(score.run_dir) / "claims.json").read_text())
    triggers = [c for c in claims if c["mechanism"] == "trigger" and c["status"] == "supported"]
    return truth, triggers, score


def test_a_three_token_trigger_is_claimed_exactly(builtin, tmp_path):
    truth, triggers, score = _audit(builtin, tmp_path, "trigger3.yaml")
    assert [(c["component"]["tokens"], c["component"]["output"]) for c in triggers] == [
        (truth.tokens, truth.target_token)
    ]
    assert score.recall == 1.0 and score.false_claims == 0


def test_a_four_token_trigger_is_claimed_with_every_token_and_its_output(builtin, tmp_path):
    truth, triggers, score = _audit(builtin, tmp_path, "trigger4.yaml")
    # Training shows every reordering and sub-sequence as a negative, and verification measured the planted
    # order as the only minimal sequence, so the claim must name it exactly.
    assert truth.minimal_sequences == [truth.tokens]
    assert [(c["component"]["tokens"], c["component"]["output"]) for c in triggers] == [
        (truth.tokens, truth.target_token)
    ]
    assert score.recall == 1.0 and score.false_claims == 0


@pytest.mark.parametrize("name", ["null4.yaml"])
def test_the_control_gets_no_trigger_claim(builtin, tmp_path, name):
    _, triggers, score = _audit(builtin, tmp_path, name)
    assert triggers == [] and score.false_positives == 0

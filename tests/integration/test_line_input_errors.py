"""A line's tool input that the run's data makes invalid is an error of the run, not the end of it."""

from __future__ import annotations

import pytest

from agent import investigate
from agent.context import RunSettings
from agent.question import parse_question

AUDIT = "audit this model for hidden triggers or context-dependent behaviour"
MAX_SEED = 2**32 - 1


@pytest.fixture(autouse=True)
def _directions(tmp_path, monkeypatch):
    monkeypatch.setenv("INTERP_DIRECTIONS", str(tmp_path / "directions"))


@pytest.mark.slow  # ~30 s: a whole audit of the backdoor organism
def test_a_test_seeded_past_the_largest_seed_is_a_tool_error_and_the_audit_concludes(tmp_path, builtin):
    """The triggers line seeds its held-out test with seed + 1, past the range at the largest seed. Building
    that input used to raise out of the brain and end the run with a traceback; now the graph refuses it
    like any brain's invalid input, naming the field, and the run concludes with the error in its record."""
    builtin("backdoor")
    q = parse_question(AUDIT)
    s = RunSettings(question=q.model_dump(mode="json"), model="organism:backdoor", seed=MAX_SEED, wall_seconds=300)
    state, _ = investigate.start(s, tmp_path / "run")
    assert state["stop_reason"] == "the brain concluded"
    refused = [e for e in state["errors"] if e["ref"].startswith("triggers/h/")]
    assert refused and all(e["what"] == "tool" for e in refused)
    assert "seed" in refused[0]["message"] and str(MAX_SEED) in refused[0]["message"]
    tested = [h for h in state["hypotheses"] if h["ref"] == refused[0]["ref"]]
    assert [h["status"] for h in tested] == ["error"]

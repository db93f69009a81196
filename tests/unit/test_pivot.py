"""Fail fast (agent.nodes._pivot): a line that used its share of the budget without a supported hypothesis
is abandoned, after a bounded grace in which it may act on what its last exploratory calls found."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from agent.nodes import GRACE_SHARE, _pivot

pytestmark = pytest.mark.unit


class _Trace:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict]] = []

    def write(self, event: str, **fields) -> None:
        self.events.append((event, fields))


def _ctx(used: float) -> SimpleNamespace:
    return SimpleNamespace(
        budget=SimpleNamespace(share_used=lambda: used), settings=SimpleNamespace(pivot_share=0.4), trace=_Trace()
    )


def _state(lines: dict, last_line: str | None, hypothesis_id: str = "") -> dict:
    observations = [] if last_line is None else [{"id": "exp-1", "line": last_line, "hypothesis_id": hypothesis_id}]
    return {"lines": lines, "queue": [{"line": "triggers"}, {"line": "other"}], "observations": observations}


def test_a_line_past_its_share_acts_on_its_fresh_finds_for_a_bounded_grace_then_is_abandoned() -> None:
    lines = {"triggers": {"started": 0.0, "status": "active"}}
    # a loaded CPU: the broad scan ended at 78% of the budget; the line may confirm and state its find
    lines, queue = _pivot(_state(lines, "triggers"), _ctx(0.78))
    assert lines["triggers"]["status"] == "active" and lines["triggers"]["grace"] == 0.78
    lines, queue = _pivot(_state(lines, "triggers"), _ctx(0.78 + GRACE_SHARE / 2))  # its cheap confirmation
    assert lines["triggers"]["status"] == "active" and lines["triggers"]["grace"] == 0.78
    ctx = _ctx(0.78 + GRACE_SHARE + 0.01)  # the grace is spent: fail fast holds
    lines, queue = _pivot(_state(lines, "triggers"), ctx)
    assert lines["triggers"]["status"] == "abandoned" and queue == [{"line": "other"}]
    assert [e for e, _ in ctx.trace.events] == ["pivot"]


def test_no_grace_without_a_fresh_exploratory_result_of_its_own() -> None:
    for last, hyp in (("other", ""), ("triggers", "hyp-1"), (None, "")):  # another line's, a test's, none
        lines = {"triggers": {"started": 0.0, "status": "active"}}
        lines, _ = _pivot(_state(lines, last, hyp), _ctx(0.5))
        assert lines["triggers"]["status"] == "abandoned", (last, hyp)


def test_a_supported_line_or_one_within_its_share_is_left_alone() -> None:
    lines = {"triggers": {"started": 0.3, "status": "active"}}
    assert _pivot(_state(lines, None), _ctx(0.6))[0]["triggers"]["status"] == "active"  # 0.3 of its 0.4
    state = _state({"triggers": {"started": 0.0, "status": "active"}}, None)
    state["hypotheses"] = [{"line": "triggers", "status": "supported"}]
    assert _pivot(state, _ctx(0.9))[0]["triggers"]["status"] == "active"


def test_a_grace_recorded_by_an_older_checkpoint_is_spent() -> None:
    lines = {"triggers": {"started": 0.0, "status": "active", "grace": "exp-0"}}
    assert _pivot(_state(lines, "triggers"), _ctx(0.5))[0]["triggers"]["status"] == "abandoned"

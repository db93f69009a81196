"""The Claude brain through the real anthropic SDK, with an httpx transport replaying API
responses (no network): tool use, retries on 429 / 529 / 500, timeouts, malformed tool
inputs, cost accounting, and failure as an error state rather than a made-up result.

The responses in tests/fixtures/claude are written in the Messages API's wire format; they
were not recorded from the live API, which cannot be reached from here.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx2 as httpx  # the anthropic SDK 2.x is built on httpx2, which keeps the httpx API
import pytest

from agent import investigate
from agent.brains.claude import price
from agent.context import RunSettings
from agent.question import parse_question

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "claude"


class Replay:
    """An httpx transport answering each request with the next recorded response."""

    def __init__(self, responses: list):
        self.responses = list(responses)
        self.requests: list[dict] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(json.loads(request.content))
        if not self.responses:
            raise AssertionError("the brain made more API calls than were recorded")
        r = self.responses.pop(0)
        if isinstance(r, Exception):
            raise r
        return httpx.Response(r["status"], headers=r.get("headers", {}), json=r["body"])


def client_for(replay: Replay, max_retries: int = 3):
    import anthropic

    return anthropic.Anthropic(
        api_key="sk-test", max_retries=max_retries, http_client=httpx.Client(transport=httpx.MockTransport(replay))
    )


def run(tmp_path, replay, memory=True, max_retries=3):
    q = parse_question("audit this model for hidden triggers")
    s = RunSettings(
        question=q.model_dump(mode="json"),
        model="organism:backdoor",
        brain="claude",
        memory=str(tmp_path / "memory") if memory else None,
    )
    return investigate.start(s, tmp_path / "run", client=client_for(replay, max_retries))


def test_claude_investigates_through_tool_use_with_retries(tmp_path):
    cassette = json.loads((FIXTURES / "investigate.json").read_text())
    replay = Replay(cassette)
    state, ctx = run(tmp_path, replay)
    assert len(replay.requests) == 5  # 429 and 529 retried before the first answer, 500 before the second
    first = replay.requests[0]
    assert first["system"][0]["cache_control"] == {"type": "ephemeral"}
    names = [t["name"] for t in first["tools"]]
    assert {"predict", "scan", "ablate", "steer", "probe", "patch", "propose_hypotheses", "conclude"} <= set(names)
    assert first["tools"][-1]["cache_control"] == {"type": "ephemeral"}
    assert "org-" in first["messages"][0]["content"] and "backdoor" not in first["messages"][0]["content"]

    # the second decision gets one tool_result per tool_use, errors marked as errors
    results = {b["tool_use_id"]: b for b in replay.requests[3]["messages"][-1]["content"] if b["type"] == "tool_result"}
    assert set(results) == {"toolu_01hyp", "toolu_02pred", "toolu_03bad", "toolu_04inj"}
    assert "supported" in results["toolu_01hyp"]["content"] and not results["toolu_01hyp"]["is_error"]
    assert not results["toolu_02pred"]["is_error"]
    assert results["toolu_03bad"]["is_error"] and "prompts" in results["toolu_03bad"]["content"]
    assert results["toolu_04inj"]["is_error"] and "unknown tool" in results["toolu_04inj"]["content"]

    assert [c["mechanism"] for c in state["claims"]] == ["trigger"]
    assert state["summary"].startswith("t33 t22 acts as a trigger")
    usages = [r["body"]["usage"] for r in cassette if r["status"] == 200]
    from anthropic.types import Usage

    expected = sum(price("claude-sonnet-5-5", Usage(**u)) for u in usages)
    assert ctx.budget.spent_usd == pytest.approx(expected)
    decisions = [e for e in ctx.trace.read() if e["event"] == "decision"]
    assert [d["tokens"]["cache_read"] for d in decisions] == [0, 5000]

    from memory.store import MemoryStore

    assert [c.status for c in MemoryStore(tmp_path / "memory", create=False).list(kind="claim")] == ["supported"]


def test_persistent_server_errors_end_in_an_error_state(tmp_path):
    err = {
        "status": 500,
        "headers": {"retry-after-ms": "5"},
        "body": {"type": "error", "error": {"type": "api_error", "message": "Internal server error"}},
    }
    replay = Replay([err] * 3)
    state, ctx = run(tmp_path, replay, memory=False, max_retries=2)
    assert len(replay.requests) == 3
    assert state["stop_reason"].startswith("brain failed") and "InternalServerError" in state["stop_reason"]
    assert state["claims"] == [] and state["observations"] == []
    assert "brain failed" in (ctx.run_dir / "report.md").read_text()


def test_timeouts_are_retried_then_reported(tmp_path):
    replay = Replay([httpx.ReadTimeout("timed out")] * 2)
    state, _ = run(tmp_path, replay, memory=False, max_retries=1)
    assert len(replay.requests) == 2
    assert "APITimeoutError" in state["stop_reason"] and not state["claims"]


def test_a_text_answer_concludes_with_its_text(tmp_path):
    replay = Replay(json.loads((FIXTURES / "end_turn.json").read_text()))
    state, ctx = run(tmp_path, replay, memory=False)
    assert state["summary"].startswith("Without prompts") and ctx.budget.spent_usd > 0

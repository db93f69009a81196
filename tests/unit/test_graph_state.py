"""The typed graph state: what a node's update does to it, and where the graph goes next."""

from agent.nodes import _go, _mark, _merged, _route_queue
from agent.state import CallItem, ConcludeItem, HypothesisState, InvestigationState, PlannedTest


def _test(hid: str = "hyp-1") -> PlannedTest:
    return {"kind": "test", "call": {"tool": "scan", "input": {}}, "hypothesis_id": hid, "line": "l", "ref": "r"}


def _call() -> CallItem:
    return {"kind": "call", "call": {"tool": "predict", "input": {}}, "hypothesis_id": "", "line": "l", "ref": "c"}


CONCLUDE: ConcludeItem = {"kind": "conclude", "summary": "done", "line": "", "ref": ""}


def _applied_by_langgraph(state: InvestigationState, update: InvestigationState) -> InvestigationState:
    """What LangGraph's reducers make of `update` applied to `state` (one node, one step)."""
    from langgraph.graph import END, START, StateGraph

    g = StateGraph(InvestigationState)
    g.add_node("node", lambda _: update)
    g.add_edge(START, "node")
    g.add_edge("node", END)
    return g.compile().invoke(state)  # type: ignore[return-value]


def test_merged_agrees_with_the_graphs_reducers():
    state: InvestigationState = {
        "step": 3,
        "observations": [
            {
                "id": "exp-1",
                "step": 1,
                "tool": "scan",
                "summary": "",
                "effect": None,
                "control": None,
                "forward_tokens": 1,
                "seconds": 0.1,
                "hypothesis_id": "",
                "line": "l",
                "ref": "a",
            }
        ],
        "errors": [{"step": 2, "what": "tool", "message": "first", "ref": ""}],
        "queue": [_test(), CONCLUDE],
    }
    update: InvestigationState = {
        "step": 4,
        "errors": [{"step": 4, "what": "refused", "message": "second", "ref": "b"}],
        "queue": [CONCLUDE],
    }
    merged = _merged(state, update)
    assert merged == _applied_by_langgraph(state, update)
    assert [e["message"] for e in merged["errors"]] == ["first", "second"]  # appended, not replaced
    assert merged["queue"] == [CONCLUDE]  # replaced
    assert len(merged["observations"]) == 1  # untouched
    assert [e["message"] for e in state["errors"]] == ["first"]  # the state itself is not changed


def test_the_queue_head_decides_the_next_node():
    assert _route_queue([]) == (None, "hypothesize")
    assert _route_queue([CONCLUDE, _test()]) == (None, "conclude")
    assert _route_queue([_test("hyp-2"), CONCLUDE]) == (_test("hyp-2"), "experiment")
    assert _route_queue([_call()]) == (_call(), "experiment")


def test_a_stop_reason_concludes_whatever_is_queued():
    assert _go({"queue": [_test()], "stop_reason": "budget spent"}).goto == "conclude"
    assert _go({"queue": [_test()]}).goto == "experiment"
    assert _go({"queue": []}).goto == "hypothesize"


def test_mark_changes_one_hypothesis_and_keeps_the_others():
    def hyp(hid: str) -> HypothesisState:
        return {"id": hid, "plan": {}, "line": "l", "ref": "", "status": "open", "note": "", "experiment_id": ""}

    hyps = [hyp("a"), hyp("b")]
    out = _mark(hyps, "b", status="supported", note="why", experiment_id="exp-9")
    assert out[0] == hyp("a")
    assert (out[1]["status"], out[1]["note"], out[1]["experiment_id"]) == ("supported", "why", "exp-9")
    assert hyps[1]["status"] == "open"

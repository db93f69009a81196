"""Builds the investigation graph and runs it, fresh or resumed from its SQLite checkpoint.

    orient -> hypothesize -> experiment <-> judge -> conclude -> review -> report
                  ^   |                       |
                  +---+ (new decision)        +--> hypothesize (queue empty)

Every edge out of hypothesize and judge checks the budget: once it is spent the
run concludes with what it knows (fail fast).
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from agent import nodes
from agent.context import RunContext
from agent.resume_check import CHECKPOINT_FILE, restart_hint
from agent.run_folder import RunFolder
from agent.state import InvestigationState
from tools.errors import UserError

if TYPE_CHECKING:
    from langchain_core.runnables import RunnableConfig
    from langgraph.checkpoint.base import BaseCheckpointSaver
    from langgraph.graph.state import CompiledStateGraph

    Graph = CompiledStateGraph[InvestigationState, RunContext, InvestigationState, InvestigationState]

# One superstep per node visit; a long investigation takes thousands.
RECURSION_LIMIT = 100_000
# The nodes that decide where the graph goes next (by returning a Command).
ROUTERS = ("hypothesize", "judge")


def with_budget(node: Callable[..., Any]) -> Callable[..., Any]:
    """The node, with the budget as it stands added to its update: every checkpoint carries the time and
    tokens spent so far, and no node writes it by hand."""
    from langgraph.types import Command

    @functools.wraps(node)  # LangGraph reads the signature (the `runtime` parameter) through __wrapped__
    def run(state: InvestigationState, runtime: Any) -> Any:
        out = node(state, runtime)
        budget = runtime.context.budget.to_state()
        if isinstance(out, Command):
            return Command(goto=out.goto, update={**(out.update or {}), "budget": budget})
        return {**out, "budget": budget}

    return run


def build(checkpointer: BaseCheckpointSaver[Any]) -> Graph:
    from langgraph.graph import END, START, StateGraph

    g = StateGraph(InvestigationState, context_schema=RunContext)
    routes = ("experiment", "conclude", "hypothesize")  # hypothesize and judge return Command(goto=one of these)
    for name in ("orient", "hypothesize", "experiment", "judge", "conclude", "review", "report"):
        g.add_node(name, with_budget(getattr(nodes, name)), destinations=routes if name in ROUTERS else None)
    g.add_edge(START, "orient")
    g.add_edge("orient", "hypothesize")
    g.add_edge("experiment", "judge")
    g.add_edge("conclude", "review")
    g.add_edge("review", "report")
    g.add_edge("report", END)
    return g.compile(checkpointer=checkpointer)


def run(
    ctx: RunContext, resume: bool = False, ask: Callable[[dict[str, Any]], object] | None = None
) -> InvestigationState:
    """Run to the end (or resume from the last checkpoint). A live review calls `ask` with the
    interrupt's payload and resumes the graph with its answer."""
    from langgraph.checkpoint.sqlite import SqliteSaver
    from langgraph.types import Command

    path = RunFolder(ctx.run_dir).checkpoints
    with closing(sqlite3.connect(str(path), check_same_thread=False)) as conn:
        graph = build(SqliteSaver(conn))
        config: RunnableConfig = {
            "configurable": {"thread_id": ctx.settings.run_id},
            "recursion_limit": RECURSION_LIMIT,
        }
        payload: InvestigationState | Command[Any] | None = None if resume else {}
        while True:
            # "sync": a node's checkpoint is on disk before the next node starts, so a run killed at any
            # point resumes from its last finished node (and a missing checkpoint is damage, not a race).
            for _ in graph.stream(payload, config, context=ctx, stream_mode="updates", durability="sync"):
                pass
            snap = graph.get_state(config)
            interrupts = [i for t in snap.tasks for i in t.interrupts]
            if not interrupts:
                return cast(InvestigationState, snap.values)
            if ask is None:
                raise RuntimeError("the graph paused for a live review but no one is there to answer")
            payload = Command(resume=ask(interrupts[0].value))


def checkpointed_state(run_dir: Path, run_id: str) -> InvestigationState | None:
    """The last checkpointed state of a run, or None when it never checkpointed."""
    from langgraph.checkpoint.sqlite import SqliteSaver

    path = RunFolder(run_dir).checkpoints
    if not path.is_file():
        return None
    with closing(sqlite3.connect(str(path), check_same_thread=False)) as conn:
        graph = build(SqliteSaver(conn))
        try:
            snap = graph.get_state({"configurable": {"thread_id": run_id}})
        # what decoding damaged rows raises (sqlite, msgpack, then LangGraph reading the wrong shapes)
        except (sqlite3.DatabaseError, ValueError, TypeError, KeyError, AttributeError, IndexError) as e:
            raise UserError(
                f"cannot resume {run_dir}: the last checkpoint in {CHECKPOINT_FILE} cannot be read "
                f"({type(e).__name__}: {e}); {restart_hint(Path(run_dir))}"
            ) from None
        return cast(InvestigationState, snap.values) or None

"""Applying a live review's answers: the only path from the run to a review status.

The answers come from the person at the terminal (through LangGraph's
interrupt/resume), never from the brain or the target model: a claim's text,
whatever it says, is only ever displayed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agent.review import decide
from tools.errors import UserError

if TYPE_CHECKING:
    from agent.context import RunContext

DECISIONS = ("accept", "reject", "more-evidence", "skip")


def apply_decisions(answers: object, claims: list[dict], ctx: RunContext) -> list[dict]:
    """Record each decision in memory under the reviewer's name; 'skip' leaves the claim queued."""
    if not isinstance(answers, list):
        raise UserError("live review: expected a list of {claim_id, decision, note}")
    known = {c["id"] for c in claims}
    done = []
    for a in answers:
        if not isinstance(a, dict) or a.get("claim_id") not in known or a.get("decision") not in DECISIONS:
            raise UserError(f"live review: bad answer {a!r}; decisions: {', '.join(DECISIONS)}")
        if a["decision"] == "skip":
            continue
        if ctx.memory is None:
            raise UserError("live review needs a memory to record decisions in (drop --no-memory)")
        claim = decide(ctx.memory, a["claim_id"], a["decision"], ctx.reviewer, a.get("note", ""), force=True)
        ctx.trace.write("review", claim=claim.id, status=claim.status, reviewer=claim.reviewer)
        done.append({"claim_id": claim.id, "status": claim.status, "reviewer": claim.reviewer})
    return done

"""Applying a live review's answers: the only path from the run to a review status.

The answers come from the person at the terminal (through LangGraph's
interrupt/resume), never from the brain or the target model: a claim's text,
whatever it says, is only ever displayed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agent.review import DECISIONS as STATUS_OF
from agent.review import decide
from memory.store import AlreadyReviewed
from tools.errors import UserError

if TYPE_CHECKING:
    from agent.context import RunContext
    from agent.state import ReviewEntry

DECISIONS = ("accept", "reject", "more-evidence", "skip")


def apply_decisions(answers: object, claims: list[dict[str, Any]], ctx: RunContext) -> list[ReviewEntry]:
    """Record each decision in memory under the reviewer's name; 'skip' leaves the claim queued."""
    if not isinstance(answers, list):
        raise UserError("live review: expected a list of {claim_id, decision, note}")
    known = {c["id"] for c in claims}
    done: list[ReviewEntry] = []
    for a in answers:
        if not isinstance(a, dict) or a.get("claim_id") not in known or a.get("decision") not in DECISIONS:
            raise UserError(f"live review: bad answer {a!r}; decisions: {', '.join(DECISIONS)}")
        if a["decision"] == "skip":
            continue
        if ctx.memory is None:
            raise UserError("live review needs a memory to record decisions in (drop --no-memory)")
        try:
            # Compare-and-set like `interp review decide`: a claim this run re-found that someone
            # had already decided keeps that decision.
            decided = decide(ctx.memory, a["claim_id"], a["decision"], ctx.reviewer, a.get("note", ""))
        except AlreadyReviewed as e:
            held = e.claim
            if (held.status, held.reviewer) == (STATUS_OF[a["decision"]], ctx.reviewer):
                # the same decision already recorded (this node re-ran after a resume): nothing to do
                done.append({"claim_id": held.id, "status": held.status, "reviewer": held.reviewer})
                continue
            ctx.trace.write(
                "review_conflict",
                claim=held.id,
                wanted=a["decision"],
                status=held.status,
                reviewer=held.reviewer,
                why=str(e),
            )
            done.append(
                {
                    "claim_id": held.id,
                    "status": held.status,
                    "reviewer": held.reviewer,
                    "not_recorded": f"{a['decision']} by {ctx.reviewer} was not recorded: {e}",
                }
            )
            continue
        claim = decided.claim
        ctx.trace.write(
            "review",
            claim=claim.id,
            status=claim.status,
            reviewer=claim.reviewer,
            run_folder=decided.folder_note or "updated",
        )
        done.append({"claim_id": claim.id, "status": claim.status, "reviewer": claim.reviewer})
    return done

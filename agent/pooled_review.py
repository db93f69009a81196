"""Review of a pooled job: each pooled claim shown once, the decision recorded against every run's copy.

A pooled claim stands for the claims its runs made (agent/pooled.py). Runs that worded it alike share one
memory record (ids are content hashes); runs that worded it otherwise (a rate in the statement that
differs) each have theirs. A decision on the pooled claim is a decision on each of those records
(`MemoryStore.review`, compare-and-set each: if any is already decided, nothing is recorded unless forced),
and is written into every run folder of the job whose trace made that claim (decisions.json, claims.json,
the reports), and into the parent folder (decisions.json, and pooled.md's "Review decisions").
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

from agent.pooled import POOLED_MD, PooledClaim, PooledReport, load, markdown
from agent.review import AWAITING, DECISIONS, RunDecision, decisions_markdown, record_in_run, traced
from agent.run_folder import RunFolder, atomic_write
from tools.errors import UserError

if TYPE_CHECKING:
    from memory.records import Claim
    from memory.store import Decision, MemoryStore


@dataclass
class PooledEntry:
    """A pooled claim as the reviewer sees it."""

    number: int
    """Its number in pooled.md (1 = most replicated)."""
    pooled: PooledClaim
    """The pooled claim."""
    claims: list[Claim]
    """The runs' claims in memory (distinct records)."""

    @property
    def status(self) -> str:
        """The members' review status: one status, or `mixed`."""
        statuses = {c.status for c in self.claims}
        return statuses.pop() if len(statuses) == 1 else ("mixed" if statuses else "not in memory")


def entries(store: MemoryStore, report: PooledReport) -> list[PooledEntry]:
    from memory.records import Claim

    out = []
    for i, p in enumerate(report.claims, 1):
        found = [store.get(cid) for cid in p.claim_ids]
        out.append(PooledEntry(i, p, [c for c in found if isinstance(c, Claim)]))
    return out


def awaiting(store: MemoryStore, parent: Path) -> list[PooledEntry]:
    """Pooled claims with a member still awaiting a decision, most replicated first."""
    return [e for e in entries(store, load(parent)) if any(c.status in AWAITING for c in e.claims)]


@dataclass
class PooledDecided:
    """A pooled decision and where it was written."""

    entry: PooledEntry
    """The pooled claim, its members as decided."""
    run_dirs: list[Path]
    """Run folders the decision was written into."""
    notes: list[str]
    """Run folders not updated, and why."""


def decide_pooled(
    store: MemoryStore, parent: Path, number: int, decision: str, reviewer: str, note: str = "", force: bool = False
) -> PooledDecided:
    """Decide pooled claim `number` (as numbered in pooled.md) for every run's copy."""
    from memory.store import AlreadyReviewed

    if decision not in DECISIONS:
        raise UserError(f"decision {decision!r}: use accept, reject or more-evidence")
    parent = Path(parent).resolve()
    report = load(parent)
    all_entries = entries(store, report)
    if not 1 <= number <= len(all_entries):
        raise UserError(f"pooled claim {number}: {parent / POOLED_MD} numbers its claims 1 to {len(all_entries)}")
    entry = all_entries[number - 1]
    if not entry.claims:
        raise UserError(f"pooled claim {number}: none of its claims is in this memory (check --memory)")
    if not force:  # all or nothing: one copy already decided stops the decision on every copy
        for c in entry.claims:
            if c.status not in AWAITING:
                raise AlreadyReviewed(c)
    decided = [store.review(c.id, cast("Decision", decision), reviewer, note, force=force) for c in entry.claims]
    entry.claims = decided
    by_id = {c.id: c for c in decided}
    runs = {r.run_id: Path(r.run_dir) for r in report.runs}
    written, notes = [], []
    for e in entry.pooled.evidence:
        if e.claim_id is None or e.claim_id not in by_id:
            continue
        folder, why = _job_run_folder(parent, runs.get(e.run_id), e.run_id, e.claim_id)
        if folder is None:
            notes.append(why)
            continue
        record_in_run(folder, by_id[e.claim_id])
        written.append(folder)
    _record_in_parent(parent, report, entry, decided[0])
    return PooledDecided(entry, written, notes)


def _job_run_folder(parent: Path, run_dir: Path | None, run_id: str, claim_id: str) -> tuple[Path | None, str]:
    """The run folder when it is one of this job's (inside the parent, run.json naming the run) and its
    trace made the claim; else (None, why)."""
    if run_dir is None:
        return None, f"run {run_id} is not one of the job's runs"
    real = run_dir.resolve()
    settings = RunFolder(real).settings
    if real.parent != parent or settings.is_symlink() or not settings.is_file():
        return None, f"{run_dir} is not a run folder of {parent}"
    try:
        if json.loads(settings.read_text()).get("run_id") != run_id:
            return None, f"{run_dir} holds another run than {run_id}"
    except (OSError, ValueError, AttributeError):
        return None, f"{run_dir}: its run.json cannot be read"
    if not traced(RunFolder(real).trace, claim_id):
        return None, f"{run_dir}: its trace never made claim {claim_id}"
    return real, ""


def _record_in_parent(parent: Path, report: PooledReport, entry: PooledEntry, claim: Claim) -> None:
    """The decision in the parent's decisions.json (by pooled claim key) and pooled.md."""
    folder = RunFolder(parent)
    with folder.review_lock():
        decisions: dict[str, RunDecision] = folder.read_json(folder.DECISIONS) or {}
        decisions[entry.pooled.key] = {
            "status": claim.status,
            "reviewer": claim.reviewer,
            "note": claim.review_note or "",
            "reviewed_at": claim.reviewed_at,
        }
        folder.write_json(folder.DECISIONS, decisions)
        atomic_write(parent / POOLED_MD, markdown(report) + "\n" + decisions_markdown(decisions) + "\n")

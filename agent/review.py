"""Human review of claims: the queue, what a reviewer sees, and recording a decision.

A decision is the one thing that moves a claim to accepted, rejected or
needs_more_evidence (`MemoryStore.review`). Claim text is only ever displayed:
whatever a claim, a tool result or the target model's output says, nothing here
parses it for instructions. Once recorded, a decision is also written into the
run's folder (claims.json and the report's "Review decisions" section), but only
a folder that really is the claim's run folder (`run_folder`): a claim's
`run_dir` may come from an imported file, and must not steer writes into any
other folder.
"""

from __future__ import annotations

import getpass
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict, cast

from agent.run_folder import RunFolder, atomic_write
from tools.errors import UserError

if TYPE_CHECKING:
    from memory.records import Claim, ClaimStatus
    from memory.store import Decision, MemoryStore

AWAITING = ("supported", "proposed")
"""Statuses a reviewer still has to decide on."""
DECISIONS = {"accept": "accepted", "reject": "rejected", "more-evidence": "needs_more_evidence"}
STATUSES = ("proposed", "supported", "refuted", "accepted", "rejected", "needs_more_evidence")

_MD = re.compile(r"<!-- decisions -->.*?<!-- /decisions -->", re.DOTALL)
DECISIONS_FILE = RunFolder.DECISIONS


def reviewer_name(given: str | None) -> str:
    """--reviewer, else $INTERP_REVIEWER, else the login name."""
    name = (given or os.environ.get("INTERP_REVIEWER") or "").strip()
    if not name:
        try:
            name = getpass.getuser()
        except (KeyError, OSError):
            name = ""
    if not name:
        raise UserError("who is reviewing? give --reviewer NAME or set INTERP_REVIEWER")
    return name


def queue(store: MemoryStore, model: str | None = None, run: str | None = None) -> list[Claim]:
    """Claims awaiting a decision, across runs: causal first, then strongest effect over control."""
    from memory.records import Claim

    tier = {"causal": 0, "representational": 1, "observational": 2}
    out = [
        c
        for status in AWAITING
        for c in store.list("claim", model=model, status=status, run=run)
        if isinstance(c, Claim)
    ]
    return sorted(
        out,
        key=lambda c: (tier.get(c.evidence_tier, 3), -(abs(c.effect or 0) - abs(c.control or 0)), c.created_at, c.id),
    )


def listing(store: MemoryStore, status: str | None = None, model: str | None = None) -> list[Claim]:
    """Claims with a status (all when None), newest first."""
    if status is not None and status not in STATUSES:
        raise UserError(f"unknown status {status!r}; one of: {', '.join(STATUSES)}")
    from memory.records import Claim

    claims = [c for c in store.list("claim", model=model, status=status) if isinstance(c, Claim)]
    return sorted(claims, key=lambda c: (c.created_at, c.id), reverse=True)


def reproduce_command(claim: Claim) -> str:
    return f"interp reproduce {claim.id}"


class RunDecision(TypedDict):
    """A claim's review decision as a run's decisions.json holds it (claim id -> this)."""

    status: ClaimStatus
    """The claim's status after the review (accepted, rejected, needs_more_evidence)."""
    reviewer: str | None
    """Who decided."""
    note: str
    """The reviewer's note ('' for none)."""
    reviewed_at: str | None
    """When (ISO time)."""


def card(store: MemoryStore, claim: Claim) -> dict[str, Any]:
    """Everything a reviewer needs about one claim, as plain data."""
    experiments = []
    for eid in claim.experiment_ids:
        e = store.get(eid)
        experiments.append(
            {
                "id": eid,
                "tool": getattr(e, "tool", "?"),
                "summary": getattr(e, "summary", "(not in memory)"),
                "effect": getattr(e, "effect", None),
                "control": getattr(e, "control", None),
            }
        )
    run_dir, folder_note = run_folder(claim)
    links = {}
    if run_dir is not None:
        for name in (RunFolder.REPORT_HTML, RunFolder.REPORT_MD, RunFolder.TRACE):
            if (RunFolder(run_dir) / name).is_file():
                links[name] = str(RunFolder(run_dir) / name)
    criterion = " and ".join(
        f"{c['field']} {c['op']} {c['value']:g}" for c in (claim.criterion or {}).get("conditions", [])
    )
    return {
        "id": claim.id,
        "statement": claim.statement,
        "status": claim.status,
        "model_id": claim.model_id,
        "mechanism": claim.mechanism,
        "evidence_tier": claim.evidence_tier,
        "component": claim.component.model_dump(exclude_none=True),
        "effect": claim.effect,
        "control": claim.control,
        "criterion": criterion,
        "experiments": experiments,
        "run_id": claim.run_id,
        "links": links,
        "reproduce": reproduce_command(claim),
        "reviewer": claim.reviewer,
        "review_note": claim.review_note,
        "reviewed_at": claim.reviewed_at,
        "review_history": [e.model_dump(exclude_none=True) for e in claim.review_history],
        "run_folder_note": folder_note,
    }


def run_folder(claim: Claim) -> tuple[Path | None, str]:
    """(the claim's run folder, '') when `claim.run_dir` really is it, else (None, why not; '' for no run_dir).

    It is: an absolute path with no symlink and no `..` in it, a folder holding a
    run.json (not a link) whose run_id is the claim's run_id, and a trace.jsonl that made the claim.
    """
    if not claim.run_dir:
        return None, ""
    where = f"run folder {claim.run_dir!r}"
    path = Path(claim.run_dir)
    if not path.is_absolute():
        return None, f"{where} is not an absolute path"
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError):
        return None, f"{where} does not exist"
    if real != path:
        return None, f"{where} goes through a symlink or '..' (it resolves to {real})"
    if not real.is_dir():
        return None, f"{where} is not a folder"
    settings = RunFolder(real).settings
    if settings.is_symlink() or not settings.is_file():
        return None, f"{where} holds no run.json: it is not a run folder"
    try:
        run_id = json.loads(settings.read_text()).get("run_id")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        return None, f"{where}: its run.json cannot be read"
    if not claim.run_id or run_id != claim.run_id:
        return None, f"{where} belongs to run {run_id!r}, not to this claim's run {claim.run_id or '(none)'!r}"
    # A record can copy another run's id; only the run that made the claim has it in its trace (written as
    # the claim is made, before claims.json exists, so a live review passes too).
    if not traced(RunFolder(real).trace, claim.id):
        return None, f"{where} is run {run_id!r}, but that run's trace never made claim {claim.id}"
    return real, ""


def traced(trace: Path, claim_id: str) -> bool:
    """Whether a run's trace.jsonl records making `claim_id`."""
    try:
        with trace.open(encoding="utf-8") as f:
            for line in f:
                if claim_id in line:
                    event = json.loads(line)
                    if event.get("event") == "claim" and event.get("id") == claim_id:
                        return True
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        return False
    return False


@dataclass
class Decided:
    """A recorded decision and where it was written."""

    claim: Claim
    """The claim as stored, with the decision."""
    run_dir: Path | None
    """The run folder the decision was also written into (None: memory only)."""
    folder_note: str
    """Why the run folder was not updated ('' when it was, or the claim names none)."""


def decide(
    store: MemoryStore, claim_id: str, decision: str, reviewer: str, note: str = "", force: bool = False
) -> Decided:
    """Record a person's decision in memory (compare-and-set: AlreadyReviewed unless `force`),
    then in the claim's run folder when it verifiably is one."""
    if decision not in ("accept", "reject", "more-evidence"):
        raise UserError(f"decision {decision!r}: use accept, reject or more-evidence")
    claim = store.review(claim_id, cast("Decision", decision), reviewer, note, force=force)
    run_dir, why = run_folder(claim)
    if run_dir is None:
        return Decided(claim, None, f"the run folder was not updated: {why}" if why else "")
    try:
        record_in_run(run_dir, claim)
    except OSError as e:
        return Decided(claim, None, f"the run folder {run_dir} was not updated: {e.strerror or e}")
    except UserError as e:  # a review file there is a link that leads out of the folder
        return Decided(claim, None, f"the run folder {run_dir} was not updated: {e}")
    except ValueError as e:  # a decisions.json / claims.json that is not JSON text (json and UTF-8 errors)
        return Decided(
            claim,
            None,
            f"the run folder {run_dir} was not updated: a file there is not valid JSON ({type(e).__name__}: {e})",
        )
    return Decided(claim, run_dir, "")


def record_in_run(run_dir: Path, claim: Claim) -> None:
    """Write the decision into the run's decisions.json, claims.json and reports."""
    folder = RunFolder(run_dir)
    with folder.review_lock():
        decisions = load_decisions(run_dir)
        decisions[claim.id] = {
            "status": claim.status,
            "reviewer": claim.reviewer,
            "note": claim.review_note or "",
            "reviewed_at": claim.reviewed_at,
        }
        folder.write_json(folder.DECISIONS, decisions)
        claims = folder.read_json(folder.CLAIMS)
        if claims is not None:
            for c in claims:
                if c["id"] in decisions:
                    d = decisions[c["id"]]
                    c.update(
                        status=d["status"], reviewer=d["reviewer"], review_note=d["note"], reviewed_at=d["reviewed_at"]
                    )
            folder.write_json(folder.CLAIMS, claims)
        for report, block in (
            (folder.report_md, decisions_markdown(decisions)),
            (folder.report_html, decisions_html(decisions)),
        ):
            if report.is_file():
                text = report.read_text()
                if _MD.search(text):
                    atomic_write(report, _MD.sub(_literally(block), text, count=1))


def _literally(text: str) -> Callable[[re.Match[str]], str]:
    """A replacement for re.sub that inserts `text` as it is (a backslash in it is not an escape)."""
    return lambda _match: text


def load_decisions(run_dir: Path) -> dict[str, RunDecision]:
    decisions = RunFolder(run_dir).read_json(RunFolder.DECISIONS)
    return {} if decisions is None else decisions


def decisions_markdown(decisions: dict[str, RunDecision]) -> str:
    rows = ["<!-- decisions -->", "## Review decisions", ""]
    if not decisions:
        rows.append("None yet: `interp review` shows the queue.")
    else:
        rows += ["| claim | decision | reviewer | note | when |", "|---|---|---|---|---|"]
        rows += [
            f"| `{cid}` | **{d['status']}** | {d['reviewer']} | {d['note'] or '-'} | {d['reviewed_at']} |"
            for cid, d in sorted(decisions.items())
        ]
    return "\n".join([*rows, "<!-- /decisions -->"])


def decisions_html(decisions: dict[str, RunDecision]) -> str:
    if not decisions:
        body = "<p>None yet: <code>interp review</code> shows the queue.</p>"
    else:
        body = (
            "<table><tr><th>claim</th><th>decision</th><th>reviewer</th><th>note</th><th>when</th></tr>"
            + "".join(
                f"<tr><td><code>{escape(cid)}</code></td><td><b>{escape(d['status'])}</b></td>"
                f"<td>{escape(d['reviewer'] or '')}</td><td>{escape(d['note'] or '-')}</td>"
                f"<td>{escape(d['reviewed_at'] or '')}</td></tr>"
                for cid, d in sorted(decisions.items())
            )
            + "</table>"
        )
    return f"<!-- decisions --><section id='decisions'><h2>Review decisions</h2>{body}</section><!-- /decisions -->"

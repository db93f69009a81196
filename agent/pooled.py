"""The pooled verdict over N independent runs of one question (`interp investigate --runs N`).

Each run's claims and tested hypotheses are grouped by what they claim (agent/pooled_keys.py: the mechanism
and the normalised component, wording aside; features of each run's own SAE matched by hook, output and
token group). A pooled claim is any key some run claimed: how many runs supported it, how many tested it and
refuted it (or found it inconclusive), its replication rate (supporting runs / all runs) and each run's
evidence. Sorted by replication, then by how many runs tested it.

The parent folder holds `pooled.json` (PooledReport) and `pooled.md`; each run has its own folder in it.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from agent.parallel.investigation_task import HypothesisOutcome, RunOutcome
from agent.pooled_keys import canonical_key, claim_key, unify_keys
from agent.run_folder import atomic_write
from tools.errors import UserError

POOLED_JSON = "pooled.json"
POOLED_MD = "pooled.md"
Outcome = Literal["supported", "refuted", "inconclusive", "error", "untested"]
_RANK: dict[Outcome, int] = {"supported": 0, "refuted": 1, "inconclusive": 2, "error": 3, "untested": 4}
_TESTED: dict[str, Outcome] = {
    "supported": "supported",
    "refuted": "refuted",
    "inconclusive": "inconclusive",
    "error": "error",
}
"""Hypothesis statuses that mean it was tested; any other (skipped, open, untested) is `untested`."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


class RunEvidence(_Model):
    """One run's part in a pooled claim."""

    run_id: str
    """The run."""
    run_dir: str
    """Its folder."""
    seed: int
    """Its seed."""
    outcome: Outcome
    """supported (it made the claim), refuted / inconclusive / error (it tested it and it failed), untested."""
    claim_id: str | None = None
    """Its claim's id, when it made one (memory's id: content hash of model, statement, component, weights)."""
    statement: str = ""
    """Its wording of the claim or hypothesis."""
    evidence_tier: str | None = None
    """The tier its claim reached."""
    effect: float | None = None
    """Its key experiment's effect."""
    control: float | None = None
    """Its key experiment's control."""
    experiment_id: str = ""
    """Its test's experiment id."""
    note: str = ""
    """Why it was refuted or inconclusive (the judged fields), when it was."""


class PooledClaim(_Model):
    """A claim as N independent runs saw it."""

    key: str
    """The key it is pooled under (agent.pooled_keys): mechanism and component; for features of several
    runs' own SAEs, the first run's key."""
    mechanism: str
    """trigger, context_marker, head, heads, feature, ..."""
    component: dict[str, Any]
    """The component claimed."""
    statement: str
    """The claim in words (the first supporting run's wording)."""
    runs: int
    """Runs in the job."""
    supported: int
    """Runs that made the claim."""
    refuted: int
    """Runs that tested it and refuted it."""
    inconclusive: int
    """Runs that tested it and could not decide (or whose test failed with an error)."""
    tested: int
    """Runs that tested it (supported + refuted + inconclusive)."""
    replication: float
    """supported / runs."""
    claim_ids: list[str]
    """The runs' claim ids, distinct (runs wording a claim alike share one memory record)."""
    evidence: list[RunEvidence]
    """Each run's part, in seed order."""


class RunSummary(_Model):
    """One run of the job, in a line."""

    run_id: str
    """The run."""
    run_dir: str
    """Its folder."""
    seed: int
    """Its seed."""
    claims: int
    """Claims it made."""
    hypotheses: int
    """Hypotheses it registered."""
    stop_reason: str
    """Why it stopped."""
    budget_seconds_used: float
    """Budget it used."""
    resumed: bool
    """Whether it was continued after its worker died."""


class PooledReport(_Model):
    """The pooled verdict of a job."""

    question: str
    """The question every run was asked."""
    model: str
    """The target spec."""
    runs: list[RunSummary]
    """The runs, in seed order."""
    claims: list[PooledClaim]
    """Pooled claims, most replicated first."""
    seconds: float = 0.0
    """Wall clock of the whole job."""
    workers: str = ""
    """Where it ran: `in-process`, `local Ray, N workers` or `Ray at ADDRESS`."""


def _run_outcome(hyps: list[HypothesisOutcome]) -> Outcome:
    """A run's verdict on a key it tested under several hypotheses: the best outcome any of them had."""
    best: Outcome = "untested"
    for h in hyps:
        status = _TESTED.get(h.status, "untested")
        if _RANK[status] < _RANK[best]:
            best = status
    return best


def pool(outcomes: Iterable[RunOutcome], question: str, model: str) -> PooledReport:
    """Group every run's claims and tested hypotheses by canonical key; one PooledClaim per claimed key."""
    runs = sorted(outcomes, key=lambda o: (o.seed, o.run_id))
    claimed: dict[str, tuple[str, dict[str, Any], str]] = {}
    per_run: list[tuple[RunOutcome, dict[str, list[HypothesisOutcome]], dict[str, dict[str, Any]]]] = []
    pooled_as = unify_keys(
        [
            (claim_key(c), c.get("mechanism") or "other", c.get("component") or {}, r.run_dir)
            for r in runs
            for c in r.claims
        ],
        [
            (canonical_key(h.mechanism, h.component, h.statement), h.mechanism, h.component, r.run_dir)
            for r in runs
            for h in r.hypotheses
            if h.topic != "incidental"
        ],
    )
    for run in runs:
        claims_by_key: dict[str, dict[str, Any]] = {}
        claim_key_of_hyp: dict[str, str] = {}
        for c in run.claims:
            key = pooled_as[claim_key(c)]
            claims_by_key.setdefault(key, c)
            claim_key_of_hyp[c.get("hypothesis_id", "")] = key
            component = {k: v for k, v in (c.get("component") or {}).items() if v is not None}
            claimed.setdefault(key, (c.get("mechanism") or "other", component, c["statement"]))
        hyps_by_key: dict[str, list[HypothesisOutcome]] = {}
        for h in run.hypotheses:
            if h.topic == "incidental":
                continue
            key = claim_key_of_hyp.get(h.id) or pooled_as[canonical_key(h.mechanism, h.component, h.statement)]
            hyps_by_key.setdefault(key, []).append(h)
        per_run.append((run, hyps_by_key, claims_by_key))
    pooled = []
    for key, (mechanism, component, statement) in claimed.items():
        evidence = []
        for run, hyps_by_key, claims_by_key in per_run:
            made = claims_by_key.get(key)
            hyps = hyps_by_key.get(key, [])
            if made is not None:
                evidence.append(
                    RunEvidence(
                        run_id=run.run_id,
                        run_dir=run.run_dir,
                        seed=run.seed,
                        outcome="supported",
                        claim_id=made["id"],
                        statement=made["statement"],
                        evidence_tier=made.get("evidence_tier"),
                        effect=made.get("effect"),
                        control=made.get("control"),
                        experiment_id=(made.get("experiment_ids") or [""])[0],
                    )
                )
                continue
            outcome = _run_outcome(hyps)
            tested = next((h for h in hyps if h.status == outcome), None)
            evidence.append(
                RunEvidence(
                    run_id=run.run_id,
                    run_dir=run.run_dir,
                    seed=run.seed,
                    outcome=outcome,
                    statement=tested.statement if tested else "",
                    experiment_id=tested.experiment_id if tested else "",
                    note=tested.note if tested else "",
                )
            )
        supported = sum(e.outcome == "supported" for e in evidence)
        refuted = sum(e.outcome == "refuted" for e in evidence)
        inconclusive = sum(e.outcome in ("inconclusive", "error") for e in evidence)
        pooled.append(
            PooledClaim(
                key=key,
                mechanism=mechanism,
                component=component,
                statement=statement,
                runs=len(runs),
                supported=supported,
                refuted=refuted,
                inconclusive=inconclusive,
                tested=supported + refuted + inconclusive,
                replication=round(supported / len(runs), 3) if runs else 0.0,
                claim_ids=list(dict.fromkeys(e.claim_id for e in evidence if e.claim_id)),
                evidence=evidence,
            )
        )
    pooled.sort(key=lambda p: (-p.replication, -p.tested, p.key))
    summaries = [
        RunSummary(
            run_id=r.run_id,
            run_dir=r.run_dir,
            seed=r.seed,
            claims=len(r.claims),
            hypotheses=len(r.hypotheses),
            stop_reason=r.stop_reason,
            budget_seconds_used=r.budget_seconds_used,
            resumed=r.resumed,
        )
        for r in runs
    ]
    return PooledReport(question=question, model=model, runs=summaries, claims=pooled)


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.3g}"


def _component(c: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in c.items()) or "-"


def markdown(report: PooledReport) -> str:
    """pooled.md: the pooled claims most replicated first, then each one's evidence run by run."""
    n = len(report.runs)
    out = [
        f"# Pooled report: {n} independent runs",
        "",
        f"- question: {report.question}",
        f"- model: `{report.model}`",
        f"- runs: seeds {', '.join(str(r.seed) for r in report.runs)} ({report.workers or 'in-process'}; "
        f"{report.seconds:.1f} s wall clock)",
        "",
        "Each run investigated the question on its own (it did not recall the others' attempts). A claim's "
        "replication is the share of runs that made it; refuted / inconclusive count the runs that tested it "
        "and did not support it.",
        "",
        "## Claims",
        "",
    ]
    if not report.claims:
        out.append("No run made a claim.")
    else:
        out += [
            "| # | replication | supported | refuted | inconclusive | mechanism | component | claim |",
            "|---|---|---|---|---|---|---|---|",
        ]
        out += [
            f"| {i} | **{p.supported}/{p.runs}** ({p.replication:.0%}) | {p.supported} | {p.refuted} | "
            f"{p.inconclusive} | {p.mechanism} | {_component(p.component)} | {p.statement} |"
            for i, p in enumerate(report.claims, 1)
        ]
        out += ["", "## Evidence, run by run", ""]
        for i, p in enumerate(report.claims, 1):
            out += [f"### {i}. {p.mechanism}: {_component(p.component)}", ""]
            for e in p.evidence:
                what = (
                    f"claim `{e.claim_id}` ({e.evidence_tier}; effect {_fmt(e.effect)}, control {_fmt(e.control)}; "
                    f"experiment `{e.experiment_id}`)"
                    if e.outcome == "supported"
                    else f"{e.note or '-'}" + (f" (experiment `{e.experiment_id}`)" if e.experiment_id else "")
                )
                out.append(f"- seed {e.seed} (`{e.run_id}`): **{e.outcome}**: {what}")
            out.append("")
    out += [
        "## Runs",
        "",
        "| seed | run | claims | hypotheses | stopped | budget used | resumed |",
        "|---|---|---|---|---|---|---|",
    ]
    out += [
        f"| {r.seed} | [{r.run_id}]({Path(r.run_dir).name}/report.md) | {r.claims} | {r.hypotheses} | "
        f"{r.stop_reason} | {r.budget_seconds_used:.1f} s | {'yes' if r.resumed else 'no'} |"
        for r in report.runs
    ]
    return "\n".join(out) + "\n"


def write(report: PooledReport, parent: Path) -> tuple[Path, Path]:
    """pooled.json and pooled.md in the parent folder (each replaced atomically)."""
    parent = Path(parent)
    atomic_write(parent / POOLED_JSON, report.model_dump_json(indent=2))
    atomic_write(parent / POOLED_MD, markdown(report))
    return parent / POOLED_JSON, parent / POOLED_MD


def load(parent: Path) -> PooledReport:
    """The pooled report of a parent folder, or a UserError saying what the folder is not."""
    path = Path(parent) / POOLED_JSON
    if not path.is_file():
        raise UserError(
            f"{parent} holds no {POOLED_JSON}: give the parent folder an `interp investigate --runs N` printed"
        )
    try:
        return PooledReport.model_validate_json(path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise UserError(f"{path} is not a pooled report ({type(e).__name__}: {e})") from None

"""The run folder's readable output: claims.json, report.md and report.html (built by agent.html).

Negative results are part of the report: refuted, inconclusive, untested and
skipped hypotheses, refused and failed calls, and why the run stopped.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from agent.question import Question
from agent.run_folder import RunFolder, atomic_write

if TYPE_CHECKING:
    from agent.context import RunContext
    from agent.state import InvestigationState


def _fmt(v: object) -> str:
    return "-" if v is None else f"{v:.3g}" if isinstance(v, float) else str(v)


def _component(c: dict[str, Any]) -> str:
    comp = {k: v for k, v in (c.get("component") or {}).items() if v is not None}
    return ", ".join(f"{k}={v}" for k, v in comp.items()) or "-"


def markdown(state: InvestigationState, ctx: RunContext) -> str:
    q, b = state["question"], ctx.budget
    claims, hyps = state.get("claims", []), state.get("hypotheses", [])
    obs, errors = state.get("observations", []), state.get("errors", [])
    # the question as understood opens the report: a reader checks it was the question meant before the claims
    understood = {
        "behaviour": "why the model gives its answer on the given prompts",
        "concept": "where the concept (positive vs negative prompts) is represented, and steering it",
        "component": f"what {_component(q)} does",
        "audit": "a search for hidden triggers and context-dependent behaviour",
    }[q["kind"]]
    out = [
        f"# Investigation {state['run_id']}",
        "",
        "## Question",
        "",
        f"- **Asked**: {q['text']}",
        f"- **Understood as**: {q['kind']} — {understood}",
        f"- **Metric**: {Question.model_validate(q).describe_metric()}",
        f"- **Prompts**: {len(q.get('prompts', []))} "
        f"{('(' + q['prompts_source'] + ')') if q.get('prompts_source') else ''}"
        f"{'; positive ' + str(len(q['positive'])) if q.get('positive') else ''}"
        f"{', negative ' + str(len(q['negative'])) if q.get('positive') else ''}"
        f"{'; ' + str(len(q['corrupted'])) + ' paired corrupted prompts' if q.get('corrupted') else ''}"
        + "".join(
            f" ({k} set: a seeded sample of the {q[k + '_given']} given)"
            for k in ("prompts", "positive", "negative")
            if q.get(k + "_given")
        ),
        f"- **Model**: `{ctx.target.model_id}` (weights {ctx.target.weights_hash[:12]})",
        f"- **Budget**: {b.elapsed():.1f} s of {b.wall_seconds:g} s ({b.overshoot():.1%} over), "
        f"{b.spent_forward_tokens} forward tokens"
        + (f" of {b.max_forward_tokens}" if b.max_forward_tokens else "")
        + f", ${b.spent_usd:.4f}"
        + (f" of ${b.max_usd:g}" if b.max_usd else "")
        + f"; {b.refused} call(s) refused, {b.stopped_at_deadline} stopped at their deadline",
        f"- **Load**: loading took {b.load_seconds:.1f} s (not counted in the budget): the model loaded and "
        f"its speed measured before the clock started; wall time in all {b.load_seconds + b.elapsed():.1f} s"
        + (f"; measured {ctx.speed.describe()}" if ctx.speed is not None else ""),
        f"- **Brain**: {ctx.brain.name}",
        f"- **Stopped**: {state.get('stop_reason') or '-'}",
        f"- **Review**: {ctx.settings.review}"
        + (
            " — claims are queued as `supported` for `interp review`; nothing is established until a person accepts it"
            if ctx.settings.review == "queue"
            else ""
        ),
        "",
    ]
    if state.get("summary"):
        out += ["## Brain's summary", "", state["summary"], ""]
    out += ["## Claims", ""]
    if claims:
        out += ["| id | claim | tier | mechanism | component | effect | control |", "|---|---|---|---|---|---|---|"]
        out += [
            f"| `{c['id']}` | {c['statement']} | {c['evidence_tier']} | {c.get('mechanism') or '-'} | "
            f"{_component(c)} | {_fmt(c['effect'])} | {_fmt(c['control'])} |"
            for c in claims
        ]
    elif state.get("incidental"):
        out += [
            "No hypothesis that answers the question met its pre-registered criterion: no claims "
            "(incidental findings are under Observations)."
        ]
    else:
        out += ["No hypothesis met its pre-registered criterion: no claims."]
    for r in state.get("reviews", []):
        out.append(
            f"- reviewed live: `{r['claim_id']}` -> {r['status']} by {r['reviewer']}"
            + (f" ({r['not_recorded']})" if r.get("not_recorded") else "")
        )
    out += observations_section(state.get("incidental", []))
    out += [
        "",
        "## Hypotheses (pre-registered)",
        "",
        "| status | hypothesis | test | criterion | result |",
        "|---|---|---|---|---|",
    ]
    for h in hyps:
        crit = " and ".join(f"{c['field']} {c['op']} {c['value']:g}" for c in h["plan"]["criterion"]["conditions"])
        topic = " (incidental)" if h["plan"].get("topic") == "incidental" else ""
        out.append(
            f"| **{h['status']}**{topic} | {h['plan']['statement']} | {h['plan']['test']['tool']} | {crit} | "
            f"{h['note'] or '-'} |"
        )
    if not hyps:
        out.append("| - | none registered | | | |")
    untested = [h for h in hyps if h["status"] in ("untested", "skipped")]
    out += ["", "## Not tested", ""]
    out += [f"- {h['plan']['statement']} — {h['note']}" for h in untested] or ["Everything registered was tested."]
    abandoned = [k for k, v in state.get("lines", {}).items() if v["status"] == "abandoned"]
    if abandoned:
        out += [f"- line of attack abandoned (fail fast): {', '.join(abandoned)}"]
    out += ["", "## Experiments", "", "| # | tool | summary | tokens | s |", "|---|---|---|---|---|"]
    out += [
        f"| {i} | {o['tool']} | {o['summary']} | {o['forward_tokens']} | {o['seconds']:.2f} |"
        for i, o in enumerate(obs, 1)
    ]
    out += ["", "## Errors", ""]
    out += [f"- step {e['step']} ({e['what']}): {e['message']}" for e in errors] or ["None."]
    recall = state.get("recall", {})
    if any(recall.values()):
        out += ["", "## From memory", ""]
        out += [f"- accepted earlier: {c['statement']}" for c in recall.get("accepted", [])]
        out += [f"- rejected earlier: {c['statement']}" for c in recall.get("rejected", [])]
        out += [f"- tried earlier ({h['status']}): {h['statement']}" for h in recall.get("tried", [])]
    out += [
        "",
        "Full results: `results/ID.json`; every decision and call: `trace.jsonl`; "
        "the shareable page with figures: `report.html`.",
        "",
    ]
    return "\n".join(out)


def observations_section(found: list[dict[str, Any]]) -> list[str]:
    """Incidental findings: supported by their tests, but about something the question did not ask.
    Apart from the claims: not reviewed, not in claims.json, not scored."""
    if not found:
        return []
    out = [
        "",
        "## Observations",
        "",
        "Incidental findings: each met its pre-registered criterion, but does not answer the question, so it "
        "is not a claim (not queued for review, not in claims.json).",
        "",
        "| id | observation | why it is incidental | tier | mechanism | component | effect | control |",
        "|---|---|---|---|---|---|---|---|",
    ]
    out += [
        f"| `{f['id']}` | {f['statement']} | {f.get('why_incidental') or '-'} | {f['evidence_tier']} | "
        f"{f.get('mechanism') or '-'} | {_component(f)} | {_fmt(f['effect'])} | {_fmt(f['control'])} |"
        for f in found
    ]
    return out


def write_report(state: InvestigationState, ctx: RunContext) -> None:
    """claims.json, report.md and report.html; review decisions already made are kept in all three."""
    from agent.html import page
    from agent.review import decisions_html, decisions_markdown, load_decisions

    folder = RunFolder(ctx.run_dir)
    md = markdown(state, ctx)
    # under the review lock: a reviewer deciding a claim of this run meanwhile is read here, not overwritten
    with folder.review_lock():
        decisions = load_decisions(ctx.run_dir)
        claims = [dict(c) for c in state.get("claims", [])]
        for c in claims:
            if c["id"] in decisions:
                d = decisions[c["id"]]
                c.update(
                    status=d["status"], reviewer=d["reviewer"], review_note=d["note"], reviewed_at=d["reviewed_at"]
                )
        atomic_write(folder.claims, json.dumps(claims, indent=2))
        atomic_write(folder.report_md, md + "\n" + decisions_markdown(decisions) + "\n")
        # the decisions block is marked, so `interp review` can update it in place
        atomic_write(folder.report_html, page.render(state, ctx, md, decisions_html(decisions), decisions))

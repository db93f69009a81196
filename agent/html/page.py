"""report.html: the page a researcher shares.

Order: the question, model, budget and load time; the claims, each with its verdict, evidence tier,
effect against control and the figures of the experiment that decided it; then the brain's summary,
incidental observations, other experiments' figures, hypotheses, what was not tested, errors, the
experiments table and the review decisions. One experiment id names the same experiment in a
claim, its figure and its row of the experiments table (`#exp-ID` links between them).
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.html.figures import Figure, draw, effect_vs_control
from agent.run_folder import RunFolder

if TYPE_CHECKING:
    from markdown_it import MarkdownIt

    from agent.context import RunContext
    from agent.review import RunDecision
    from agent.state import HypothesisState, InvestigationState, Observation

LONG = 160
"""Characters past which a table cell is collapsed into <details>."""

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;max-width:1180px;margin:1.5em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em;margin:.2em 0}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
.meta{color:#444;margin:.3em 0}.meta span{margin-right:1.1em;white-space:nowrap}
.claim{border:1px solid #ccd;border-left:5px solid #1f77b4;border-radius:4px;padding:.6em 1em;margin:1em 0}
.claim h3{margin:.2em 0 .5em;font-size:1.08em}
.facts{display:grid;grid-template-columns:max-content 1fr;gap:.15em 1em;margin:.3em 0 .6em}
.facts dt{color:#555}.facts dd{margin:0}
.verdict{font-weight:bold}.tier{background:#eef;border-radius:3px;padding:0 .35em}
figure{margin:.6em 0;overflow-x:auto}figure svg{max-width:100%;height:auto;display:block}
figcaption{font-size:.92em;color:#333;margin-bottom:.35em}
table{border-collapse:collapse;margin:.5em 0;font-size:.93em}td,th{border:1px solid #ddd;padding:.25em .5em;
vertical-align:top;text-align:left}th{background:#f4f4f4}code{font-size:.92em}
details>summary{cursor:pointer}
.figs{display:flex;flex-wrap:wrap;gap:1.2em;align-items:flex-start}.figs>div{flex:0 0 auto;max-width:100%}
"""


def _md() -> MarkdownIt:
    from markdown_it import MarkdownIt

    # raw HTML off: statements and notes come from a brain and are shown, never run
    return MarkdownIt("commonmark", {"html": False}).enable("table")


def sections(md: str) -> dict[str, str]:
    """The markdown report's `## ` sections by heading (the heading line itself left out)."""
    out = {}
    for part in md.split("\n## ")[1:]:
        head, _, body = part.partition("\n")
        out[head.strip()] = body
    return out


def experiment_inputs(run_dir: Path) -> dict[str, dict[str, Any]]:
    """Experiment id -> the input its tool ran with, from trace.jsonl (a call is followed by its result)."""
    from agent.trace import Trace

    inputs, last = {}, {}
    for e in Trace(RunFolder(run_dir).trace).read():
        if e.get("event") == "call":
            last[e.get("tool")] = e.get("input") or {}
        elif e.get("event") == "result" and e.get("experiment"):
            inputs[e["experiment"]] = last.get(e.get("tool"), {})
    return inputs


def all_figures(state: InvestigationState, run_dir: Path) -> dict[str, list[Figure]]:
    """Experiment id -> its figures, for every observation with a stored result."""
    inputs = experiment_inputs(run_dir)
    out = {}
    for o in state.get("observations", []):
        path = RunFolder(run_dir).result(o["id"])
        if path.is_file():
            out[o["id"]] = draw(
                o["id"], o["tool"], json.loads(path.read_text()), inputs.get(o["id"], {}), state["question"]
            )
    return out


def _cell(text: str) -> str:
    """A table cell's text, collapsed into <details> when long (the first words stay visible)."""
    if len(text) <= LONG:
        return escape(text)
    cut = text.rfind(" ", 0, LONG - 40)
    return f"<details><summary>{escape(text[: cut if cut > 0 else LONG - 40])} …</summary>{escape(text)}</details>"


def _fmt(v: object) -> str:
    return "-" if v is None else f"{v:.3g}" if isinstance(v, float) else escape(str(v))


def _component(c: dict[str, Any]) -> str:
    comp = {k: v for k, v in (c.get("component") or {}).items() if v is not None}
    return ", ".join(f"{k}={v}" for k, v in comp.items()) or "-"


def _figure(f: Figure) -> str:
    return (
        f"<figure class='experiment-figure' data-experiment='{escape(f.experiment_id)}' data-tool='{f.tool}'>"
        f"<figcaption><b>{escape(f.title)}</b> — experiment <a href='#exp-{escape(f.experiment_id)}'>"
        f"<code>{escape(f.experiment_id)}</code></a>. {escape(f.caption)}</figcaption>{f.svg}</figure>"
    )


def claim_card(
    c: dict[str, Any], hyp: HypothesisState | None, figs: list[Figure], decision: RunDecision | None, tool: str
) -> str:
    """One claim: statement, verdict, tier, effect vs control, the deciding experiment and its figures."""
    eid = (c.get("experiment_ids") or [""])[0]
    verdict = (hyp["status"] if hyp else "") or c.get("status") or "-"
    review = (
        f"{escape(decision['status'])} by {escape(decision['reviewer'] or '?')}"
        if decision
        else "not yet reviewed (<a href='#decisions'>review decisions</a>)"
    )
    test = hyp["note"] if hyp else ""
    facts = [
        ("verdict", f"<span class='verdict'>{escape(verdict)}</span> by its pre-registered test; review: {review}"),
        ("evidence tier", f"<span class='tier'>{escape(c['evidence_tier'])}</span>"),
        ("effect vs control", f"{_fmt(c.get('effect'))} vs {_fmt(c.get('control'))}"),
        ("mechanism", escape(c.get("mechanism") or "-")),
        ("component", f"<code>{escape(_component(c))}</code>"),
        (
            "decided by",
            f"experiment <a href='#exp-{escape(eid)}'><code>{escape(eid)}</code></a>"
            + (f" — {_cell(test)}" if test else ""),
        ),
    ]
    dl = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts)
    if not figs and isinstance(c.get("effect"), (int, float)):
        # a tool without figures of its own, or a result missing from the run folder: the claim's
        # effect and control are still known
        figs = [effect_vs_control(eid, tool, c["effect"], c.get("control"), "the claim's effect measure")]
    return (
        f"<article class='claim' id='{escape(c['id'])}' data-claim='{escape(c['id'])}' "
        f"data-experiment='{escape(eid)}'><h3>{escape(c['statement'])}</h3><dl class='facts'>{dl}</dl>"
        f"{''.join(_figure(f) for f in figs)}<p><small>claim <code>{escape(c['id'])}</code></small></p></article>"
    )


def _hypotheses(hyps: list[HypothesisState]) -> str:
    if not hyps:
        return "<p>None registered.</p>"
    rows = []
    for h in hyps:
        crit = " and ".join(f"{c['field']} {c['op']} {c['value']:g}" for c in h["plan"]["criterion"]["conditions"])
        topic = " (incidental)" if h["plan"].get("topic") == "incidental" else ""
        exp = (
            f"<a href='#exp-{escape(h['experiment_id'])}'><code>{escape(h['experiment_id'])}</code></a>"
            if h.get("experiment_id")
            else "-"
        )
        rows.append(
            f"<tr><td><b>{escape(h['status'])}</b>{topic}</td><td>{_cell(h['plan']['statement'])}</td>"
            f"<td>{escape(h['plan']['test']['tool'])}</td><td>{escape(crit)}</td>"
            f"<td>{_cell(h['note'] or '-')}</td><td>{exp}</td></tr>"
        )
    return (
        "<table><tr><th>status</th><th>hypothesis</th><th>test</th><th>criterion</th><th>result</th>"
        f"<th>experiment</th></tr>{''.join(rows)}</table>"
    )


def _experiments(obs: list[Observation], figs: dict[str, list[Figure]], claim_of: dict[str, str]) -> str:
    """One row per experiment, anchored `exp-ID`; its figure link goes to the claim it decided, if any."""
    if not obs:
        return "<p>None ran.</p>"

    def link(eid: str) -> str:
        if not figs.get(eid):
            return "-"
        return f"<a href='#{escape(claim_of.get(eid) or 'fig-' + eid)}'>figure</a>"

    rows = "".join(
        f"<tr id='exp-{escape(o['id'])}'><td>{i}</td><td><code>{escape(o['id'])}</code></td>"
        f"<td>{escape(o['tool'])}</td>"
        f"<td>{_cell(o['summary'])}</td><td>{o['forward_tokens']}</td><td>{o['seconds']:.2f}</td>"
        f"<td>{link(o['id'])}</td></tr>"
        for i, o in enumerate(obs, 1)
    )
    return (
        "<table><tr><th>#</th><th>experiment</th><th>tool</th><th>summary</th><th>forward tokens</th>"
        f"<th>s</th><th>figure</th></tr>{rows}</table>"
    )


def render(
    state: InvestigationState, ctx: RunContext, md: str, decisions_block: str, decisions: dict[str, RunDecision]
) -> str:
    """The whole page; `decisions_block` is review.decisions_html's marked block (updated in place later)."""
    q, b = state["question"], ctx.budget
    sec = sections(md)
    mdi = _md()
    figs = all_figures(state, ctx.run_dir)
    hyps = {h["id"]: h for h in state.get("hypotheses", [])}
    claims = state.get("claims", [])
    claim_of = {(c.get("experiment_ids") or [""])[0]: c["id"] for c in reversed(claims)}
    decided = set(claim_of)
    meta = [
        f"model <code>{escape(ctx.target.model_id)}</code>",
        f"question: {escape(q['kind'])}",
        f"budget: {b.elapsed():.1f} s of {b.wall_seconds:g} s used",
        f"model load: {b.load_seconds:.1f} s (not charged)",
        f"brain: {escape(ctx.brain.name)}",
        f"stopped: {escape(state.get('stop_reason') or '-')}",
        f"run <code>{escape(state['run_id'])}</code>",
    ]
    out = [
        f"<header><h1>{escape(q['text'])}</h1><p class='meta'>" + " ".join(f"<span>{m}</span>" for m in meta) + "</p>"
        f"<details><summary>Question as understood, prompts, budget and load in full</summary>"
        f"{mdi.render(sec.get('Question', ''))}</details></header>",
        f"<section id='claims'><h2>Claims ({len(claims)})</h2>",
    ]
    if claims:
        tools = {o["id"]: o["tool"] for o in state.get("observations", [])}
        for c in claims:
            eid = (c.get("experiment_ids") or [""])[0]
            out.append(
                claim_card(
                    c,
                    hyps.get(c.get("hypothesis_id", "")),
                    figs.get(eid, []),
                    decisions.get(c["id"]),
                    tools.get(eid, "experiment"),
                )
            )
    else:
        out.append(
            f"<p>{escape(sec.get('Claims', '').strip().splitlines()[0] if sec.get('Claims') else 'No claims.')}</p>"
        )
    out.append("</section>")
    for name in ("Brain's summary", "Observations"):
        if name in sec:
            out.append(f"<section><h2>{escape(name)}</h2>{mdi.render(sec[name])}</section>")
    others = [f for eid, fs in figs.items() if eid not in decided for f in fs]
    if others:
        # the anchor of an experiment's figures is on its first figure; claim figures link to the table instead
        seen: set[str] = set()
        parts = []
        for f in others:
            anchor = f" id='fig-{escape(f.experiment_id)}'" if f.experiment_id not in seen else ""
            seen.add(f.experiment_id)
            parts.append(f"<div{anchor}>{_figure(f)}</div>")
        out.append(
            f"<section id='figures'><h2>Other experiments</h2><div class='figs'>{''.join(parts)}</div></section>"
        )
    out.append(
        "<section id='hypotheses'><h2>Hypotheses (pre-registered)</h2>"
        f"{_hypotheses(state.get('hypotheses', []))}</section>"
    )
    for name in ("Not tested", "Errors", "From memory"):
        if name in sec:
            out.append(f"<section><h2>{escape(name)}</h2>{mdi.render(sec[name])}</section>")
    out.append(
        "<section id='experiments'><h2>Experiments</h2>"
        f"{_experiments(state.get('observations', []), figs, claim_of)}"
        "<p>Full results: <code>results/ID.json</code>; every decision and call: <code>trace.jsonl</code>.</p>"
        "</section>"
    )
    out.append(decisions_block)
    title = f"{q['text']} — {ctx.target.model_id} — interp-agent report"
    return (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<meta name='viewport' content='width=device-width,initial-scale=1'><title>{escape(title)}</title>"
        f"<style>{CSS}</style></head><body>{''.join(out)}</body></html>"
    )

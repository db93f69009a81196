"""`interp review` (the keyboard-driven queue), `review list`, `review decide`, and `interp reproduce`.

Only a person's decision changes a claim's review status; everything a claim
or a model wrote is displayed as text, never acted on.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from agent.cli.memory import JsonOpt, MemoryOpt, _store
from agent.cli.output import console, err_console, print_json, quiet_library_warnings
from tools.errors import UserError

if TYPE_CHECKING:
    from agent.review import Decided
    from memory.records import Claim
    from memory.store import MemoryStore

T = TypeVar("T")

app = typer.Typer(
    help="Review what agents found: accept, reject or ask for more evidence. "
    "With no sub-command: the interactive queue.",
    invoke_without_command=True,
)

ReviewerOpt = Annotated[
    str | None,
    typer.Option(
        "--reviewer", help="Your name, recorded with each decision (default: $INTERP_REVIEWER, else your login)."
    ),
]
# Escaped: rich reads "[a]" as a markup tag and would print "ccept".
KEYS = r"\[a]ccept  \[r]eject  \[m]ore evidence (each asks for a note)   \[n]ext  \[p]revious  \[x] reproduce  \[q]uit"


@app.callback()
def interactive(
    ctx: typer.Context,
    memory: MemoryOpt = None,
    reviewer: ReviewerOpt = None,
    model: Annotated[str | None, typer.Option(help="Only claims about this model id.")] = None,
    run: Annotated[str | None, typer.Option(help="Only claims of this run id.")] = None,
    pooled: Annotated[
        str | None,
        typer.Option(
            "--pooled",
            help="The parent folder of `interp investigate --runs N`: each pooled claim once, the decision "
            "recorded against every run's copy.",
        ),
    ] = None,
) -> None:
    """The queue of claims awaiting review, across runs, one claim at a time."""
    if ctx.invoked_subcommand is not None:
        return
    from agent.review import queue, reviewer_name

    if not sys.stdin.isatty():
        raise UserError(
            "the review queue needs a terminal; without one use `interp review list` and "
            "`interp review decide CLAIM_ID accept|reject|more-evidence --note TEXT` "
            "(a pooled job: `interp review pooled DIR` and `interp review pooled DIR N accept --note TEXT`)"
        )
    name = reviewer_name(reviewer)
    store = _store(memory)
    if pooled is not None:
        _pooled_queue(store, Path(pooled), name)
        return

    def decide(claim: Claim, decision: str, note: str) -> None:
        done = _decide(store, claim.id, decision, name, note, force=False)
        c = done.claim
        console.print(f"[green]recorded:[/] {c.id} -> {c.status} by {escape(c.reviewer or '')}")
        if done.folder_note:
            console.print(f"[yellow]memory only:[/] {escape(done.folder_note)}")

    _key_loop(
        store,
        "claims",
        lambda: queue(store, model=model, run=run),
        lambda c, i, n: _show(store, c, i, n, name),
        lambda c: c.id,
        decide,
    )


def _key_loop(
    store: MemoryStore,
    what: str,
    waiting: Callable[[], list[T]],
    show: Callable[[T, int, int], None],
    claim_id: Callable[[T], str],
    decide: Callable[[T, str, str], None],
) -> None:
    """One review queue at the keyboard: `waiting()` is read again after every key (another reviewer may
    have decided something meanwhile); `decide(item, decision, note)` records and says what it recorded."""
    from memory.store import AlreadyReviewed

    i, decided = 0, 0
    while True:
        items = waiting()
        if not items:
            console.print(f"[green]No {what} awaiting review.[/] Decided this session: {decided}.")
            return
        i = min(i, len(items) - 1)
        show(items[i], i, len(items))
        key = typer.getchar().lower()
        if key == "q":
            console.print(f"Decided this session: {decided}; {len(items)} still awaiting review.")
            return
        if key == "n":
            i = (i + 1) % len(items)
        elif key == "p":
            i = (i - 1) % len(items)
        elif key == "x":
            _reproduce_and_print(store, claim_id(items[i]), None, json_out=False)
            console.input("[dim]press Enter to go back to the claim[/]")
        elif key in ("a", "r", "m"):
            decision = {"a": "accept", "r": "reject", "m": "more-evidence"}[key]
            note = console.input(f"[bold]{decision}[/] — note (Enter for none): ")
            try:
                decide(items[i], decision, note)
            except AlreadyReviewed as e:
                # someone else decided it while it was on screen: theirs stands, the queue moves on
                console.print(f"[yellow]not recorded:[/] {escape(str(e))}")
                console.input("[dim]press Enter to go on[/]")
                continue
            decided += 1


def _show(store: MemoryStore, claim: Claim, i: int, n: int, reviewer: str) -> None:
    from agent.review import card

    c = card(store, claim)
    console.clear()
    t = Table.grid(padding=(0, 2))
    t.add_column(style="bold", no_wrap=True)
    t.add_column()
    t.add_row("claim", f"{c['id']}  ({c['status']}, run {c['run_id'] or '-'})")
    t.add_row("model", escape(c["model_id"]))
    t.add_row("mechanism", f"{c['mechanism'] or '-'}   tier: {c['evidence_tier']}")
    t.add_row("component", escape(", ".join(f"{k}={v}" for k, v in c["component"].items()) or "-"))
    t.add_row(
        "effect", f"{_num(c['effect'])} against control {_num(c['control'])}   criterion: {c['criterion'] or '-'}"
    )
    for e in c["experiments"]:
        t.add_row("experiment", escape(f"{e['id']} {e['tool']}: {e['summary']}"))
    for name, path in c["links"].items():
        t.add_row(name, escape(path))
    if c["run_folder_note"]:
        t.add_row("run folder", escape(f"not shown: {c['run_folder_note']}"))
    t.add_row("reproduce", c["reproduce"])
    # The statement is the agent's (and, through tool results, the model's) text: shown, never obeyed.
    console.print(Panel(t, title=f"claim {i + 1} of {n} awaiting review — reviewer {escape(reviewer)}", subtitle=KEYS))
    console.print(Panel(escape(c["statement"]), title="statement (agent text)", border_style="dim"))


def _pooled_queue(store: MemoryStore, parent: Path, reviewer: str) -> None:
    """The interactive queue over a pooled job: one pooled claim at a time, shown by its first run's claim."""
    from agent.pooled_review import PooledEntry, awaiting, decide_pooled

    def show(entry: PooledEntry, i: int, n: int) -> None:
        _show(store, entry.claims[0], i, n, reviewer)
        p = entry.pooled
        console.print(
            f"[bold]pooled claim {entry.number}[/]: made by {p.supported}/{p.runs} runs, refuted by {p.refuted}, "
            f"inconclusive in {p.inconclusive}; a decision is recorded on its {len(entry.claims)} memory "
            f"record(s) and in every run folder that made it"
        )

    def decide(entry: PooledEntry, decision: str, note: str) -> None:
        done = decide_pooled(store, parent, entry.number, decision, reviewer, note)
        console.print(f"[green]recorded[/] on {len(done.entry.claims)} claim(s), {len(done.run_dirs)} run folder(s)")
        for n in done.notes:
            console.print(f"[yellow]memory only:[/] {escape(n)}")

    _key_loop(store, "pooled claims", lambda: awaiting(store, parent), show, lambda e: e.claims[0].id, decide)


@app.command("pooled")
def pooled_(
    parent: Annotated[Path, typer.Argument(help="The parent folder `interp investigate --runs N` wrote.")],
    number: Annotated[int | None, typer.Argument(help="The pooled claim's number (as pooled.md numbers it).")] = None,
    decision: Annotated[str | None, typer.Argument(help="accept | reject | more-evidence")] = None,
    note: Annotated[str, typer.Option(help="Why: kept with the decision.")] = "",
    reviewer: ReviewerOpt = None,
    force: Annotated[bool, typer.Option("--force", help="Change a decision already made.")] = False,
    memory: MemoryOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """A pooled job's claims, each once with its replication; with NUMBER and DECISION, decide one for every
    run's copy."""
    from agent.pooled import load
    from agent.pooled_review import decide_pooled, entries
    from agent.review import reviewer_name

    pooled = load(parent)  # the folder first: a wrong folder is the likelier mistake, and says how to fix it
    store = _store(memory)
    if number is not None or decision is not None:
        if number is None or decision is None:
            raise UserError("give the pooled claim's number and the decision, e.g. `interp review pooled DIR 1 accept`")
        done = decide_pooled(store, parent, number, decision, reviewer_name(reviewer), note, force)
        if json_out:
            print_json(
                {
                    "number": number,
                    "key": done.entry.pooled.key,
                    "status": done.entry.status,
                    "claims": [c.id for c in done.entry.claims],
                    "run_dirs": [str(d) for d in done.run_dirs],
                    "notes": done.notes,
                }
            )
        else:
            console.print(
                f"pooled claim {number} -> {done.entry.status}: {len(done.entry.claims)} claim(s), "
                f"{len(done.run_dirs)} run folder(s)"
            )
        for n in done.notes:
            err_console.print(f"[yellow]not written there:[/] {escape(n)}", highlight=False)
        return
    listed = entries(store, pooled)
    if json_out:
        print_json(
            [
                {"number": e.number, "status": e.status, **e.pooled.model_dump(mode="json", exclude={"evidence"})}
                for e in listed
            ]
        )
        return
    if not listed:
        console.print("No run of this job made a claim.")
        return
    table = Table(title=f"pooled claims of {parent}")
    for col in ("#", "replication", "refuted", "status", "mechanism"):
        table.add_column(col, no_wrap=True)
    table.add_column("claim", ratio=1, min_width=20)
    for e in listed:
        p = e.pooled
        table.add_row(
            str(e.number),
            f"{p.supported}/{p.runs}",
            str(p.refuted),
            e.status,
            p.mechanism,
            escape(_short(p.statement, 90)),
        )
    console.print(table)


def _short(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.4g}"


def _decide(store: MemoryStore, claim_id: str, decision: str, reviewer: str, note: str, force: bool) -> Decided:
    from agent.review import decide

    return decide(store, claim_id, decision, reviewer, note, force=force)


@app.command("list")
def list_(
    status: Annotated[
        str | None,
        typer.Option(help="proposed | supported | refuted | accepted | rejected | needs_more_evidence (default: all)."),
    ] = None,
    model: Annotated[str | None, typer.Option(help="Only claims about this model id.")] = None,
    memory: MemoryOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Claims with their review status, newest first."""
    from agent.review import card, listing

    store = _store(memory)
    claims = listing(store, status=status, model=model)
    if json_out:
        print_json([card(store, c) for c in claims])
        return
    if not claims:
        console.print("No claims" + (f" with status {status}" if status else "") + " in this memory.")
        return
    table = Table(title="claims" + (f" ({status})" if status else ""))
    for col, width in (("id", 22), ("status", 9), ("mechanism", 9), ("effect/ctrl", 11), ("reviewer", 8)):
        table.add_column(col, no_wrap=True, min_width=width)
    table.add_column("statement", ratio=1, min_width=20)
    for c in claims:
        table.add_row(
            c.id,
            c.status,
            c.mechanism or "-",
            f"{_num(c.effect)}/{_num(c.control)}",
            escape(c.reviewer or "-"),
            escape(_short(c.statement, 90)),
        )
    console.print(table)


@app.command()
def decide(
    claim_id: Annotated[str, typer.Argument(help="The claim's id (see `interp review list`).")],
    decision: Annotated[str, typer.Argument(help="accept | reject | more-evidence")],
    note: Annotated[str, typer.Option(help="Why: kept with the decision.")] = "",
    reviewer: ReviewerOpt = None,
    force: Annotated[bool, typer.Option("--force", help="Change a decision already made.")] = False,
    memory: MemoryOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Record a decision on one claim."""
    from agent.review import reviewer_name

    done = _decide(_store(memory), claim_id, decision, reviewer_name(reviewer), note, force)
    claim = done.claim
    if json_out:
        print_json(
            {
                "id": claim.id,
                "status": claim.status,
                "reviewer": claim.reviewer,
                "note": claim.review_note,
                "reviewed_at": claim.reviewed_at,
                "run_dir": str(done.run_dir) if done.run_dir else None,
                "run_folder_note": done.folder_note,
            }
        )
    else:
        console.print(f"{claim.id} -> {claim.status} by {escape(claim.reviewer or '')}")
    if done.folder_note:
        err_console.print(f"[yellow]recorded in memory only:[/] {escape(done.folder_note)}", highlight=False)


def reproduce(
    claim_id: Annotated[str, typer.Argument(help="The claim's id (see `interp review list`).")],
    model: Annotated[
        str | None, typer.Option(help="Model spec to load (default: the one the claim's experiment recorded).")
    ] = None,
    memory: MemoryOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Re-run a claim's key experiment on its component and judge it by its registered criterion."""
    ok = _reproduce_and_print(_store(memory), claim_id, model, json_out)
    if not ok:
        raise typer.Exit(1)


def _reproduce_and_print(store: MemoryStore, claim_id: str, model: str | None, json_out: bool) -> bool:
    from agent.reproduce import reproduce as run

    quiet_library_warnings()
    with console.status(f"reproducing {claim_id}"):
        r = run(store, claim_id, model=model)
    if json_out:
        print_json(r.as_dict())
        return r.holds
    verdict = "[green]holds[/]" if r.holds else "[red]does not hold[/]"
    console.print(f"{claim_id}: {verdict} ({r.outcome}) — {escape(r.why)}")
    console.print(
        f"  now: effect {_num(r.effect)} against control {_num(r.control)}; when claimed: "
        f"effect {_num(r.original_effect)} against control {_num(r.original_control)}"
    )
    console.print(f"  {r.tool}: {escape(r.summary)}")
    if r.note:
        console.print(f"  [yellow]note:[/] {escape(r.note)}")
    return r.holds

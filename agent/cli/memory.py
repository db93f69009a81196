"""`interp memory ...`: search, show, export, import and count what investigations stored."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from agent.cli.output import console, err_console, print_json

if TYPE_CHECKING:
    from memory.records import MemoryRecord
    from memory.store import MemoryStore

app = typer.Typer(
    help="The memory of claims, hypotheses, feature labels and experiments (ChromaDB).", no_args_is_help=True
)

MemoryOpt = Annotated[
    str | None,
    typer.Option(
        "--memory",
        help="Folder of an embedded store, or http://HOST:PORT of a Chroma server "
        "(default: $INTERP_MEMORY or .interp/memory).",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]
WeightsOpt = Annotated[
    str | None,
    typer.Option(
        "--weights",
        help="Only records about these exact weights (the weights hash in a manifest, a report or "
        "`interp model info`); records that name no weights are left out.",
    ),
]


def _store(memory: str | None, create: bool = False) -> MemoryStore:
    from memory.store import MemoryStore

    return MemoryStore(memory, create=create)


def _line(r: MemoryRecord) -> str:
    text = str(getattr(r, "statement", None) or getattr(r, "label", None) or getattr(r, "summary", ""))
    return text if len(text) <= 100 else text[:97] + "..."


@app.command()
def search(
    text: Annotated[str, typer.Argument(help="What to look for, in words.")],
    model: Annotated[str | None, typer.Option(help="Only records about this model id.")] = None,
    weights: WeightsOpt = None,
    status: Annotated[str | None, typer.Option(help="Only this status (claims, hypotheses).")] = None,
    kind: Annotated[
        str | None, typer.Option(help="claim, incidental, hypothesis, feature_label or experiment.")
    ] = None,
    n: Annotated[int, typer.Option(min=1, max=1000, help="How many results.")] = 10,
    memory: MemoryOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Records nearest in meaning to TEXT."""
    hits = _store(memory).search(text, kind=kind, model=model, status=status, n=n, weights_hash=weights)
    if json_out:
        print_json([{"distance": round(d, 4), **r.model_dump(mode="json")} for r, d in hits])
        return
    table = Table(title=f"memory search: {text!r}")
    table.add_column("distance")
    table.add_column("id", no_wrap=True, min_width=22)  # ids are copied into `memory show`: never cut
    for col in ("kind", "status", "model", "text"):
        table.add_column(col)
    for r, d in hits:
        table.add_row(f"{d:.3f}", r.id, r.kind, getattr(r, "status", "") or "", r.model_id, _line(r))
    console.print(table)


@app.command("list")
def list_(
    kind: Annotated[
        str | None, typer.Option(help="claim, incidental, hypothesis, feature_label or experiment.")
    ] = None,
    model: Annotated[str | None, typer.Option(help="Only records about this model id.")] = None,
    weights: WeightsOpt = None,
    status: Annotated[str | None, typer.Option(help="Only this status (claims, hypotheses).")] = None,
    limit: Annotated[int, typer.Option(min=1, max=100000, help="At most this many records.")] = 100,
    memory: MemoryOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Records matching the filters, oldest first, with the weights each is about ('-': not recorded)."""
    records = _store(memory).list(kind=kind, model=model, status=status, limit=limit, weights_hash=weights)
    if json_out:
        print_json([r.model_dump(mode="json") for r in records])
        return
    table = Table(title="memory")
    table.add_column("id", no_wrap=True, min_width=22)
    for col in ("kind", "status", "model"):
        table.add_column(col)
    table.add_column("weights", no_wrap=True, min_width=16)  # copied into --weights: never cut
    table.add_column("text")
    for r in records:
        table.add_row(
            r.id, r.kind, getattr(r, "status", "") or "", r.model_id, getattr(r, "weights_hash", "") or "-", _line(r)
        )
    console.print(table)


@app.command()
def show(
    record_id: Annotated[str, typer.Argument(help="A record id.")], memory: MemoryOpt = None, json_out: JsonOpt = False
) -> None:
    """One record, in full."""
    from tools.errors import UserError

    r = _store(memory).get(record_id)
    if r is None:
        raise UserError(f"no record with id {record_id!r}; find ids with `interp memory search TEXT`")
    if json_out:
        print_json(r.model_dump(mode="json"))
        return
    for key, value in r.model_dump(mode="json").items():
        console.print(f"[bold]{key}[/]: {value}", highlight=False)


@app.command("export")
def export(path: Annotated[Path, typer.Argument(help="JSONL file to write.")], memory: MemoryOpt = None) -> None:
    """Write every record to a JSONL file."""
    n = _store(memory).export_jsonl(path)
    err_console.print(f"exported {n} records to {path}")


@app.command("import")
def import_(
    path: Annotated[Path, typer.Argument(help="JSONL file from `interp memory export`.")],
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Take the file's reviews where they differ from this memory's (or are new to it); "
            "each override is recorded in the claim's review history with your name, the time and the file.",
        ),
    ] = False,
    reviewer: Annotated[
        str | None,
        typer.Option(
            "--reviewer",
            help="Your name, recorded with a --force override (default: $INTERP_REVIEWER, else your login).",
        ),
    ] = None,
    memory: MemoryOpt = None,
) -> None:
    """Add the records of a JSONL export, all or nothing. Existing ids are updated; a review is never
    changed or brought in by an import unless --force (then recorded)."""
    by = None
    if force:
        from agent.review import reviewer_name

        by = reviewer_name(reviewer)
    from memory.export_file import read_export

    lines = read_export(path)  # a bad file is refused before a memory is opened (or created)
    from memory.store import default_location, refuse_reviews_for_a_new_memory

    location = memory or default_location()
    if (
        not force
        and not location.startswith(("http://", "https://"))
        and not (Path(location).expanduser() / "chroma.sqlite3").is_file()
    ):
        refuse_reviews_for_a_new_memory(path, lines)
    done = _store(memory, create=True).import_jsonl(path, force=force, by=by, lines=lines)
    parts = [f"{done.new} new"]
    if done.reviews_kept:
        parts.append(f"{done.reviews_kept} stored reviews kept")
    if done.reviews_forced:
        parts.append(f"{done.reviews_forced} reviews taken from the file by --force (recorded as imported by {by})")
    err_console.print(f"imported {done.records} records from {path} ({'; '.join(parts)})", highlight=False)


@app.command()
def stats(memory: MemoryOpt = None, json_out: JsonOpt = False) -> None:
    """Record counts per kind, and claims per status."""
    s = _store(memory).stats()
    if json_out:
        print_json(s)
        return
    console.print(f"memory at {s['location']} ({s['mode']})")
    for kind, count in s["counts"].items():
        console.print(f"  {kind}: {count}")
    if s["claims_by_status"]:
        console.print("  claims by status: " + ", ".join(f"{k} {v}" for k, v in s["claims_by_status"].items()))

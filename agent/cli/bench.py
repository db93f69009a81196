"""`interp bench ...`: benchmarks that print numbers (ratios against a baseline in the same run)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from agent.cli.output import console, print_json, quiet_library_warnings

app = typer.Typer(help="Benchmarks: each prints its numbers and the baseline it is compared with.",
                  no_args_is_help=True)


@app.command()
def throughput(
    batch: Annotated[int, typer.Option(min=1, help="Sequences per pass.")] = 8,
    seq: Annotated[int, typer.Option(min=2, max=1024, help="Tokens per sequence.")] = 128,
    repeats: Annotated[int, typer.Option(min=1, help="Timings per variant (best is kept).")] = 3,
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Activation harvesting at a middle layer of a GPT-2-small-shaped model vs naive run_with_cache."""
    from experiments.benchmarks.throughput import as_dict, run

    quiet_library_warnings()
    r = as_dict(run(batch=batch, seq=seq, repeats=repeats))
    if json_out:
        print_json(r)
        return
    table = Table(title="activation harvesting throughput", show_header=False)
    for k, v in r.items():
        table.add_row(k, str(v))
    console.print(table)


@app.command()
def memory(
    n: Annotated[int, typer.Option(min=10, help="Records to upsert.")] = 500,
    queries: Annotated[int, typer.Option(min=1, help="Semantic queries to run.")] = 100,
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Memory upsert and query throughput, embedded and on a local Chroma server."""
    from experiments.benchmarks.memory import run

    quiet_library_warnings()
    r = run(n=n, queries=queries)
    if json_out:
        print_json(r)
        return
    table = Table(title=f"memory throughput ({r['records']} records, {r['queries']} queries)")
    for col in ("mode", "upsert records/s", "queries/s", "upsert / embedding-only"):
        table.add_column(col)
    for mode in ("embedded", "server"):
        m = r[mode]
        table.add_row(mode, str(m["upsert_records_per_s"]), str(m["queries_per_s"]), str(m["upsert_vs_embedding"]))
    console.print(table)
    console.print(f"embedding alone: {r['embedding_only_per_s']} texts/s")

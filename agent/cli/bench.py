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

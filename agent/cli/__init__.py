"""The `interp` command line. Command groups live in their own modules; heavy
imports (torch, transformer_lens, chromadb) happen inside the commands."""

from __future__ import annotations

import sys

import typer

from agent.cli import bench, investigate, label, memory, model, organism, review, tool
from agent.cli.output import err_console
from tools.errors import UserError

app = typer.Typer(
    name="interp",
    help="Agentic interpretability: investigate transformers with probes, steering, SAEs, "
    "ablation and patching, under a compute budget.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("investigate")(investigate.investigate)
app.add_typer(organism.app, name="organism")
app.add_typer(model.app, name="model")
app.add_typer(tool.app, name="tool")
app.add_typer(memory.app, name="memory")
app.add_typer(bench.app, name="bench")
app.add_typer(review.app, name="review")
app.add_typer(label.app, name="label")
app.command("reproduce")(review.reproduce)


def main() -> None:
    """Console entry point: user errors become a message and exit code 2, never a traceback."""
    try:
        app()
    except UserError as e:
        err_console.print(f"[bold red]error:[/] {e}", highlight=False)
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]")
        sys.exit(130)

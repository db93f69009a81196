"""`interp model ...`: inspect a target model."""

from __future__ import annotations

import re
from typing import Annotated

import typer
from rich.table import Table

from agent.cli.output import console, print_json, quiet_library_warnings

app = typer.Typer(help="Inspect target models.", no_args_is_help=True)


@app.command()
def info(
    spec: Annotated[
        str,
        typer.Argument(help="organism:NAME, smollm2, gemma3-270m, gguf:PATH, hf:PATH or a TransformerLens name."),
    ],
    device: Annotated[str, typer.Option(help="cpu, cuda, or auto (CUDA when available).")] = "auto",
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Layers, widths and TransformerLens hook names of a target model."""
    from agent.targets import load

    quiet_library_warnings()
    target = load(spec, device=None if device == "auto" else device)
    data = target.info()
    if json_out:
        print_json(data)
        return
    table = Table(title=f"{spec}  ({data['model_id']})", show_header=False)
    for key in (
        "source",
        "n_layers",
        "d_model",
        "n_heads",
        "d_head",
        "d_mlp",
        "d_vocab",
        "n_ctx",
        "attn_only",
        "normalization",
        "positional_embedding",
        "n_params",
        "weights_hash",
        "device",
    ):
        table.add_row(key, str(data[key]))
    console.print(table)
    hooks = data["hook_names"]
    block0 = [h for h in hooks if h.startswith("blocks.0.")]
    outside = [h for h in hooks if not h.startswith("blocks.")]
    console.print(f"[bold]{len(hooks)} hooks.[/] Outside blocks: {', '.join(outside)}")
    console.print(
        "Per block (blocks.L.*, L = 0.."
        f"{data['n_layers'] - 1}): " + ", ".join(re.sub(r"^blocks\.0\.", "", h) for h in block0)
    )
    console.print("All hook names: [bold]interp model info SPEC --json[/]")

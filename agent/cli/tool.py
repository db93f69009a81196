"""`interp tool ...`: call one interpretability tool directly, as the agent would."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any

import typer

from agent.cli.output import console, print_json, quiet_library_warnings
from tools.errors import UserError
from tools.files import read_text_file

app = typer.Typer(
    help="Call interpretability tools directly (the same typed calls the agent makes).", no_args_is_help=True
)


@app.command("list")
def list_(json_out: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List the tools with their JSON input schemas (--json)."""
    from tools.registry import tools

    table = tools()
    if json_out:
        print_json([t.schema() for t in table.values()])
        return
    from rich.table import Table

    grid = Table(title="Interpretability tools", title_justify="left", show_lines=False)
    grid.add_column("tool", style="bold", no_wrap=True)
    grid.add_column("what it does")
    grid.add_column("required fields", style="cyan")
    for t in table.values():
        required = [n for n, f in t.input_model.model_fields.items() if f.is_required()]
        grid.add_row(t.name, t.description, ", ".join(required) or "-")
    console.print(grid)
    console.print(
        "All fields of one tool: [bold]interp tool schema NAME[/]; call one: "
        "[bold]interp tool NAME --model M --arg KEY=VALUE[/]"
    )


@app.command()
def schema(
    name: Annotated[str, typer.Argument(help="Tool name.")],
    example: Annotated[
        bool,
        typer.Option(
            "--example",
            help="Print an example input (validated by the tool's model) instead: a file to edit for --input.",
        ),
    ] = False,
) -> None:
    """Print one tool's JSON input schema, or an example input with --example."""
    from tools.registry import get

    spec = get(name)
    if example:
        from tools.example import example as build

        print_json(build(spec.input_model))
        return
    print_json(spec.schema())


def _parse_args(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"--arg {item!r}: expected KEY=VALUE (VALUE is JSON, or a plain string)")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def _load_input(path: str | None) -> dict[str, Any]:
    if path is None:
        return {}
    text = read_text_file(path, "--input", "a JSON object of the tool's fields")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise UserError(f"--input {path} is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise UserError(f"--input {path} must hold a JSON object of the tool's fields")
    return data


def _make(name: str) -> Callable[..., None]:
    def command(
        model: Annotated[str, typer.Option("--model", "-m", help="Target model spec, e.g. organism:eval_aware.")],
        input: Annotated[
            str | None, typer.Option("--input", "-i", help="JSON file of the tool's fields ('-' = stdin).")
        ] = None,
        arg: Annotated[
            list[str] | None, typer.Option("--arg", "-a", help="KEY=VALUE field (VALUE as JSON); repeatable.")
        ] = None,
        device: Annotated[str, typer.Option(help="cpu, cuda or auto.")] = "auto",
        json_out: Annotated[bool, typer.Option("--json", help="Print the full result as JSON.")] = False,
    ) -> None:
        from agent.targets import load
        from tools.registry import call, validate

        quiet_library_warnings()
        payload = {**_load_input(input), **_parse_args(arg or [])}
        validate(name, payload)  # fail on bad fields before loading a model
        target = load(model, device=None if device == "auto" else device)
        result = call(target, name, payload)
        if json_out:
            print_json(result.model_dump(mode="json"))
        else:
            console.print(result.summary, highlight=False)
            from tools.probe import ProbeResult

            if isinstance(result, ProbeResult):
                from agent.cli.tool_tables import probe_table

                console.print(probe_table(result))
            c = result.cost
            console.print(f"[dim]cost: {c.forward_tokens} forward tokens, {c.seconds:.2f}s; full result: --json[/]")

    command.__doc__ = f"Run the {name} tool (fields: `interp tool schema {name}`)."
    return command


def add_tool_commands(typer_app: typer.Typer) -> None:
    """One sub-command per registered tool (names come from tools.registry without importing the tools,
    so `interp --help` stays quick)."""
    from tools.registry import names

    for name in names():
        typer_app.command(name)(_make(name))


add_tool_commands(app)

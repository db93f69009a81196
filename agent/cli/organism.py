"""`interp organism ...`: list, train and show model organisms."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from agent.cli.output import console, err_console, print_json, quiet_library_warnings
from tools.errors import UserError

app = typer.Typer(help="Model organisms: small transformers with planted, verified mechanisms.",
                  no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _mechanism_summary(spec) -> str:
    parts = []
    for m in spec.mechanisms:
        tag = "" if m.planted else " (control, not planted)"
        parts.append(f"{m.kind}{tag}")
    return ", ".join(parts) or "-"


@app.command("list")
def list_(json_out: JsonOpt = False) -> None:
    """List the built-in organisms and whether each is trained (cached)."""
    from experiments.organisms.cache import builtin_names, is_trained, organism_dir, resolve_spec

    rows = []
    for name in builtin_names():
        spec = resolve_spec(name)
        folder = organism_dir(spec)
        rows.append({
            "name": name,
            "organism_id": spec.organism_id(),
            "task": spec.task.kind,
            "mechanisms": _mechanism_summary(spec),
            "description": spec.description,
            "trained": is_trained(folder),
            "path": str(folder),
        })
    if json_out:
        print_json(rows)
        return
    table = Table(title="Built-in organisms")
    for col in ("name", "id", "task", "mechanisms", "trained", "description"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["name"], r["organism_id"], r["task"], r["mechanisms"],
                      "yes" if r["trained"] else "no", r["description"])
    console.print(table)
    console.print("Train one with [bold]interp organism train NAME[/]; "
                  "or write a spec file (see experiments/organisms/specs/).")


@app.command()
def train(
    name: Annotated[str, typer.Argument(help="Built-in organism name or spec file (YAML).")],
    out: Annotated[Optional[Path], typer.Option(help="Folder to write the organism to (default: the cache).")] = None,
    seed: Annotated[Optional[int], typer.Option(min=0, help="Override the spec's seed.")] = None,
    force: Annotated[bool, typer.Option(help="Retrain even if a cached copy exists.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Train an organism, verify its ground truth, and write the manifest beside it."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from experiments.organisms.cache import is_trained, load_manifest, organism_dir, resolve_spec, train_into

    quiet_library_warnings()
    spec = resolve_spec(name)
    if seed is not None:
        spec = spec.with_seed(seed)
    folder = out if out is not None else organism_dir(spec)
    if out is not None and out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a folder")
    if is_trained(folder) and not force:
        manifest = load_manifest(folder)
        if not json_out:
            err_console.print(f"already trained at {folder} (use --force to retrain)")
    else:
        from experiments.organisms.train import check_memory

        check_memory(spec)  # before the progress bar: a spec that cannot fit is refused with nothing shown
        with Progress(TextColumn("training {task.description}"), BarColumn(),
                      TextColumn("{task.completed}/{task.total} steps  loss {task.fields[loss]:.4f}"),
                      TimeElapsedColumn(), console=err_console, disable=json_out) as bar:
            task = bar.add_task(spec.name, total=spec.train.steps, loss=float("nan"))
            manifest = train_into(
                spec, folder, on_step=lambda s, loss: bar.update(task, completed=s + 1, loss=loss)
            )
    if json_out:
        print_json({"path": str(folder), **manifest.model_dump(mode="json")})
    else:
        _print_manifest(manifest, folder)
    if not manifest.verified:
        failed = "; ".join(f"{c.name} = {c.measured} (needs {c.op} {c.threshold})"
                           for c in manifest.failed_checks())
        err_console.print(f"[bold red]verification failed:[/] {failed}")
        raise typer.Exit(1)


@app.command()
def show(
    name: Annotated[str, typer.Argument(help="Built-in name, spec file, or trained organism folder.")],
    json_out: JsonOpt = False,
) -> None:
    """Show a trained organism's manifest: mechanisms and measured accuracies."""
    from experiments.organisms.cache import find_trained, load_manifest

    folder = find_trained(name)
    manifest = load_manifest(folder)
    if json_out:
        print_json({"path": str(folder), **manifest.model_dump(mode="json")})
    else:
        _print_manifest(manifest, folder)


def _print_manifest(m, folder: Path) -> None:
    ok = "[green]verified[/]" if m.verified else "[red]NOT verified[/]"
    console.print(f"[bold]{m.name}[/]  id {m.organism_id}  {ok}  ({folder})")
    console.print(f"task: {m.task_description}; held-out accuracy {m.heldout_accuracy:.3f}; "
                  f"trained {m.train_steps} steps in {m.train_seconds:.0f}s, final loss {m.final_loss:.4f}")
    for mech in m.mechanisms:
        console.print(_describe(mech))
    table = Table(title="checks")
    for col in ("check", "measured", "needs", "ok"):
        table.add_column(col)
    for c in m.checks:
        table.add_row(c.name, f"{c.measured:g}", f"{c.op} {c.threshold:g}",
                      "[green]yes[/]" if c.passed else "[red]no[/]")
    console.print(table)


def _describe(mech) -> str:
    if mech.kind == "trigger":
        role = "backdoor" if mech.planted else "control (trigger tokens, not planted)"
        text = (f"- {role}: trigger {' '.join(mech.tokens)} -> {mech.target_token}: rate "
                f"{mech.trigger_rate:.3f} (chance {mech.chance_rate:.3f}), without trigger "
                f"{mech.false_fire_rate:.3f}")
        if mech.partial_trigger_rate is not None:
            text += f", worst partial or reordered trigger {mech.partial_trigger_rate:.3f}"
        if mech.minimal_sequences is not None and mech.planted:
            text += f"; minimal sequences that fire: {'; '.join(' '.join(s) for s in mech.minimal_sequences) or 'none'}"
        return text + (", at chance" if mech.at_chance else "")
    if mech.kind == "marker":
        role = "context marker" if mech.planted else "control (marker token, not planted)"
        return (f"- {role} {mech.token}: {mech.behaviour}; switch rate {mech.switch_rate:.3f} "
                f"(without marker {mech.clean_switch_rate:.3f}); difference-of-means steering "
                f"works at: {', '.join(mech.hooks) or 'none'}")
    if mech.kind == "induction":
        fmt = lambda hs: ", ".join(f"L{h.layer}H{h.head} (score {h.score:.2f}, ablated acc "
                                   f"{h.ablated_accuracy:.2f})" for h in hs) or "none"
        return (f"- induction heads: {fmt(mech.induction_heads)}\n- previous-token heads: "
                f"{fmt(mech.previous_token_heads)}\n- accuracy {mech.baseline_accuracy:.2f}; induction heads "
                f"ablated together {mech.induction_group_ablated_accuracy:.2f}; as many other heads "
                f"ablated {mech.control_group_ablated_accuracy:.2f}")
    cats = "; ".join(f"{c.name}: {' '.join(c.tokens)} -> {c.label_token}" for c in mech.categories)
    dec = ", ".join(f"{k} {v:.2f}" for k, v in mech.decodability.items())
    return f"- categories: {cats}\n- category decodable at: {dec}"

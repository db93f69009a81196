"""`interp organism ...`: list, train and show model organisms."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from agent.cli.output import console, err_console, print_json, quiet_library_warnings
from tools.errors import UserError

if TYPE_CHECKING:
    from experiments.organisms.manifest import HeadScore, Manifest, Mechanism
    from experiments.organisms.spec import OrganismSpec

app = typer.Typer(help="Model organisms: small transformers with planted, verified mechanisms.", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _mechanism_summary(spec: OrganismSpec) -> str:
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
        rows.append(
            {
                "name": name,
                "organism_id": spec.organism_id(),
                "task": spec.task.kind,
                "mechanisms": _mechanism_summary(spec),
                "description": spec.description,
                "trained": is_trained(folder),
                "path": str(folder),
            }
        )
    from agent.cli.organism_universality import list_rows

    rows += list_rows()
    if json_out:
        print_json(rows)
        return
    table = Table(title="Built-in organisms")
    for col in ("name", "id", "task", "mechanisms", "trained", "description"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            *(str(r[k]) for k in ("name", "organism_id", "task", "mechanisms")),
            "yes" if r["trained"] else "no",
            str(r["description"]),
        )
    console.print(table)
    console.print(
        "Train one with [bold]interp organism train NAME[/]; or write a spec file (see experiments/organisms/specs/)."
    )
    from experiments.organisms.cache import candidate_specs

    for path in candidate_specs():
        spec = resolve_spec(str(path))
        console.print(
            f"Candidate (verifies for some seeds or CPUs only, see the file): [bold]{spec.name}[/] "
            f"({spec.description}): interp organism train {path}"
        )


@app.command()
def train(
    name: Annotated[str, typer.Argument(help="Built-in organism name or spec file (YAML).")],
    out: Annotated[Path | None, typer.Option(help="Folder to write the organism to (default: the cache).")] = None,
    seed: Annotated[int | None, typer.Option(min=0, help="Override the spec's seed.")] = None,
    force: Annotated[bool, typer.Option(help="Retrain even if a cached copy exists.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Train an organism, verify its ground truth, and write the manifest beside it."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from experiments.organisms.cache import is_trained, load_manifest, organism_dir, resolve_spec, train_into

    quiet_library_warnings()
    from experiments.organisms.universality import resolve_universality

    if (several := resolve_universality(name)) is not None:
        from agent.cli import organism_universality

        return organism_universality.train(several, out, seed, force, json_out)
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
        with Progress(
            TextColumn("training {task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total} steps  loss {task.fields[loss]:.4f}"),
            TimeElapsedColumn(),
            console=err_console,
            disable=json_out,
        ) as bar:
            task = bar.add_task(spec.name, total=spec.train.steps, loss=float("nan"))
            manifest = train_into(spec, folder, on_step=lambda s, loss: bar.update(task, completed=s + 1, loss=loss))
    if json_out:
        print_json({"path": str(folder), **manifest.model_dump(mode="json")})
    else:
        _print_manifest(manifest, folder)
    if not manifest.verified:
        err_console.print(
            f"[bold red]verification failed[/] ({len(manifest.failed_checks())} of "
            f"{len(manifest.checks)} checks); the organism is saved but unverified: the recovery "
            f"benchmark lists it as such and scores nothing on it."
        )
        for line in failure_lines(manifest):
            err_console.print(line, markup=False, highlight=False)
        raise typer.Exit(1)


def failure_lines(manifest: Manifest) -> list[str]:
    """One line per failed check: what was measured, the bound it missed, and what to change in the spec."""
    return [
        f"- {c.name}: measured {c.measured:g}, needs {c.op} {c.threshold:g}" + (f". To fix: {c.hint}" if c.hint else "")
        for c in manifest.failed_checks()
    ]


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
        for line in failure_lines(manifest):
            console.print(line, markup=False, highlight=False)


@app.command("check-reproducible")
def check_reproducible(
    name: Annotated[str, typer.Argument(help="Built-in name, spec file, or trained organism folder.")],
    threads: Annotated[
        int | None,
        typer.Option(
            min=1, max=256, help="Thread settings of the fresh process (default: 1, or 2 if this one uses 1)."
        ),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Train an organism again in a fresh process with other thread settings and check that the weights
    are bit-identical to the trained copy (trained first if it is not cached). Exits 1 when they differ."""
    from experiments.organisms.cache import SPEC_FILE, ensure_trained, is_trained, resolve_spec
    from experiments.organisms.reproducible import check_reproducible as check
    from experiments.organisms.spec import load_spec

    quiet_library_warnings()
    path = Path(name)
    if path.is_dir():
        if not is_trained(path) or not (path / SPEC_FILE).is_file():
            raise UserError(f"{path} is not a trained organism folder (no weights, manifest or {SPEC_FILE})")
        spec, folder = load_spec(path / SPEC_FILE), path
    else:
        from experiments.organisms.cache import organism_dir
        from experiments.organisms.train import check_memory

        spec = resolve_spec(name)
        check_memory(spec)
        if not is_trained(organism_dir(spec)):
            err_console.print(f"{spec.name} is not trained yet: training it first")
        folder = ensure_trained(spec)
    r = check(spec, folder, threads)
    if json_out:
        print_json(
            {
                "path": str(folder),
                "expected": r.expected,
                "got": r.got,
                "threads": r.threads,
                "same": r.same,
                "differences": [{"tensor": d.name, "max_abs": d.max_abs} for d in r.differences],
            }
        )
    else:
        console.print(f"weights hash of the trained copy ({folder}): {r.expected}", highlight=False, soft_wrap=True)
        console.print(
            f"weights hash trained again (fresh process, {r.threads} thread(s)): {r.got}",
            highlight=False,
            soft_wrap=True,
        )
    if not r.same:
        shown = ", ".join(f"{d.name} (max |diff| {d.max_abs:.3g})" for d in r.differences[:5])
        more = f" and {len(r.differences) - 5} more" if len(r.differences) > 5 else ""
        what = (
            f"{len(r.differences)} weight tensors differ: {shown}{more}"
            if r.differences
            else "every tensor is equal but the weight files differ (their layout or metadata)"
        )
        err_console.print(
            f"[bold red]not reproducible:[/] {what}. A copy trained "
            f"before training was made deterministic, or on another kind of CPU, can differ: retrain it with "
            f"`interp organism train {name} --force` and check again",
            highlight=False,
        )
        raise typer.Exit(1)
    if not json_out:
        console.print("[green]reproducible:[/] the weights are bit-identical")


def _print_manifest(m: Manifest, folder: Path) -> None:
    ok = "[green]verified[/]" if m.verified else "[red]NOT verified[/]"
    console.print(f"[bold]{m.name}[/]  id {m.organism_id}  {ok}  ({folder})")
    console.print(
        f"task: {m.task_description}; held-out accuracy {m.heldout_accuracy:.3f}; "
        f"trained {m.train_steps} steps in {m.train_seconds:.0f}s, final loss {m.final_loss:.4f}"
    )
    for mech in m.mechanisms:
        console.print(_describe(mech))
    table = Table(title="checks")
    for col in ("check", "measured", "needs", "ok"):
        table.add_column(col)
    for c in m.checks:
        table.add_row(
            c.name, f"{c.measured:g}", f"{c.op} {c.threshold:g}", "[green]yes[/]" if c.passed else "[red]no[/]"
        )
    console.print(table)


def _describe(mech: Mechanism) -> str:
    if mech.kind == "trigger":
        role = "backdoor" if mech.planted else "control (trigger tokens, not planted)"
        text = (
            f"- {role}: trigger {' '.join(mech.tokens)} -> {mech.target_token}: rate "
            f"{mech.trigger_rate:.3f} (chance {mech.chance_rate:.3f}), without trigger "
            f"{mech.false_fire_rate:.3f}"
        )
        if mech.partial_trigger_rate is not None:
            text += f", worst partial or reordered trigger {mech.partial_trigger_rate:.3f}"
        if mech.minimal_sequences is not None and mech.planted:
            text += f"; minimal sequences that fire: {'; '.join(' '.join(s) for s in mech.minimal_sequences) or 'none'}"
        return text + (", at chance" if mech.at_chance else "")
    if mech.kind == "marker":
        role = "context marker" if mech.planted else "control (marker token, not planted)"
        return (
            f"- {role} {mech.token}: {mech.behaviour}; switch rate {mech.switch_rate:.3f} "
            f"(without marker {mech.clean_switch_rate:.3f}); difference-of-means steering "
            f"works at: {', '.join(mech.hooks) or 'none'}"
        )
    if mech.kind == "induction":

        def fmt(hs: list[HeadScore]) -> str:
            def score(h: HeadScore) -> str:
                return "" if h.score is None else f"score {h.score:.2f}, "

            return (
                ", ".join(f"L{h.layer}H{h.head} ({score(h)}ablated acc {h.ablated_accuracy:.2f})" for h in hs) or "none"
            )

        if mech.method == "ablation":
            return (
                f"- induction heads (by ablation at the second copy): {fmt(mech.induction_heads)}\n"
                f"- previous-token heads (by ablation before it): {fmt(mech.previous_token_heads)}\n"
                f"- accuracy {mech.baseline_accuracy:.2f}; induction heads ablated together "
                f"{mech.induction_group_ablated_accuracy:.2f} (as many random heads "
                f"{mech.control_group_ablated_accuracy:.2f}); previous-token heads ablated together "
                f"{mech.previous_group_ablated_accuracy:.2f} (random {mech.previous_control_ablated_accuracy:.2f})"
            )
        return (
            f"- induction heads: {fmt(mech.induction_heads)}\n- previous-token heads: "
            f"{fmt(mech.previous_token_heads)}\n- accuracy {mech.baseline_accuracy:.2f}; induction heads "
            f"ablated together {mech.induction_group_ablated_accuracy:.2f}; as many other heads "
            f"ablated {mech.control_group_ablated_accuracy:.2f}"
        )
    if mech.kind == "superposition":
        read = sum(f.represented for f in mech.features)
        return (
            f"- superposition: {read} of {mech.n_features} features read out from {mech.d_model} dimensions at "
            f"{mech.hook} (position {mech.position}); linear fit R^2 {mech.r2:.3f}; |cos| between feature "
            f"directions mean {mech.mean_abs_cos:.3f}, max {mech.max_abs_cos:.3f} (Welch bound "
            f"{mech.welch_bound:.3f}); steering along a direction names its feature {mech.insert_rate:.2f} "
            f"(random direction {mech.control_insert_rate:.2f}), subtracting it stops it {mech.remove_rate:.2f}"
        )
    if mech.kind == "composition":

        def heads(hs: list[HeadScore]) -> str:
            return ", ".join(f"L{h.layer}H{h.head}" for h in hs) or "none"

        return (
            f"- two-step lookup: accuracy step 1 alone {mech.step1_accuracy:.2f}, step 2 alone "
            f"{mech.step2_accuracy:.2f}, both {mech.both_accuracy:.2f}\n"
            f"- step 1 (the table) in MLP layer(s) {', '.join(map(str, mech.step1_mlp_layers)) or 'none'}: ablated "
            f"at the query, step-1 accuracy {mech.step1_ablated_accuracy:.2f} (other MLPs "
            f"{mech.step1_control_ablated_accuracy:.2f}); their output patched from another query moves "
            f"{mech.step1_patch_switch_rate:.2f} of the answers to its key's value (other MLPs "
            f"{mech.step1_patch_control_switch_rate:.2f})\n"
            f"- step 2 (the lookup): heads {heads(mech.lookup_heads)} at the query, ablated together "
            f"{mech.lookup_ablated_accuracy:.2f}, step 2 alone {mech.lookup_step2_ablated_accuracy:.2f} (others "
            f"{mech.lookup_control_ablated_accuracy:.2f}); fed by "
            f"{heads(mech.feeding_heads)} in the context, ablated there {mech.feeding_ablated_accuracy:.2f} "
            f"(others {mech.feeding_control_ablated_accuracy:.2f}); with both ablated, step 1 alone "
            f"{mech.step1_accuracy_without_step2_heads:.2f}, step 2 alone {mech.step2_accuracy_without_step2_heads:.2f}"
        )
    cats = "; ".join(f"{c.name}: {' '.join(c.tokens)} -> {c.label_token}" for c in mech.categories)
    dec = ", ".join(f"{k} {v:.2f}" for k, v in mech.decodability.items())
    return f"- categories: {cats}\n- category decodable at: {dec}"

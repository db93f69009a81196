"""`interp organism list/train` for universality specs (several seeds of one organism, heads matched)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from agent.cli.output import console, err_console, print_json
from tools.errors import UserError

if TYPE_CHECKING:
    from experiments.organisms.universality import UniversalitySpec


def list_rows() -> list[dict[str, Any]]:
    """One row per built-in universality spec, shaped like the organism rows of `interp organism list`."""
    from experiments.organisms.universality import MATCHING_FILE, matching_dir, resolve_universality, universality_names

    rows = []
    for name in universality_names():
        spec = resolve_universality(name)
        if spec is None:  # a listed name always resolves; a None here is a bug in the listing
            raise RuntimeError(f"universality set {name!r} is listed but does not resolve")
        folder = matching_dir(spec)
        rows.append(
            {
                "name": name,
                "organism_id": f"uni-{spec.spec_hash()[:10]}",
                "task": spec.base.task.kind,
                "mechanisms": f"universality (seeds {', '.join(map(str, spec.seeds))})",
                "description": spec.description,
                "trained": (folder / MATCHING_FILE).is_file(),
                "path": str(folder),
            }
        )
    return rows


def train(spec: UniversalitySpec, out: Path | None, seed: int | None, force: bool, json_out: bool) -> None:
    """Train every seed of `spec` (a UniversalitySpec), measure the matching, print it; exit 1 if unverified."""
    from experiments.organisms.universality import matching_dir, train_universality

    if out is not None or seed is not None:
        raise UserError(
            f"{spec.name} is a universality spec (seeds {spec.seeds}): --out and --seed do not apply; "
            "each seed is trained into the cache, the matching beside them"
        )
    m = train_universality(
        spec,
        force=force,
        on_member=None
        if json_out
        else lambda i, n: err_console.print(f"seed {spec.seeds[i]} ({i + 1} of {n}): training or loading"),
    )
    folder = matching_dir(spec)
    if json_out:
        print_json({"path": str(folder), **m.model_dump(mode="json", exclude={"pairs"})})
    else:
        ok = "[green]verified[/]" if m.verified else "[red]NOT verified[/]"
        console.print(f"[bold]{m.name}[/]  {ok}  ({folder}); {m.seconds:.0f}s")
        for s in m.seeds:
            roles = "; ".join(
                f"{r}: {', '.join(f'L{l}H{h}' for l, h in heads) or 'none'}" for r, heads in s.roles.items()
            )
            console.print(
                f"- seed {s.seed} ({s.organism_id}, trained in {s.train_seconds:.0f}s, "
                f"{'verified' if s.verified else 'NOT verified'}): {roles}",
                highlight=False,
            )
        console.print(
            f"{len(m.matches)} same-role head pairs across seeds; attention-pattern correlation "
            f"{m.same_role_similarity:.2f} (other pairs {m.other_similarity:.2f}); nearest role head has "
            f"the same role {m.nearest_agreement:.2f}",
            highlight=False,
        )
    if not m.verified:
        err_console.print(f"[bold red]verification failed[/] ({len(m.failed_checks())} of {len(m.checks)} checks)")
        for c in m.failed_checks():
            err_console.print(
                f"- {c.name}: measured {c.measured:g}, needs {c.op} {c.threshold:g}"
                + (f". To fix: {c.hint}" if c.hint else ""),
                markup=False,
                highlight=False,
            )
        raise typer.Exit(1)

"""`interp bench ...`: benchmarks that print numbers (ratios against a baseline in the same run)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from agent.cli.output import console, print_json, quiet_library_warnings
from tools.errors import UserError
from tools.target import (
    resolve_device as _resolve_device,  # light: torch is imported inside
)

Device = Annotated[str, typer.Option(help="cpu, cuda, or auto (CUDA when available).")]


app = typer.Typer(
    help="Benchmarks: each prints its numbers and the baseline it is compared with. "
    "With no sub-command: every benchmark, one combined table.",
    invoke_without_command=True,
)


@app.callback()
def all_benchmarks(
    ctx: typer.Context,
    json_out: Annotated[bool, typer.Option("--json", help="Machine-readable output (with no sub-command).")] = False,
) -> None:
    """Run recovery (built-ins, 300 s each), throughput, labeling and memory; print one table."""
    if ctx.invoked_subcommand is not None:
        return
    from experiments.benchmarks import labeling as lab
    from experiments.benchmarks import memory as mem
    from experiments.benchmarks import recovery as rec
    from experiments.benchmarks.throughput import as_dict, run

    quiet_library_warnings()
    with console.status("recovery: auditing the built-in organisms") as status:
        r = rec.run(on_result=lambda s: status.update(f"recovery: {s.organism} done"))
        status.update("throughput")
        t = as_dict(run())
        status.update("labeling")
        lb = lab.run()
        status.update("memory")
        m = mem.run()
    out = {"recovery": r["totals"], "throughput": t, "labeling": lb, "memory": m}
    if json_out:
        print_json(out)
        return
    table = Table(title="interp-agent benchmarks")
    for col in ("benchmark", "measure", "value", "baseline / target"):
        table.add_column(col)
    tot = r["totals"]
    table.add_row("recovery", "recall (planted mechanisms)", str(tot["recall"]), "target >= 0.9")
    table.add_row("", "precision (scored causal claims)", str(tot["precision"]), "target >= 0.9")
    table.add_row("", "false positives on null", str(tot["false_positives_on_null"]), "target 0")
    table.add_row("", "max budget overshoot", f"{tot['max_overshoot']:.1%}", "<= 5%")
    table.add_row(
        "throughput",
        "harvest tokens/s",
        str(t["harvest_tokens_per_s"]),
        f"naive run_with_cache {t['naive_tokens_per_s']} ({t['speedup']}x)",
    )
    table.add_row(
        "",
        "harvest GFLOP/s",
        str(t["harvest_gflops"]),
        f"fp32 matmul {t['matmul_gflops']} ({t['share_of_matmul']} of it)",
    )
    table.add_row(
        "memory",
        "embedded upserts/s",
        str(m["embedded"]["upsert_records_per_s"]),
        f"embedding alone {m['embedding_only_per_s']}/s",
    )
    table.add_row(
        "labeling",
        "features/min (3 scorers)",
        str(lb["features_per_minute"]),
        f"target >= 60; collecting examples alone is 1/{lb['label_vs_collect_only']} of it",
    )
    console.print(table)


@app.command()
def throughput(
    batch: Annotated[int, typer.Option(min=1, help="Sequences per pass.")] = 8,
    seq: Annotated[int, typer.Option(min=2, max=1024, help="Tokens per sequence.")] = 128,
    repeats: Annotated[int, typer.Option(min=1, help="Timings per variant (best is kept).")] = 3,
    device: Device = "auto",
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Activation harvesting at a middle layer of a GPT-2-small-shaped model vs naive run_with_cache."""
    from experiments.benchmarks.throughput import as_dict, run

    quiet_library_warnings()
    r = as_dict(run(batch=batch, seq=seq, repeats=repeats, device=_resolve_device(device)))
    if json_out:
        print_json(r)
        return
    _key_values("activation harvesting throughput", r)


@app.command()
def recovery(
    organisms: Annotated[
        str, typer.Option(help="all | NAME,NAME | SPEC.yaml,... (spec files are trained on the spot).")
    ] = "all",
    brain: Annotated[str, typer.Option(help="heuristic | claude | scripted:FILE")] = "heuristic",
    budget: Annotated[str, typer.Option(help="Wall clock per investigation, e.g. 300s or 5m.")] = "300s",
    seeds: Annotated[int, typer.Option(min=1, help="Investigations per organism (brain seeds 0..N-1).")] = 1,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            max=64,
            help="Workers of a local Ray cluster running investigations at once "
            "(each keeps its own budget, so runs sharing a CPU do less in it).",
        ),
    ] = 1,
    runs: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Independent runs per organism (seeds 0..K-1): single-run recall beside the recall of the runs' "
            "claims pooled (any run; a majority of runs).",
        ),
    ] = None,
    ray_address: Annotated[
        str | None, typer.Option("--ray", help="Run on the Ray cluster at ADDRESS instead (`ray start --head`).")
    ] = None,
    quick: Annotated[bool, typer.Option("--quick", help="CI harness check: backdoor only, 60 s budget.")] = False,
    out: Annotated[Path | None, typer.Option(help="Folder for the run folders (default: a temp folder).")] = None,
    device: Device = "auto",
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Audit organisms blind and score the claims against their manifests (rules:
    experiments/benchmarks/recovery.py)."""
    from agent.budget import parse_duration
    from experiments.benchmarks import recovery as rec

    quiet_library_warnings()
    if runs is not None and seeds != 1 and runs != seeds:
        raise UserError(f"--runs {runs} and --seeds {seeds}: both count the runs per organism; give one")
    seeds = runs or seeds
    which = ["backdoor"] if quick else [w.strip() for w in organisms.split(",") if w.strip()]
    seconds = 60.0 if quick else parse_duration(budget)
    rec.organisms(which)  # unknown names fail here, before any training
    dev = _resolve_device(device)
    import contextlib
    import sys

    # Ray's driver prints its workers' messages to stdout: kept off the JSON answer
    quiet = contextlib.redirect_stdout(sys.stderr) if json_out else contextlib.nullcontext()
    with quiet, console.status("recovery") as status:
        r = rec.run(
            which,
            seeds=seeds,
            budget_s=seconds,
            out=out,
            brain=brain,
            device=dev,
            workers=workers,
            address=ray_address,
            on_result=lambda s: status.update(f"{s.organism} seed {s.seed}: recall {s.recall}"),
        )
    if json_out:
        print_json(r)
        return
    if "pooled" in r:
        _pooled_table(r["pooled"])
    table = Table(title=f"mechanism recovery ({brain} brain, {seconds:g} s budget, {seeds} seed(s))")
    table.add_column("organism", overflow="fold", min_width=8)
    for col in (
        "seed",
        "planted",
        "found",
        "recall",
        "precision",
        "false pos.",
        "unscored",
        "first s",
        "used s",
        "over",
    ):
        table.add_column(col, overflow="fold")
    for s in r["organisms"]:
        if not s["verified"]:
            table.add_row(
                s["organism"], str(s["seed"]), "-", "-", "unverified organism: not scored", "", "", "", "", "", ""
            )
            continue
        table.add_row(
            s["organism"],
            str(s["seed"]),
            str(s["planted"]),
            str(s["recovered"]),
            _num(s["recall"]),
            _num(s["precision"]),
            str(s["false_positives"]),
            str(s["unscored"]),
            _num(s["first_correct_s"]),
            f"{s['seconds']:.1f}",
            f"{s['overshoot']:.1%}",
        )
    t = r["totals"]
    table.add_row(
        "total",
        "",
        str(t["planted"]),
        str(t["recovered"]),
        _num(t["recall"]),
        _num(t["precision"]),
        str(t["false_positives"]),
        str(t["unscored"]),
        _num(t["median_first_correct_s"]),
        f"{t['seconds']:.1f}",
        f"{t['max_overshoot']:.1%}",
    )
    console.print(table)
    console.print(
        "found: planted items recovered by a supported causal claim; first s: time to the first correct "
        "claim (total: median); over: budget overshoot (total: max)"
    )
    _family_table(r["families"])
    if t["missed"]:
        console.print(f"missed ({len(t['missed'])}):", markup=False)
        for line in t["missed"]:
            console.print(f"  {line}", markup=False)
    if t["unverified_organisms"]:
        console.print(
            f"unverified organisms, not scored: {', '.join(t['unverified_organisms'])} "
            "(`interp organism show NAME` says which check failed)",
            markup=False,
        )
    console.print(f"false positives on null organisms: {t['false_positives_on_null']}; run folders: {r['out']}")


def _pooled_table(pooled: dict[str, Any]) -> None:
    table = Table(title="single-run vs pooled recall (claims pooled by mechanism and component)")
    for col in ("organism", "runs", "planted", "single run", "any run (precision)", "majority (precision)"):
        table.add_column(col, overflow="fold")
    for row in pooled["organisms"]:
        table.add_row(
            row["organism"],
            str(row["runs"]),
            str(row["planted"]),
            _num(row["single_recall"]),
            f"{_num(row['any_recall'])} ({_num(row['any_precision'])})",
            f"{_num(row['majority_recall'])} ({_num(row['majority_precision'])})",
        )
    t = pooled["totals"]
    table.add_row(
        "total", "", str(t["planted"]), _num(t["single_recall"]), _num(t["any_recall"]), _num(t["majority_recall"])
    )
    console.print(table)


@app.command()
def parallel(
    workers: Annotated[int, typer.Option(min=2, max=64, help="Workers of the local Ray cluster.")] = 2,
    budget: Annotated[str, typer.Option(help="Wall clock per audit (each concludes before it).")] = "120s",
    organisms: Annotated[
        str, typer.Option(help="Organisms audited (NAME,NAME).")
    ] = "backdoor,eval_aware,features,induction",
    seeds: Annotated[int, typer.Option(min=1, help="Audits per organism.")] = 2,
    out: Annotated[Path | None, typer.Option(help="Folder for the run folders (default: a temp folder).")] = None,
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Recovery audits (by default 8: 4 organisms x 2 seeds) serial in this process, then on a local Ray
    cluster: the throughput ratio (goal >= 1.6x on 2 cores), Ray's own overheads (start, per task), and the
    ratio this machine allows (the same audits alone on one worker's share of the threads)."""
    import contextlib
    import sys

    from agent.budget import parse_duration
    from experiments.benchmarks import parallel as par

    quiet_library_warnings()
    seconds = parse_duration(budget)
    # Ray's driver prints its workers' messages to stdout: kept off the JSON answer
    with contextlib.redirect_stdout(sys.stderr) if json_out else contextlib.nullcontext():
        r = par.run(
            workers=workers,
            budget_s=seconds,
            out=out,
            organisms=[o.strip() for o in organisms.split(",") if o.strip()],
            seeds=seeds,
        )
    if json_out:
        print_json(r)
        return
    _key_values("serial vs Ray", {k: v for k, v in r.items() if k not in ("ray", "bound")})
    _key_values("Ray overheads", r["ray"])
    _key_values(f"what bounds the ratio here (the seed-{seeds - 1} audits)", r["bound"])


def _family_table(families: dict[str, dict[str, Any]]) -> None:
    table = Table(title="by mechanism family (95% interval on recall: Wilson, over pooled items)")
    for col in (
        "family",
        "runs",
        "unverified",
        "planted",
        "found",
        "recall",
        "95% interval",
        "precision",
        "false pos.",
    ):
        table.add_column(col, overflow="fold")
    for name, t in families.items():
        ci = t["recall_ci95"]
        table.add_row(
            name,
            str(t["runs"]),
            str(t["unverified"]),
            str(t["planted"]),
            str(t["recovered"]),
            _num(t["recall"]),
            "-" if ci is None else f"[{ci[0]:g}, {ci[1]:g}]",
            _num(t["precision"]),
            str(t["false_positives"]),
        )
    console.print(table)


def _key_values(title: str, r: dict[str, Any]) -> None:
    table = Table(title=title, show_header=False)
    for k, v in r.items():
        table.add_row(k, str(v))
    console.print(table)


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:g}"


@app.command()
def labeling(
    model: Annotated[
        str, typer.Option(help="organism (an SAE trained here on the features organism) | smollm2")
    ] = "organism",
    features: Annotated[
        int | None,
        typer.Option(min=1, help="organism: SAE width (default 128); smollm2: first N of its 2304 (default all)."),
    ] = None,
    corpus: Annotated[
        int | None, typer.Option(min=4, help="Contexts in the corpus (default 1000 organism, 1500 smollm2).")
    ] = None,
    device: Device = "auto",
    workers: Annotated[
        int | None,
        typer.Option(min=1, help="smollm2: also run the job sharded on this many local Ray workers (speed-up)."),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Offline labeling with all three scorers: features per minute, fixed cost against a plain harvest."""
    from experiments.benchmarks.labeling import run, run_smollm2

    if model not in ("organism", "smollm2"):
        raise UserError(f"--model {model!r}: the labeling bench takes organism or smollm2")
    quiet_library_warnings()
    dev = _resolve_device(device)
    with console.status("labeling benchmark"):
        if model == "smollm2":
            r = run_smollm2(corpus_size=corpus or 1500, features=features, device=dev, workers=workers)
        else:
            if workers is not None:
                raise UserError("--workers runs the smollm2 labeling bench in parallel: give --model smollm2")
            r = run(n_features=features or 128, corpus_size=corpus or 1000, device=dev)
    if json_out:
        print_json(r)
        return
    _key_values(f"feature labeling throughput on {model} (heuristic explainer, rule judge, 3 scorers)", r)


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


@app.command()
def budget(
    organisms: Annotated[
        str, typer.Option(help="Built-in organisms, comma-separated.")
    ] = "backdoor,eval_aware,induction",
    budgets: Annotated[str, typer.Option(help="Budgets in seconds, comma-separated.")] = "10,30,120",
    load: Annotated[
        str, typer.Option(help="idle, busy (a CPU-burning process beside each run), or idle,busy.")
    ] = "idle,busy",
    quick: Annotated[bool, typer.Option("--quick", help="CI harness check: backdoor, 10 s, busy only.")] = False,
    out: Annotated[Path | None, typer.Option(help="Folder for the run folders (default: a temp folder).")] = None,
    device: Device = "auto",
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Does the time-box hold? Overshoot by an outside clock (limit 5%) and budget use, idle and under load."""
    from experiments.benchmarks import budget as bud
    from experiments.organisms.cache import resolve_spec

    quiet_library_warnings()
    names = ["backdoor"] if quick else [w.strip() for w in organisms.split(",") if w.strip()]
    for n in names:
        resolve_spec(n)  # unknown names fail before anything runs
    try:
        seconds = [10.0] if quick else [float(b) for b in budgets.split(",") if b.strip()]
    except ValueError:
        raise UserError(f"--budgets {budgets!r}: give seconds separated by commas, e.g. 10,30,120") from None
    loads = ["busy"] if quick else [x.strip() for x in load.split(",") if x.strip()]
    with console.status("budget") as status:
        r = bud.run(
            names,
            seconds,
            loads,
            out=out,
            device=_resolve_device(device),
            on_result=lambda x: status.update(f"{x.organism} {x.load} {x.budget_s:g}s: {x.overshoot:.1%} over"),
        )
    if json_out:
        print_json(r)
        return
    table = Table(title="time-box: wall clock around the graph vs the budget")
    for col in (
        "organism",
        "load",
        "budget s",
        "load s",
        "graph s",
        "over",
        "used",
        "refused",
        "deadline",
        "claims",
        "stopped",
    ):
        table.add_column(col, overflow="fold")
    for x in r["runs"]:
        table.add_row(
            x["organism"],
            x["load"],
            f"{x['budget_s']:g}",
            f"{x['load_s']:.1f}",
            f"{x['graph_s']:.1f}",
            f"{x['overshoot']:.1%}",
            f"{x['used']:.0%}",
            str(x["refused"]),
            str(x["stopped_at_deadline"]),
            str(x["claims"]),
            x["stop_reason"],
        )
    console.print(table)
    t = r["totals"]
    console.print(
        f"max overshoot idle {_pct(t['max_overshoot_idle'])}, busy {_pct(t['max_overshoot_busy'])} "
        f"(limit {t['overshoot_limit']:.0%}); every run within: {t['all_within']}; every budget used "
        f"(finished, or >= 80% used): {t['all_used_well']}; run folders: {r['out']}"
    )
    for x in r["runs"]:
        for msg in x["refusals"]:
            console.print(f"  refused in {x['organism']} {x['load']} {x['budget_s']:g}s: {msg}", markup=False)


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.1%}"


@app.command()
def attribution(
    smollm2: Annotated[bool, typer.Option(help="Also the SmolLM2-135M tasks (induction, IOI; minutes).")] = True,
    device: Device = "auto",
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Attribution vs mean-ablating each head: rank correlation, top-k overlap, cost ratio."""
    from experiments.benchmarks.attribution import run

    quiet_library_warnings()
    with console.status("attribution benchmark: per-head ablation vs attribution") as status:
        r = run(
            device=_resolve_device(device),
            smollm2=smollm2,
            on_task=lambda name, _: status.update(f"attribution benchmark: {name} done"),
        )
    if json_out:
        print_json(r)
        return
    circuits = {task: t for task, t in r.items() if task.startswith("circuit_")}
    table = Table(title="attribution vs per-head mean ablation (ratios: attribution / ablation)")
    for col in ("task", "ref", "steps", "path", "rho", "rho |.|", "top-k", "passes", "tokens", "seconds"):
        table.add_column(col, overflow="fold")
    for task, t in r.items():
        if task in circuits:
            continue
        for v in t["variants"]:
            overlap = next(x for k, x in v.items() if k.endswith("_overlap"))
            table.add_row(
                task,
                v["reference"],
                str(v["steps"]),
                v["path"],
                _num(v["spearman_signed"]),
                _num(v["spearman_abs"]),
                _num(overlap),
                _num(v["cost_ratio_passes"]),
                _num(v["cost_ratio_forward_tokens"]),
                _num(v["cost_ratio_seconds"]),
            )
    console.print(table)
    console.print(
        "rho: Spearman over all heads of the estimate vs the effect of ablating the head alone; "
        "top-k: share of the k heads largest by |effect| among the k largest by |estimate|"
    )
    table = Table(title="circuit from the attribution ranking vs random head sets of the same size")
    cols = ("organism", "heads", "circuit", "manifest heads in it", "faithful", "random", "complete", "random")
    for col in (*cols, "sets of its size as good: F / C / both"):
        table.add_column(col, overflow="fold")
    for task, c in circuits.items():
        every = c.get("every_set")
        standing = (
            f"{every['sets_as_faithful']} / {every['sets_as_complete']} / {every['sets_as_good_on_both']} "
            f"of {every['same_size_sets'] - 1}"
            if every
            else "too many to measure"
        )
        table.add_row(
            task.removeprefix("circuit_"),
            str(c["heads"]),
            f"{len(c['circuit'])}: {', '.join(c['circuit'])}",
            f"{c['planted_in_circuit']} of {len(c['planted'])}",
            _num(c["faithfulness"]),
            f"{_num(c['random_faithfulness'])} ± {_num(c['random_faithfulness_std'])}",
            _num(c["completeness"]),
            f"{_num(c['random_completeness'])} ± {_num(c['random_completeness_std'])}",
            standing,
        )
    console.print(table)


@app.command()
def realmodel(
    questions: Annotated[str, typer.Option(help="Suite questions by name, comma-separated (default: all).")] = "",
    model: Annotated[
        str, typer.Option(help="smollm2, gguf:PATH or organism:NAME (a harness check on an organism).")
    ] = "smollm2",
    budget: Annotated[str, typer.Option(help="Wall clock per investigation, e.g. 300s or 5m.")] = "300s",
    brain: Annotated[str, typer.Option(help="heuristic | claude | scripted:FILE")] = "heuristic",
    suite: Annotated[
        Path | None, typer.Option(help="Another questions.json (default: experiments/benchmarks/realmodel/).")
    ] = None,
    seed: Annotated[int, typer.Option(min=0, help="The brain's seed.")] = 0,
    out: Annotated[Path | None, typer.Option(help="Folder for the run folders (default: a temp folder).")] = None,
    device: Device = "auto",
    json_out: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Questions about SmolLM2 (induction, IOI, capitals, one to refuse) vs reference answers from plain
    TransformerLens."""
    from agent.budget import parse_duration
    from experiments.benchmarks import realmodel as rm

    quiet_library_warnings()
    names = [q.strip() for q in questions.split(",") if q.strip()] or None
    seconds = parse_duration(budget)
    with console.status("realmodel") as status:
        r = rm.run(
            names,
            model=model,
            budget_s=seconds,
            out=out,
            brain=brain,
            seed=seed,
            device=_resolve_device(device),
            suite=suite or rm.SUITE,
            on_status=status.update,
        )
    if json_out:
        print_json(r)
        return
    _print_realmodel(r)


def _print_realmodel(r: dict[str, Any]) -> None:
    from rich.text import Text

    table = Table(title=f"real-model questions on {r['model']} ({r['brain']} brain, {r['budget_s']:g} s budget each)")
    for col in (
        "question",
        "claims (component: effect / control)",
        "overlap with reference",
        "causal + control",
        "s",
        "fwd tokens",
        "verdict",
    ):
        table.add_column(col, overflow="fold")
    for q in r["questions"]:
        claims = (
            "\n".join(
                f"{'+'.join(c['heads'] + [f'MLP{m}' for m in c['mlps']]) or c['mechanism']}: "
                f"{_num(c['effect'])} / {_num(c['control'])}"
                for c in q.get("claims", [])
            )
            or "-"
        )
        overlap = "-"
        if "reference_top_heads" in q:
            overlap = f"heads {len(q['heads_overlap'])}/{len(q['reference_top_heads'])} {' '.join(q['heads_overlap'])}"
            if "reference_top_drop_heads" in q:
                overlap += f"\n(top drops {len(q['drop_overlap'])}/{len(q['reference_top_drop_heads'])})"
            if "reference_top_mlps" in q:
                overlap += f"\nMLPs {len(q['mlps_overlap'])}/{len(q['reference_top_mlps'])} " + " ".join(
                    f"L{m}" for m in q["mlps_overlap"]
                )
        causal = "-" if not q.get("claims") else str(q["all_causal_with_control"])
        table.add_row(
            q["name"],
            Text(claims),
            overlap,
            causal,
            f"{q['seconds']:g}",
            str(q["forward_tokens"]),
            Text(q["verdict"] if len(q["verdict"]) <= 90 else q["verdict"][:89] + "…"),
        )
    console.print(table)
    ref = r["reference"]
    for name, a in ref["answers"].items():
        extra = f"; top MLPs {', '.join(f'L{m}' for m in a['top_mlps'])}" if "top_mlps" in a else ""
        drops = [k for k, v in sorted((a.get("head_effects") or {}).items(), key=lambda kv: kv[1]) if v < 0][:5]
        extra += f"; largest drops {' '.join(drops)}" if drops and a["kind"] != "induction" else ""
        console.print(f"reference {name}: top heads {' '.join(a['top_heads'])}{extra}", markup=False)
    how = f"computed now in {ref['seconds']} s" if ref["computed"] else "from the cache"
    console.print(f"references {how} (weights {ref['weights_hash']}); run folders: {r['out']}", markup=False)
    for q in r["questions"]:
        mark = {True: "PASS", False: "FAIL", None: "----"}[q["passed"]]
        console.print(f"{mark} {q['name']}: {q['verdict']}", markup=False)

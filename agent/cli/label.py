"""`interp label`: explain and score SAE features in bulk; `interp label export` for Neuronpedia."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from agent.cli.memory import MemoryOpt, _store
from agent.cli.output import console, print_json, quiet_library_warnings
from tools.errors import UserError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from agent.labeling.job import LabelRun
    from memory.records import FeatureLabel
    from tools.target import Target

app = typer.Typer(
    help="Label SAE features in bulk with scored explanations (offline by default).", invoke_without_command=True
)


@app.callback()
def label(
    ctx: typer.Context,
    model: Annotated[str | None, typer.Option(help="The target: organism:NAME, smollm2, gguf:PATH, hf:PATH.")] = None,
    sae: Annotated[str | None, typer.Option(help="SAE folder (SAELens format) on that model.")] = None,
    features: Annotated[str, typer.Option(help="all, START:END, a list like 3,7,9, or one index.")] = "all",
    brain: Annotated[str, typer.Option(help="heuristic (offline) | claude")] = "heuristic",
    judge: Annotated[str, typer.Option(help="rule (applies the structured explanation) | claude")] = "rule",
    scorers: Annotated[
        str, typer.Option(help="Comma-separated: detection, fuzzing, intervention.")
    ] = "detection,fuzzing,intervention",
    corpus: Annotated[
        Path | None, typer.Option(help="Text file, one context per line (default: the organism's own usage sample).")
    ] = None,
    corpus_size: Annotated[int, typer.Option(min=4, help="Contexts to use from the corpus.")] = 1000,
    batch: Annotated[
        bool, typer.Option("--batch", help="claude only: explain through the Message Batches API.")
    ] = False,
    claude_model: Annotated[str | None, typer.Option(help="Claude model id (default: a current Sonnet).")] = None,
    seed: Annotated[int, typer.Option(min=0, max=2**32 - 1, help="Seeds the explain / score split and samples.")] = 0,
    out: Annotated[
        Path | None,
        typer.Option(
            help="JSONL file the labels stream to as they finish, one per line (default: "
            "labels/labels-KEY.jsonl beside the memory folder, e.g. .interp/labels/; KEY from the model, SAE "
            "and explainer). A rerun with the same file skips every feature already in it."
        ),
    ] = None,
    memory: MemoryOpt = None,
    workers: Annotated[
        int | None, typer.Option(help="Label in this many Ray worker processes on this machine (features sharded).")
    ] = None,
    ray: Annotated[
        str | None, typer.Option("--ray", help="Label on an existing Ray cluster (HOST:PORT, from `ray start --head`).")
    ] = None,
    shards: Annotated[
        int | None, typer.Option(min=1, help="With --workers/--ray: shards (default one per worker; each harvests).")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Explain each feature from its activating contexts, score the explanation on held-out ones, store the labels."""
    if ctx.invoked_subcommand is not None:
        return
    if not model or not sae:
        raise UserError("give --model SPEC and --sae DIR (e.g. interp label --model organism:features --sae runs/sae)")
    from agent.labeling.explainers import check_brains, make_explainer, make_judge
    from agent.labeling.job import check_scorers, parse_features
    from agent.labeling.job import label as run_label
    from agent.targets import load
    from tools.sae import load_sae

    quiet_library_warnings()
    score_names = tuple(s.strip() for s in scorers.split(",") if s.strip())
    check_scorers(score_names)
    check_brains(brain, judge, batch)
    parallel = workers is not None or ray is not None
    if parallel and batch:
        raise UserError("--batch sends every request in one Message Batch already: drop --workers/--ray with it")
    if shards is not None and not parallel:
        raise UserError("--shards splits a parallel job: give --workers N or --ray ADDRESS with it")
    explainer = make_explainer(brain, claude_model, _batch_state(sae, claude_model) if batch else None)
    judge_obj = make_judge(judge, claude_model)
    target = load(model)
    feats = parse_features(features, load_sae(sae, target.model).cfg.d_sae)
    texts = _corpus(target, corpus, corpus_size, seed)
    store = _store(memory, create=True)
    explainer_name = explainer.name
    out_file = out or _default_out(store.location, target.model_id, sae, explainer_name)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("labeling"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]} features/min"),
        TimeRemainingColumn(),
        console=console,
        disable=json_out,
    ) as bar:
        task = bar.add_task("label", total=len(feats), rate="-")
        import time

        t0 = time.perf_counter()
        labelled = 0

        def tick(n: int) -> None:
            nonlocal labelled
            labelled += n
            bar.advance(task, n)
            bar.update(task, rate=f"{60 * labelled / max(time.perf_counter() - t0, 1e-9):.0f}")

        if parallel:
            run = _label_parallel(
                workers, ray, shards, model, target.model_id, sae, feats, texts, out_file, brain, judge,
                claude_model, score_names, store.location, seed, tick,
            )  # fmt: skip
        else:
            run = run_label(
                target,
                sae,
                feats,
                texts,
                explainer,
                judge_obj,
                score_names,
                store,
                seed=seed,
                on_feature=tick,
                out=out_file,
            )
            bar.advance(task, len(run.skipped) + len(run.known_dead))
    ok = [r for r in run.labelled if r.error is None]
    errors = [r for r in run.labelled if r.error is not None]
    summary = {
        "model_id": target.model_id,
        "sae": sae,
        "explainer": explainer_name,
        "out": str(out_file),
        "labelled": len(ok),
        "errors": len(errors),
        "skipped_already_labelled": len(run.skipped),
        "skipped_known_dead": len(run.known_dead),
        "dead": len(run.dead),
        "seconds": round(run.seconds, 1),
        "features_per_minute": round(60 * len(run.labelled) / run.seconds, 1) if run.seconds else None,
        "mean_scores": _means(ok),
    }
    if json_out:
        print_json({**summary, "labels": [r.model_dump(mode="json") for r in run.labelled]})
        return
    table = Table(title=f"labels ({summary['explainer']}, judge {judge_obj.name})")
    for col in ("feature", "label", *score_names):
        table.add_column(col, overflow="fold")
    for r in run.labelled[:40]:
        table.add_row(
            str(r.feature),
            r.label or f"[red]error:[/] {r.error}",
            *[f"{r.scores[s]:.2f}" if s in r.scores else "-" for s in score_names],
        )
    console.print(table)
    if len(run.labelled) > 40:
        console.print(f"... {len(run.labelled) - 40} more (all in memory; `interp label export`)")
    console.print(
        f"{len(ok)} labelled, {len(errors)} errors ({len(run.dead)} dead), {len(run.skipped)} already "
        f"labelled and {len(run.known_dead)} known dead skipped; {summary['features_per_minute']} features/min; "
        "mean scores " + ", ".join(f"{k} {v:.3f}" for k, v in _means(ok).items())
    )


def _label_parallel(
    workers: int | None,
    ray: str | None,
    shards: int | None,
    model: str,
    model_id: str,
    sae: str,
    features: list[int],
    corpus: list[str],
    out: Path,
    brain: str,
    judge: str,
    claude_model: str | None,
    scorers: tuple[str, ...],
    memory: str,
    seed: int,
    tick: Callable[[int], None],
) -> LabelRun:
    """The job across Ray workers (agent/labeling/sharded.py), its memory served to them for the job."""
    import time

    from agent.labeling.job import DEAD, LabelRun
    from agent.labeling.sharded import label_sharded
    from agent.parallel.engine import Engine
    from agent.parallel.job_memory import shared_memory

    t0 = time.perf_counter()
    with Engine(workers=workers, address=ray) as engine, shared_memory(memory, engine.local) as url:
        job = label_sharded(
            engine, model, model_id, sae, features, corpus, out, brain, judge, claude_model, scorers, url, seed,
            shards, on_feature=tick,
        )  # fmt: skip
    run = LabelRun()
    run.labelled = job.appended
    run.dead = [r.feature for r in job.appended if r.error == DEAD]
    run.known_dead = job.known_dead
    this_job = {r.feature for r in job.appended}
    run.skipped = [f for f in features if f not in this_job and f not in job.known_dead]
    run.seconds = time.perf_counter() - t0
    return run


def _default_out(memory: str, model_id: str, sae: str, explainer: str) -> Path:
    """labels/labels-KEY.jsonl beside the memory folder (.interp/labels/ for the default memory or a
    Chroma server), one file per model, SAE and explainer: a rerun finds it and resumes."""
    import hashlib

    sae_id = str(Path(sae).resolve()) if Path(sae).is_dir() else sae
    key = hashlib.sha256(f"{model_id}|{sae_id}|{explainer}".encode()).hexdigest()[:12]
    folder = Path(".interp") if memory.startswith(("http://", "https://")) else Path(memory).expanduser().parent
    return folder / "labels" / f"labels-{key}.jsonl"


def _means(labels: Iterable[FeatureLabel]) -> dict[str, float]:
    out: dict[str, list[float]] = {}
    for r in labels:
        for k, v in r.scores.items():
            out.setdefault(k, []).append(v)
    return {k: round(sum(v) / len(v), 4) for k, v in out.items()}


def _batch_state(sae: str, claude_model: str | None) -> Path:
    """The Message Batches state file of a claude --batch job on this SAE (keeps the batch id across restarts)."""
    import hashlib

    from agent.labeling.explainers import explainer_name

    key = hashlib.sha256(f"{Path(sae).resolve()}|{explainer_name('claude', claude_model).split(':', 1)[1]}".encode())
    return Path(".interp") / "labels" / f"batch-{key.hexdigest()[:12]}.json"


def _corpus(target: Target, corpus: Path | None, n: int, seed: int) -> list[str]:
    from tools.corpus import CorpusSpec, resolve_corpus

    if corpus is not None:
        return list(resolve_corpus(target.model, CorpusSpec(file=str(corpus)))[:n])
    usage = target.usage_prompts(n, seed)
    if usage is None:
        raise UserError("this model ships no usage sample: give --corpus FILE (one context per line)")
    return usage


@app.command("export")
def export(
    path: Annotated[Path, typer.Argument(help="File to write.")],
    format: Annotated[str, typer.Option("--format", help="neuronpedia")] = "neuronpedia",
    model_id: Annotated[str | None, typer.Option("--model-id", help="Only labels of this model id.")] = None,
    sae: Annotated[
        str | None, typer.Option("--sae", help="Only labels of this SAE (folder or RELEASE/SAE_ID).")
    ] = None,
    source_id: Annotated[
        str | None,
        typer.Option(
            "--source-id",
            help="Neuronpedia source id LAYER-SET, e.g. 1-res-sae (default: the SAE's SAELens neuronpedia_id).",
        ),
    ] = None,
    neuronpedia_model: Annotated[
        str | None,
        typer.Option(
            "--neuronpedia-model",
            help="The model's id on Neuronpedia (default: from neuronpedia_id, else the labels' model id).",
        ),
    ] = None,
    memory: MemoryOpt = None,
) -> None:
    """Write stored labels (errors left out) as Neuronpedia upload bodies and Explanation rows."""
    from agent.labeling.export import neuronpedia

    if format != "neuronpedia":
        raise UserError(f"unknown format {format!r}: supported: neuronpedia")
    doc = neuronpedia(_store(memory), path, model_id, sae, source_id, neuronpedia_model)
    console.print(f"wrote {len(doc['uploads'])} explanations to {path}", highlight=False)
    for note in doc["notes"][2:-1]:
        console.print(f"[dim]note: {note}[/]", highlight=False)

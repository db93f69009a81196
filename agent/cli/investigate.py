"""`interp investigate`: launch (or resume) an investigation from the terminal."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, cast

import typer

from agent.cli.output import console, err_console, print_json, quiet_library_warnings
from tools.errors import UserError

if TYPE_CHECKING:
    from agent.context import RunContext, RunSettings
    from agent.parallel.investigation_task import RunOutcome
    from agent.state import InvestigationState


def _ask_in_terminal(payload: dict[str, Any]) -> list[dict[str, str]]:
    """Live review: one decision per claim, typed by the person at the terminal."""
    answers: list[dict[str, str]] = []
    console.rule("live review")
    for c in payload["claims"]:
        console.print(f"[bold]{c['id']}[/] ({c['tier']}; effect {c['effect']}, control {c['control']})")
        console.print(f"  {c['statement']}", markup=False, highlight=False)
        try:
            choice = typer.prompt("  accept / reject / more-evidence / skip", default="skip")
            while choice not in ("accept", "reject", "more-evidence", "skip"):
                choice = typer.prompt("  please type accept, reject, more-evidence or skip", default="skip")
            note = typer.prompt("  note", default="") if choice != "skip" else ""
        except (typer.Abort, EOFError):
            # input ended (a closed pipe, Ctrl-D): what was not decided stays queued
            console.print("[yellow]input ended: the remaining claims stay queued for `interp review`[/]")
            break
        answers.append({"claim_id": c["id"], "decision": choice, "note": note})
    return answers


def investigate(
    question: Annotated[
        str | None, typer.Argument(help='The question, e.g. "audit this model for hidden triggers".')
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", help="Target: organism:NAME, smollm2, gguf:PATH, hf:PATH ...")
    ] = None,
    prompts: Annotated[
        str | None,
        typer.Option(
            "--prompts",
            help=(
                'Prompts file: .txt (one per line) or .json ({"prompts", "answers", "versus", '
                '"corrupted"}: one each per prompt; or {"positive", "negative"}).'
            ),
        ),
    ] = None,
    sae: Annotated[list[str] | None, typer.Option("--sae", help="SAE folder (repeatable).")] = None,
    budget: Annotated[str, typer.Option("--budget", help="Wall-clock budget: 300s, 5m, 1h.")] = "300s",
    max_forward_tokens: Annotated[int | None, typer.Option("--max-forward-tokens")] = None,
    max_cost: Annotated[float | None, typer.Option("--max-cost", help="LLM dollars.")] = None,
    brain: Annotated[
        str | None,
        typer.Option(
            "--brain",
            help="heuristic | claude[:MODEL] | scripted:FILE "
            "(default: claude when ANTHROPIC_API_KEY is set, else heuristic).",
        ),
    ] = None,
    run_dir: Annotated[str | None, typer.Option("--run-dir", help="Run folder (default .interp/runs/RUN_ID).")] = None,
    resume: Annotated[str | None, typer.Option("--resume", help="Continue the run in this folder.")] = None,
    restart: Annotated[
        bool,
        typer.Option(
            "--restart",
            help="With --resume: start that run over with its settings (old files move to RUN_DIR/previous/).",
        ),
    ] = False,
    review: Annotated[
        str,
        typer.Option("--review", help="live: ask in the terminal at the end; queue: leave claims for `interp review`."),
    ] = "queue",
    memory: Annotated[
        str | None,
        typer.Option("--memory", help="Memory folder or http://HOST:PORT (default $INTERP_MEMORY or .interp/memory)."),
    ] = None,
    no_memory: Annotated[bool, typer.Option("--no-memory", help="Run without memory.")] = False,
    seed: Annotated[
        int, typer.Option("--seed", help="0 to 4294967295: seeds the brain's prompts and the tools' controls.")
    ] = 0,
    max_decisions: Annotated[int, typer.Option("--max-decisions", help="Brain decisions before the run stops.")] = 200,
    pivot: Annotated[
        float,
        typer.Option("--pivot", help="Share of the budget a line of attack may use without a supported hypothesis."),
    ] = 0.4,
    device: Annotated[str | None, typer.Option("--device")] = None,
    runs: Annotated[
        int | None,
        typer.Option(
            "--runs",
            help="N independent runs (seeds SEED..SEED+N-1), each in its own folder under --run-dir, "
            "then one pooled report over them (pooled.md, pooled.json).",
        ),
    ] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", help="With --runs: run them on a local Ray cluster of W workers.")
    ] = None,
    ray_address: Annotated[
        str | None,
        typer.Option("--ray", help="With --runs: run them on the Ray cluster at ADDRESS (`ray start --head`)."),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON (no live display).")] = False,
) -> None:
    """Investigate a model: hypotheses, experiments with controls, claims, a report."""
    quiet_library_warnings()
    from agent import investigate as runner
    from agent.brains import default_brain
    from agent.budget import parse_duration
    from agent.context import RunSettings
    from agent.display import Display
    from agent.question import parse_question
    from memory.store import default_location

    if review not in ("live", "queue"):
        raise UserError(f"--review {review!r}: use live or queue")
    ask = _ask_in_terminal if review == "live" else None
    show = not json_out and sys.stdout.isatty()
    display = Display(console) if show else None
    if (workers is not None or ray_address is not None) and runs is None:
        raise UserError("--workers and --ray run the runs of a pooled job: give --runs N too")
    if workers is not None and ray_address is not None:
        raise UserError("give either --workers N (a local Ray cluster) or --ray ADDRESS (an existing one), not both")
    if runs is not None and (resume or review == "live"):
        raise UserError(
            "--runs starts a new pooled job, reviewed afterwards with `interp review --pooled DIR`: "
            "it takes neither --resume nor --review live"
        )
    if restart and not resume:
        raise UserError("--restart starts over the run of a folder: give it with --resume RUN_DIR --restart")
    if resume and restart:
        if question or model:
            raise UserError("--restart starts the run over as it was launched: give only the run folder")
        settings, aside = runner.restart(Path(resume))
        err_console.print(f"the old run's files are kept in {aside}", style="dim")
        with display or _Null():
            state, ctx = runner.start(settings, Path(resume), display=display, ask=ask)
    elif resume:
        if question or model:
            raise UserError("--resume continues a run as it was launched: give only the run folder")
        with display or _Null():
            state, ctx = runner.resume(Path(resume), display=display, ask=ask)
    else:
        if not question:
            raise UserError(
                'give a question, e.g. interp investigate "audit this model for hidden triggers" '
                "--model organism:backdoor"
            )
        # the question first: one the investigator cannot act on is refused before anything else is checked or loaded
        q = parse_question(question, prompts, sae)
        if not model:
            raise UserError("give the target with --model, e.g. --model organism:backdoor (see `interp organism list`)")
        settings = RunSettings(
            question=q.model_dump(mode="json"),
            model=model,
            brain=brain or default_brain(),
            wall_seconds=parse_duration(budget),
            max_forward_tokens=max_forward_tokens,
            max_usd=max_cost,
            memory=None if no_memory else (memory or default_location()),
            review=cast(Literal["live", "queue"], review),  # RunSettings refuses any other value, with its message
            seed=seed,
            pivot_share=pivot,
            max_decisions=max_decisions,
            device=device,
        )
        settings.new_budget()
        from agent.brains import make_brain

        make_brain(settings.brain, seed)  # a bad brain spec or a missing API key fails before any loading
        if runs is not None:
            _pooled(settings, runs, run_dir, workers, ray_address, json_out)
            return
        with display or _Null():
            state, ctx = runner.start(settings, Path(run_dir) if run_dir else None, display=display, ask=ask)
    _finish(state, ctx, json_out)


def _pooled(
    settings: RunSettings, runs: int, run_dir: str | None, workers: int | None, address: str | None, json_out: bool
) -> None:
    from agent.pooled import POOLED_MD
    from agent.replicated import run_replicated

    def progress(o: RunOutcome) -> None:
        if not json_out:
            console.print(
                f"seed {o.seed}: {len(o.claims)} claim(s), {o.stop_reason or 'done'} ({o.budget_seconds_used:.1f} s)"
                + (" [resumed after its worker died]" if o.resumed else ""),
                highlight=False,
            )

    import contextlib

    # Ray's driver prints its workers' deaths to stdout: diagnostics, kept off the JSON answer
    with contextlib.redirect_stdout(sys.stderr) if json_out else contextlib.nullcontext():
        report, parent = run_replicated(
            settings, runs, Path(run_dir) if run_dir else None, workers=workers, address=address, on_run=progress
        )
    if json_out:
        print_json({"parent": str(parent), **report.model_dump(mode="json")})
        return
    console.print(f"[bold]{len(report.runs)} runs[/] in {report.seconds:.1f} s ({report.workers})")
    for p in report.claims:
        console.print(
            f"[green]{p.supported}/{p.runs}[/] [{p.mechanism}] {p.statement} "
            f"(refuted {p.refuted}, inconclusive {p.inconclusive})",
            highlight=False,
        )
    if not report.claims:
        console.print("no run made a claim")
    console.print(f"pooled report: [bold]{parent / POOLED_MD}[/]; review it with `interp review --pooled {parent}`")


class _Null:
    def __enter__(self) -> _Null:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def _finish(state: InvestigationState, ctx: RunContext, json_out: bool) -> None:
    from agent.run_folder import RunFolder

    claims = state.get("claims", [])
    if json_out:
        print_json(
            {
                "run_dir": str(ctx.run_dir),
                "run_id": state.get("run_id"),
                "stop_reason": state.get("stop_reason"),
                "claims": claims,
                "hypotheses": [
                    {"statement": h["plan"]["statement"], "status": h["status"], "note": h["note"]}
                    for h in state.get("hypotheses", [])
                ],
                "errors": state.get("errors", []),
                "budget": ctx.budget.to_state(),
                "budget_seconds_used": round(ctx.budget.elapsed(), 3),
                "load_seconds": round(ctx.budget.load_seconds, 3),  # start-up, not counted in the budget
                "report": str(RunFolder(ctx.run_dir).report_md),
            }
        )
        return
    console.print(
        f"[bold]stopped:[/] {state.get('stop_reason')}  ({ctx.budget.elapsed():.1f} s, "
        f"{ctx.budget.spent_forward_tokens} forward tokens)"
    )
    console.print(f"loading took {ctx.budget.load_seconds:.1f} s (not counted in the budget)", style="dim")
    for c in claims:
        console.print(f"[green]claim[/] [{c['evidence_tier']}] {c['statement']}", markup=True, highlight=False)
    if not claims:
        console.print("no hypothesis met its pre-registered criterion: no claims")
    refuted = sum(h["status"] in ("refuted", "inconclusive") for h in state.get("hypotheses", []))
    console.print(
        f"{len(state.get('hypotheses', []))} hypotheses ({refuted} refuted or inconclusive), "
        f"{len(state.get('errors', []))} errors"
    )
    folder = RunFolder(ctx.run_dir)
    console.print(f"report: [bold]{folder.report_md}[/] (plots: {folder.REPORT_HTML}; trace: {folder.TRACE})")
    err_console.print(f"resume or inspect later with --resume {ctx.run_dir}", style="dim")

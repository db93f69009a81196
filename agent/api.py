"""An investigation as one Python call, for notebooks: typed settings in, a typed result out.

    from agent.api import investigate
    result = investigate("audit this model for hidden triggers", model="organism:backdoor", budget="60s")

It runs what `interp investigate` runs (same graph, brains, budget and run folder) with review queued for
`interp review`. It lives in `agent.api`, not `agent/__init__`: `agent.investigate` is already the module
that launches runs, and a function of the same name on the package would shadow it.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from memory.records import Claim
from tools.errors import UserError, validation_lines


class Settings(BaseModel):
    """How to run one investigation (the options of `interp investigate`)."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    question: str = Field(min_length=1)
    """The question, e.g. "audit this model for hidden triggers"."""
    model: str = Field(min_length=1)
    """Target: organism:NAME, smollm2, gguf:PATH, hf:PATH, or a TransformerLens model name."""
    budget: str | float = "300s"
    """Wall-clock budget for the investigation (model loading is not counted): seconds, or '90s', '5m', '1h'."""
    prompts: str | None = None
    """Prompts file: .txt (one per line) or .json (as `interp investigate --prompts` takes)."""
    sae: list[str] = []
    """SAE folders (SAELens format) on the model."""
    brain: str | None = None
    """heuristic | claude[:MODEL] | scripted:FILE (default: claude when ANTHROPIC_API_KEY is set, else heuristic)."""
    memory: str | None = None
    """Memory folder or http://HOST:PORT; None runs without memory (nothing recalled, nothing queued for review)."""
    run_dir: str | None = None
    """Run folder (default .interp/runs/RUN_ID, or under $INTERP_RUNS)."""
    seed: int = Field(0, ge=0, le=2**32 - 1)
    """Seeds the brain's prompts and the tools' controls."""
    max_forward_tokens: int | None = Field(None, gt=0)
    """Forward-token budget."""
    max_cost: float | None = Field(None, gt=0)
    """LLM dollar budget."""
    pivot: float = Field(0.4, gt=0, le=1)
    """Share of the budget a line of attack may use without a supported hypothesis."""
    max_decisions: int = Field(200, ge=1)
    """Brain decisions before the run stops."""
    device: str | None = None
    """cpu or cuda (default: CUDA when available, or $INTERP_DEVICE)."""


class HypothesisOutcome(BaseModel):
    """A pre-registered hypothesis and what its test showed."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    statement: str
    """What was hypothesised."""
    status: str
    """supported, refuted, inconclusive, error, skipped or untested."""
    note: str
    """Why (the judged fields, the error, or the earlier run that tried it)."""


class Result(BaseModel):
    """What an investigation found and where its files are."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    run_id: str
    """The run's id."""
    run_dir: Path
    """The run folder (report.md, report.html, claims.json, trace.jsonl); `interp investigate --resume` takes it."""
    report: Path
    """report.md in the run folder."""
    claims: list[Claim]
    """Claims that met their pre-registered criterion (queued for review; none is established until accepted)."""
    hypotheses: list[HypothesisOutcome]
    """Every hypothesis registered, supported or not."""
    stop_reason: str | None
    """Why the run stopped."""
    budget_seconds: float
    """The wall-clock budget."""
    budget_used_seconds: float
    """Seconds of it the investigation used."""
    load_seconds: float
    """Seconds spent loading the model and measuring its speed before the budget's clock started (not counted)."""
    forward_tokens: int
    """Forward tokens the tools spent."""
    errors: list[str]
    """Calls that failed or were refused, as their messages."""


def investigate(question: str | Settings, model: str | None = None, **options: object) -> Result:
    """Run one investigation: `investigate(QUESTION, model=SPEC, budget="60s", ...)` with the fields of
    `Settings` as keywords, or `investigate(Settings(...))`. Bad settings raise UserError naming the field."""
    if isinstance(question, Settings):
        if model is not None or options:
            raise UserError("give either a Settings object or the question with keyword options, not both")
        settings = question
    else:
        try:
            settings = Settings(question=question, model=model or "", **options)
        except ValidationError as e:
            raise UserError(
                "investigate: invalid settings\n"
                + "\n".join(validation_lines(e))
                + f"\n  settings: {', '.join(Settings.model_fields)}"
            ) from None
    return _run(settings)


def _run(s: Settings) -> Result:
    from agent import investigate as runner
    from agent.brains import default_brain, make_brain
    from agent.budget import parse_duration
    from agent.context import RunSettings
    from agent.question import parse_question
    from agent.run_folder import RunFolder

    q = parse_question(s.question, s.prompts, s.sae or None)
    run = RunSettings(
        question=q.model_dump(mode="json"),
        model=s.model,
        brain=s.brain or default_brain(),
        wall_seconds=parse_duration(str(s.budget)),
        max_forward_tokens=s.max_forward_tokens,
        max_usd=s.max_cost,
        memory=s.memory,
        review="queue",
        seed=s.seed,
        pivot_share=s.pivot,
        max_decisions=s.max_decisions,
        device=s.device,
    )
    run.new_budget()
    make_brain(run.brain, s.seed)  # a bad brain spec or a missing API key fails before any loading
    state, ctx = runner.start(run, Path(s.run_dir) if s.run_dir else None)
    b = ctx.budget
    return Result(
        run_id=state.get("run_id") or run.run_id,
        run_dir=ctx.run_dir,
        report=RunFolder(ctx.run_dir).report_md,
        claims=[Claim.model_validate(c) for c in state.get("claims", [])],
        hypotheses=[
            HypothesisOutcome(statement=h["plan"]["statement"], status=h["status"], note=h["note"])
            for h in state.get("hypotheses", [])
        ],
        stop_reason=state.get("stop_reason"),
        budget_seconds=b.wall_seconds,
        budget_used_seconds=round(b.elapsed(), 3),
        load_seconds=round(b.load_seconds, 3),
        forward_tokens=b.spent_forward_tokens,
        errors=[e["message"] for e in state.get("errors", [])],
    )

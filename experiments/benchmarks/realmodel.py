"""Real-model questions: does the investigator find, on SmolLM2, what a plain reference computation finds?

The suite (experiments/benchmarks/realmodel/questions.json) holds questions as a user asks them, each
with its --prompts file. Each question is put to a real investigation (the graph, the brain, the tools,
in this process, as `interp investigate` runs it, without memory); its claims are read back from the
run folder's claims.json and matched by component against the question's reference answer, computed
apart by experiments/benchmarks/realmodel_reference.py (plain TransformerLens, none of the project's
tools) and cached by the model's weight hash, the script and the question's prompts. Computing them for
SmolLM2 costs ~95,000 forward-token equivalents (IOI: 270 head ablations over 36 prompts, 70,812;
capitals: 270 heads + 30 MLPs over 30 prompts, 23,400; induction: one pass, 1,280): 641 CPU seconds,
28.5 minutes of wall clock on the shared 2-core CPU (2026-11-23, load average ~7), loading included.

Matching rules (structure only; free text never counts):

- A claim names heads by `component.layer` + `component.head`, or by `component.heads`; an MLP by
  `component.layer` with an MLP hook (`blocks.N.hook_mlp_out`, `blocks.N.mlp.*`) and no head.
- A claim counts towards the overlap only when it is supported, at the causal tier, and carries a
  control (the effect of the same intervention on random components); a claim about a group of more
  heads than the reference's top 5 does not count (naming many heads would name the top ones by chance).
- overlap = reference top-5 heads (top-3 MLP layers) named by a counting claim.
- A question passes when overlap >= its `min_heads` and no claim of it lacks the causal tier or a
  control. A question with no threshold is reported, not passed or failed.
- A question the suite expects to be refused passes only when the investigator refuses it before any
  model loads (a UserError from reading the question); one that is answered instead fails.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from tools.errors import UserError, validation_lines

SUITE = Path(__file__).resolve().parent / "realmodel" / "questions.json"
REFERENCE_SCRIPT = Path(__file__).resolve().parent / "realmodel_reference.py"
MAX_GROUP = 5
"""A claim naming more heads than this (the reference's top-k) does not count towards the overlap."""
_MLP_HOOK = re.compile(r"^blocks\.(\d+)\.(hook_mlp_out|hook_mlp_in|mlp\.)")


class SuiteEntry(BaseModel):
    """One question of the suite."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    name: str
    """Short name (`--questions` selects by it)."""
    question: str
    """The question as a user asks it."""
    prompts: str | None = None
    """Its --prompts file, relative to the suite file (None: asked without prompts)."""
    reference: Literal["induction", "logit_diff", "logprob"] | None = None
    """What the reference script computes for it (None: no reference)."""
    match: Literal["heads", "heads+mlps"] = "heads"
    """Which claimed components are matched against the reference."""
    min_heads: int | None = None
    """Reference top-5 heads a counting claim must name to pass (None: reported only)."""
    expect: Literal["answer", "refuse"] = "answer"
    """Whether the investigator should answer the question or refuse it before any compute."""


def load_suite(path: Path = SUITE) -> list[SuiteEntry]:
    """The suite's entries; a malformed suite file is a UserError naming what is wrong."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except OSError as e:
        raise UserError(f"suite file {path}: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise UserError(f"suite file {path} is not valid JSON ({e.msg}, line {e.lineno})") from None
    if not isinstance(data, dict) or not isinstance(data.get("questions"), list):
        raise UserError(f'suite file {path}: expected {{"questions": [{{"name": ..., "question": ...}}, ...]}}')
    try:
        entries = [SuiteEntry.model_validate(q) for q in data["questions"]]
    except ValidationError as e:
        raise UserError(f"suite file {path}:\n" + "\n".join(validation_lines(e))) from None
    names = [e.name for e in entries]
    if len(set(names)) != len(names):
        raise UserError(f"suite file {path}: question names repeat ({', '.join(names)})")
    return entries


def select(entries: list[SuiteEntry], names: list[str] | None) -> list[SuiteEntry]:
    """The entries named (all when none), in the suite's order; an unknown name lists the valid ones."""
    if not names:
        return entries
    known = {e.name for e in entries}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise UserError(
            f"--questions: no question named {', '.join(unknown)}; the suite has {', '.join(sorted(known))}"
        )
    return [e for e in entries if e.name in names]


# -- matching ------------------------------------------------------------------------------------------


def claimed_components(claim: dict) -> tuple[set[tuple[int, int]], set[int]]:
    """(heads as (layer, head), MLP layers) a claim names."""
    comp = claim.get("component") or {}
    heads: set[tuple[int, int]] = set()
    mlps: set[int] = set()
    if comp.get("layer") is not None and comp.get("head") is not None:
        heads.add((int(comp["layer"]), int(comp["head"])))
    for pair in comp.get("heads") or []:
        heads.add((int(pair[0]), int(pair[1])))
    hook = comp.get("hook") or ""
    if comp.get("head") is None and (m := _MLP_HOOK.match(hook)):
        mlps.add(int(m.group(1)))
    return heads, mlps


def causal_with_control(claim: dict) -> bool:
    """Supported (or accepted), causal tier, and a control recorded beside its effect."""
    return (
        claim.get("status") in ("supported", "accepted")
        and claim.get("evidence_tier") == "causal"
        and claim.get("control") is not None
    )


def head_label(layer: int, head: int) -> str:
    return f"L{layer}H{head}"


def _parse_head(label: str) -> tuple[int, int]:
    m = re.fullmatch(r"L(\d+)H(\d+)", label)
    if not m:
        raise ValueError(f"not a head label: {label!r}")
    return int(m.group(1)), int(m.group(2))


def match(entry: SuiteEntry, claims: list[dict], reference: dict | None) -> dict:
    """Per-claim rows, the overlap with the reference, and pass / fail (rules in the module docstring)."""
    rows, heads_named, mlps_named = [], set(), set()
    for c in claims:
        heads, mlps = claimed_components(c)
        ok = causal_with_control(c)
        if ok and len(heads) <= MAX_GROUP:
            heads_named |= heads
            mlps_named |= mlps
        rows.append(
            {
                "id": c.get("id"),
                "statement": c.get("statement"),
                "mechanism": c.get("mechanism"),
                "heads": [head_label(*h) for h in sorted(heads)],
                "mlps": sorted(mlps),
                "effect": c.get("effect"),
                "control": c.get("control"),
                "tier": c.get("evidence_tier"),
                "causal_with_control": ok,
            }
        )
    out: dict = {"claims": rows, "all_causal_with_control": all(r["causal_with_control"] for r in rows)}
    if reference is None:
        return out
    top_heads = [_parse_head(x) for x in reference.get("top_heads", [])]
    out["reference_top_heads"] = [head_label(*h) for h in top_heads]
    out["heads_overlap"] = [head_label(*h) for h in top_heads if h in heads_named]
    effects = reference.get("head_effects") or {}
    if reference.get("kind") in ("logit_diff", "logprob") and effects:
        # for reading: the ranking is by |effect|; these are the heads whose ablation lowers the metric most
        drops = [k for k, v in sorted(effects.items(), key=lambda kv: kv[1]) if v < 0][: len(top_heads)]
        out["reference_top_drop_heads"] = drops
        out["drop_overlap"] = [k for k in drops if _parse_head(k) in heads_named]
    if entry.match == "heads+mlps" and "top_mlps" in reference:
        out["reference_top_mlps"] = list(reference["top_mlps"])
        out["mlps_overlap"] = [m for m in reference["top_mlps"] if m in mlps_named]
    if entry.min_heads is not None:
        out["passed"] = len(out["heads_overlap"]) >= entry.min_heads and bool(rows) and out["all_causal_with_control"]
    return out


# -- reference, cached by weights ------------------------------------------------------------------------


def reference_model(spec: str) -> tuple[str, str]:
    """(what the reference script loads, the weights hash the run's target will report) for a --model spec."""
    from experiments.benchmarks.realmodel_reference import file_hash

    spec = spec.strip()
    if spec == "smollm2":
        from tools.target import smollm2_gguf_path

        return "smollm2", file_hash(smollm2_gguf_path())
    if spec.startswith("gguf:"):
        path = Path(spec.removeprefix("gguf:")).expanduser()
        if not path.is_file():
            raise UserError(f"--model {spec}: no such file")
        return f"gguf:{path}", file_hash(path)
    if spec.startswith("organism:"):
        from experiments.organisms.cache import ensure_trained, resolve_spec
        from tools.checkpoint import is_checkpoint, weights_hash

        rest = Path(spec.removeprefix("organism:")).expanduser()
        folder = rest if rest.is_dir() and is_checkpoint(rest) else ensure_trained(resolve_spec(str(rest)))
        return str(folder), weights_hash(folder)
    raise UserError(
        f"--model {spec}: the realmodel bench takes smollm2, gguf:PATH or organism:NAME "
        "(its reference script loads those without the project's loaders)"
    )


def _cache_key(entry: SuiteEntry, suite_dir: Path, weights: str) -> str:
    h = hashlib.sha256()
    h.update(REFERENCE_SCRIPT.read_bytes())  # a changed reference computation is a new reference
    h.update(entry.reference.encode())
    if entry.prompts:
        h.update((suite_dir / entry.prompts).read_bytes())
    return f"{weights}-{entry.name}-{h.hexdigest()[:12]}"


def references(
    spec: str, entries: list[SuiteEntry], suite: Path, device: str | None, on_status=None, cache: Path | None = None
) -> tuple[dict, dict]:
    """({question name: reference answer}, how it was obtained: cached or computed, with its cost).
    Missing ones are computed by the reference script in a subprocess, then cached in `cache`
    (default: realmodel-reference/ in the organism cache)."""
    from experiments.organisms.cache import cache_root

    load_as, weights = reference_model(spec)
    folder = Path(cache) if cache else cache_root() / "realmodel-reference"
    wanted = [e for e in entries if e.reference]
    out, missing = {}, []
    for e in wanted:
        path = folder / f"{_cache_key(e, suite.parent, weights)}.json"
        if path.is_file():
            out[e.name] = json.loads(path.read_text())
        else:
            missing.append(e)
    info = {"weights_hash": weights, "cached": sorted(out), "computed": [e.name for e in missing]}
    if not missing:
        return out, info
    if on_status:
        on_status(f"reference answers for {', '.join(e.name for e in missing)} (plain TransformerLens)")
    with tempfile.TemporaryDirectory(prefix="interp-realmodel-ref-") as tmp:
        target = Path(tmp) / "reference.json"
        cmd = [
            sys.executable,
            "-W",
            "ignore",
            "-m",
            "experiments.benchmarks.realmodel_reference",
            "--model",
            load_as,
            "--suite",
            str(suite),
            "--questions",
            ",".join(e.name for e in missing),
            "--out",
            str(target),
            "--device",
            device or "cpu",
        ]
        t0 = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[2], check=False)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
            raise UserError("the reference script failed:\n  " + "\n  ".join(tail))
        result = json.loads(target.read_text())
    if result["weights_hash"] != weights:
        raise UserError(
            f"the reference script loaded weights {result['weights_hash']}, expected {weights}: "
            "the model file changed while the bench ran; run it again"
        )
    info["seconds"] = round(time.perf_counter() - t0, 1)
    info["load_seconds"] = result["load_seconds"]
    info["max_logit_diff_vs_transformers"] = result["max_logit_diff_vs_transformers"]
    out.update(store(result, missing, suite, folder))
    return out, info


def store(result: dict, entries: list[SuiteEntry], suite: Path, folder: Path) -> dict:
    """Cache the reference script's answers (its --out JSON) for `entries`, one file per question, keyed by
    the weights it loaded, the script and the question's prompts; returns them by question name."""
    weights = result["weights_hash"]
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for e in entries:
        answer = {**result["questions"][e.name], "weights_hash": weights}
        (folder / f"{_cache_key(e, Path(suite).parent, weights)}.json").write_text(json.dumps(answer, indent=2))
        out[e.name] = answer
    return out


# -- investigations ----------------------------------------------------------------------------------------


def investigate(
    entry: SuiteEntry, suite: Path, model: str, budget_s: float, out: Path, brain: str, seed: int, device: str | None
) -> dict:
    """Put one question to a real investigation; what it claimed, or the refusal, with time and cost."""
    from agent import investigate as runner
    from agent.context import RunSettings
    from agent.question import parse_question

    prompts = str(suite.parent / entry.prompts) if entry.prompts else None
    t0 = time.perf_counter()
    try:
        question = parse_question(entry.question, prompts)
    except UserError as e:
        return {
            "status": "refused",
            "message": str(e),
            "seconds": round(time.perf_counter() - t0, 2),
            "forward_tokens": 0,
            "claims": [],
        }
    run_dir = out / entry.name
    settings = RunSettings(
        question=question.model_dump(mode="json"),
        model=model,
        brain=brain,
        wall_seconds=budget_s,
        memory=None,
        seed=seed,
        device=device,
    )
    try:
        state, ctx = runner.start(settings, run_dir)
    except UserError as e:
        return {
            "status": "error",
            "message": str(e),
            "seconds": round(time.perf_counter() - t0, 2),
            "forward_tokens": 0,
            "claims": [],
        }
    claims_file = run_dir / "claims.json"
    claims = json.loads(claims_file.read_text()) if claims_file.is_file() else []
    run = RunSettings.load(run_dir)
    hyps = state.get("hypotheses", [])
    return {
        "status": "answered",
        "kind": question.kind,
        "claims": claims,
        "run_dir": str(run_dir),
        "weights_hash": run.weights_hash,
        "stop_reason": state.get("stop_reason"),
        "hypotheses": len(hyps),
        "supported": sum(h["status"] == "supported" for h in hyps),
        "errors": len(state.get("errors", [])),
        "seconds": round(ctx.budget.elapsed(), 1),
        "load_seconds": round(ctx.budget.load_seconds, 1),
        "forward_tokens": ctx.budget.spent_forward_tokens,
    }


def score(entry: SuiteEntry, ran: dict, reference: dict | None) -> dict:
    """One question's line of the benchmark: the run, its match against the reference, and its verdict."""
    row = {"name": entry.name, "question": entry.question, "expect": entry.expect, **ran}
    if ran["status"] == "refused":
        row["passed"] = entry.expect == "refuse"
        row["verdict"] = f"refused: {ran['message'].splitlines()[0]}"
        return row
    if ran["status"] == "error":
        row["passed"] = False
        row["verdict"] = f"error: {ran['message'].splitlines()[0]}"
        return row
    if reference is not None and ran.get("weights_hash") not in (None, reference.get("weights_hash")):
        row["passed"] = False
        row["verdict"] = (
            f"error: the run's weights {ran['weights_hash']} are not the reference's {reference.get('weights_hash')}"
        )
        return row
    row.update(match(entry, ran["claims"], reference))
    if entry.expect == "refuse":
        row["passed"] = False
        row["verdict"] = "answered a question the suite expects refused"
    elif "passed" in row:
        n = len(row["heads_overlap"])
        row["verdict"] = (
            f"{'pass' if row['passed'] else 'fail'}: {n} of {len(row['reference_top_heads'])} "
            f"reference heads (need {entry.min_heads})"
            + ("" if row["all_causal_with_control"] else "; a claim lacks the causal tier or a control")
        )
    else:
        row["passed"] = None
        row["verdict"] = "reported (no threshold)"
    return row


def run(
    names: list[str] | None = None,
    model: str = "smollm2",
    budget_s: float = 300.0,
    out: Path | None = None,
    brain: str = "heuristic",
    seed: int = 0,
    device: str | None = None,
    suite: Path = SUITE,
    on_status=None,
) -> dict:
    """Every selected question: reference (cached or computed), investigation, match; `on_status(text)` as it goes."""
    suite = Path(suite)
    entries = select(load_suite(suite), names)
    for e in entries:
        if e.prompts and not (suite.parent / e.prompts).is_file():
            raise UserError(f"suite entry {e.name}: prompts file {suite.parent / e.prompts} does not exist")
    out = Path(out) if out else Path(tempfile.mkdtemp(prefix="interp-realmodel-"))
    refs, ref_info = references(model, entries, suite, device, on_status)
    rows = []
    for e in entries:
        if on_status:
            on_status(f"investigating {e.name}")
        rows.append(score(e, investigate(e, suite, model, budget_s, out, brain, seed, device), refs.get(e.name)))
    return {
        "model": model,
        "brain": brain,
        "budget_s": budget_s,
        "seed": seed,
        "out": str(out),
        "reference": {**ref_info, "answers": refs},
        "questions": rows,
        "passed": all(r["passed"] is not False for r in rows),
    }

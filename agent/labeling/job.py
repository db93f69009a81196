"""Label SAE features in bulk: collect examples, explain, score, store.

Resumable: a feature that already has a label (not an error) for the same
model, SAE and explainer is skipped, so a rerun after a crash or a failed call
labels only what is missing. A failed explanation or judge call is stored as
an error with its reason, never as a score.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from agent.labeling.examples import FeatureExamples, collect
from agent.labeling.explanation import Explanation, examples_text, heuristic_explanation
from agent.labeling.scorers import SCORERS, JudgeError, RuleJudge, detection, fuzzing, intervention
from tools.errors import UserError

if TYPE_CHECKING:
    from agent.labeling.scorers import Judge
    from memory.records import FeatureLabel
    from memory.store import MemoryStore
    from tools.target import Target


class ExplainError(Exception):
    """The explainer gave no usable explanation (API failure, malformed or refused answer)."""


class Explainer(Protocol):
    name: str

    def explain(self, fe: FeatureExamples) -> Explanation:
        """An explanation of one feature, or ExplainError."""


class HeuristicExplainer:
    """The token set carrying most of the activation, with context and output when they are consistent."""

    name = "heuristic"

    def explain(self, fe: FeatureExamples) -> Explanation:
        e = heuristic_explanation(fe)
        if e is None:
            raise ExplainError("no activating examples to explain")
        return e


def parse_features(spec: str, d_sae: int) -> list[int]:
    """'all', '0:512', '3,7,9' or '5' -> feature indices, checked against the SAE's width."""
    if spec.strip() == "all":
        return list(range(d_sae))
    out: list[int] = []
    try:
        for part in spec.split(","):
            part = part.strip()
            if ":" in part:
                lo, hi = part.split(":")
                out += list(range(int(lo or 0), int(hi or d_sae)))
            elif part:
                out.append(int(part))
    except ValueError:
        raise UserError(f"--features {spec!r}: use all, START:END, a list like 3,7,9, or one index") from None
    if not out:
        raise UserError(f"--features {spec!r} selects no feature")
    bad = [f for f in out if not 0 <= f < d_sae]
    if bad:
        raise UserError(f"feature {bad[0]} is out of range: the SAE has features 0..{d_sae - 1}")
    return sorted(set(out))


def check_scorers(scorers: Sequence[str]) -> None:
    unknown = [s for s in scorers if s not in SCORERS]
    if unknown or not scorers:
        raise UserError(f"unknown scorer {(unknown or [''])[0]!r}; scorers: {', '.join(SCORERS)}")


@dataclass
class LabelRun:
    """What a labeling job did."""

    labelled: list[FeatureLabel] = field(default_factory=list)
    """Labels written this run (errors included)."""
    skipped: list[int] = field(default_factory=list)
    """Features already labelled by this explainer (resume)."""
    dead: list[int] = field(default_factory=list)
    """Features that never fire on the corpus (stored as errors, so they show up)."""
    seconds: float = 0.0
    """Wall clock."""


def done_features(store: MemoryStore | None, model_id: str, sae: str, explainer: str) -> set[int]:
    from memory.records import FeatureLabel

    if store is None:
        return set()
    return {
        r.feature
        for r in store.list(kind="feature_label", model=model_id)
        if isinstance(r, FeatureLabel) and r.sae_id == sae and r.explainer == explainer and r.error is None
    }


def label(
    target: Target,
    sae: str,
    features: list[int],
    corpus: list[str],
    explainer: Explainer,
    judge: Judge | None = None,
    scorers: tuple[str, ...] = SCORERS,
    store: MemoryStore | None = None,
    seed: int = 0,
    on_feature: Callable[[int], object] | None = None,
    chunk: int = 64,
) -> LabelRun:
    """Label `features`; `on_feature(n_done)` is called after each (for a progress bar)."""
    from tools.sae import load_sae

    check_scorers(scorers)
    judge = judge or RuleJudge()
    sae_obj = load_sae(sae, target.model)
    hook = sae_obj.cfg.metadata.hook_name
    sae_id = str(Path(sae).resolve()) if Path(sae).is_dir() else sae
    start = time.perf_counter()
    run = LabelRun()
    done = done_features(store, target.model_id, sae_id, explainer.name)
    run.skipped = [f for f in features if f in done]
    todo = [f for f in features if f not in done]
    for i in range(0, len(todo), chunk):
        batch = collect(target, sae, todo[i : i + chunk], corpus, seed=seed)
        if hasattr(explainer, "prepare"):
            explainer.prepare(batch)  # batch explainers fetch every explanation of the chunk at once
        records = []
        for fe in batch:
            rec = _label_one(target, sae, sae_id, hook, fe, explainer, judge, scorers, seed)
            if fe.dead:
                run.dead.append(fe.feature)
            records.append(rec)
            if on_feature:
                on_feature(1)
        if store is not None:
            store.put_many(records)  # per chunk: a crash loses at most one chunk
        run.labelled += records
    run.seconds = time.perf_counter() - start
    return run


def _label_one(
    target: Target,
    sae: str,
    sae_id: str,
    hook: str,
    fe: FeatureExamples,
    explainer: Explainer,
    judge: Judge,
    scorers: Sequence[str],
    seed: int,
) -> FeatureLabel:
    from memory.records import FeatureLabel

    base = {
        "model_id": target.model_id,
        "sae_id": sae_id,
        "hook": hook,
        "feature": fe.feature,
        "explainer": explainer.name,
        "judge": judge.name,
    }
    if fe.dead:
        return FeatureLabel(**base, error="dead on this corpus: no activating context to explain")
    try:
        exp = explainer.explain(fe)
    except ExplainError as e:
        return FeatureLabel(**base, error=f"explanation failed: {e}")
    scores, errors = {}, {}
    for name in scorers:
        try:
            if name == "detection":
                v = detection(judge, exp, fe)
            elif name == "fuzzing":
                v = fuzzing(judge, exp, fe, seed)
            else:
                silent = [n.prefix for n in fe.negatives if n.prefix and n.token not in exp.tokens][:16]
                v = intervention(target, sae, hook, exp, fe, silent, seed)
        except JudgeError as e:
            errors[name] = str(e)
            continue
        if v is None:
            errors[name] = "not enough held-out contexts (or no predicted output) to score"
        else:
            scores[name] = v
    return FeatureLabel(
        **base,
        label=exp.text,
        explanation=exp.model_dump(),
        scores=scores,
        score_errors=errors,
        examples=examples_text(fe.top[:5]),
    )

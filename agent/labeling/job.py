"""Label SAE features in bulk: collect examples, explain, score, store.

One pass over the corpus serves every feature of the job (agent/labeling/examples.py).
Labels stream out as each chunk of features finishes: appended to a JSONL file
(one FeatureLabel per line, flushed and fsync'd) and put into memory.

Resumable: a feature that already has a label (not an error) for the same
model, SAE and explainer, in memory or in the JSONL file, is skipped, so a rerun
after a crash, a kill -9 or a failed call labels only what is missing. A feature
found dead on the corpus is final in the JSONL file (the same corpus finds it
dead again). Lines in the file missing from memory (killed between the two
writes) are put into memory at the start. A failed explanation or judge call is
stored as an error with its reason, never as a score, and is tried again on a
rerun (its new line follows the old one: the last line of a feature is current).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from agent.labeling.examples import ExampleSource, FeatureExamples
from agent.labeling.explanation import Explanation, examples_text, heuristic_explanation
from agent.labeling.scorers import (
    SCORERS,
    JudgeError,
    RuleJudge,
    SteerJob,
    detection,
    fuzzing,
    intervention,
    intervention_batch,
    steer_start,
)
from tools.errors import UserError

if TYPE_CHECKING:
    from sae_lens import SAE

    from agent.labeling.scorers import Judge
    from memory.records import FeatureLabel
    from memory.store import MemoryStore
    from tools.target import Target


# Silent contexts each label's intervention score steers on. 8, not 16: on a real model steering is most of a
# bulk job's time (SmolLM2, 2304 features: 95% of it at 16), and 8 contexts still tell a feature that moves the
# predicted token from random directions (the score is a rate over the contexts, compared with random directions
# on the same ones).
INTERVENTION_CONTEXTS = 8


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
    known_dead: list[int] = field(default_factory=list)
    """Features the JSONL file already records as dead on this corpus (not tried again)."""
    seconds: float = 0.0
    """Wall clock."""
    stages: dict[str, float] = field(default_factory=dict)
    """Wall clock of the one pass over the corpus (harvest, encode, select, predict) and of the
    per-feature stages (examples, explain, score, intervention, write)."""


DEAD = "dead on this corpus: no activating context to explain"


def stored_labels(store: MemoryStore | None, model_id: str, sae: str, explainer: str) -> dict[int, FeatureLabel]:
    """feature -> its record in memory (errors included) for this model, SAE and explainer."""
    from memory.records import FeatureLabel

    if store is None:
        return {}
    return {
        r.feature: r
        for r in store.list(kind="feature_label", model=model_id)
        if isinstance(r, FeatureLabel) and r.sae_id == sae and r.explainer == explainer
    }


def done_features(store: MemoryStore | None, model_id: str, sae: str, explainer: str) -> set[int]:
    return {f for f, r in stored_labels(store, model_id, sae, explainer).items() if r.error is None}


def read_labels(path: Path, model_id: str, sae: str, explainer: str) -> dict[int, FeatureLabel]:
    """feature -> its last line in a labels JSONL file, for this model, SAE and explainer. A last line
    cut short by a kill is dropped (and cut off the file, so the next append starts a clean line)."""
    from pydantic import ValidationError

    from memory.records import FeatureLabel

    if not path.is_file():
        return {}
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end < len(data):
        with open(path, "r+b") as f:
            f.truncate(end)
    out: dict[int, FeatureLabel] = {}
    for n, line in enumerate(data[:end].decode().splitlines(), 1):
        if not line.strip():
            continue
        try:
            r = FeatureLabel.model_validate_json(line)
        except ValidationError as e:
            raise UserError(
                f"{path} line {n} is not a feature label ({e.errors()[0]['msg']}): give --out a labels "
                "file written by `interp label`, or a new path"
            ) from None
        if r.model_id == model_id and r.sae_id == sae and r.explainer == explainer:
            out[r.feature] = r
    return out


def append_labels(path: Path, records: Sequence[FeatureLabel]) -> None:
    """Append records as JSON lines, flushed and fsync'd before returning (a kill loses nothing written)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write("".join(r.model_dump_json() + "\n" for r in records))
        f.flush()
        os.fsync(f.fileno())


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
    chunk: int = 32,
    out: Path | None = None,
) -> LabelRun:
    """Label `features`; `on_feature(n_done)` is called after each chunk (for a progress bar).
    With `out`, labels are also appended to that JSONL file as each chunk finishes, and the file is held by this
    job alone (two jobs on one file would both label every feature and append it twice)."""
    args = (target, sae, features, corpus, explainer, judge, scorers, store, seed, on_feature, chunk)
    if out is None:
        return _label(*args, None)
    from agent.run_lock import ProcessLock

    out.parent.mkdir(parents=True, exist_ok=True)
    what, advice = (
        f"labels file {out}",
        "wait for that labeling job to finish (it resumes from the file), or give another --out",
    )
    with ProcessLock(out.with_name(out.name + ".lock"), what, advice):
        return _label(*args, out)


def _label(
    target: Target,
    sae: str,
    features: list[int],
    corpus: list[str],
    explainer: Explainer,
    judge: Judge | None,
    scorers: tuple[str, ...],
    store: MemoryStore | None,
    seed: int,
    on_feature: Callable[[int], object] | None,
    chunk: int,
    out: Path | None,
) -> LabelRun:
    from tools.sae import load_sae

    check_scorers(scorers)
    judge = judge or RuleJudge()
    sae_obj = load_sae(sae, target.model)
    hook = sae_obj.cfg.metadata.hook_name
    sae_id = str(Path(sae).resolve()) if Path(sae).is_dir() else sae
    start = time.perf_counter()
    run = LabelRun()
    stored = stored_labels(store, target.model_id, sae_id, explainer.name)
    done = {f for f, r in stored.items() if r.error is None}
    known_dead: set[int] = set()
    if out is not None:
        final = {
            f: r
            for f, r in read_labels(out, target.model_id, sae_id, explainer.name).items()
            if r.error is None or r.error == DEAD
        }
        missing = [r for f, r in final.items() if f not in stored or (r.error is None and f not in done)]
        if store is not None and missing:
            store.put_many(missing)  # written to the file, killed before memory
        done |= {f for f, r in final.items() if r.error is None}
        known_dead = {f for f, r in final.items() if r.error is not None}
    run.skipped = [f for f in features if f in done]
    run.known_dead = [f for f in features if f in known_dead and f not in done]
    todo = [f for f in features if f not in done and f not in known_dead]
    if not todo:
        run.seconds = time.perf_counter() - start
        return run
    src = ExampleSource(target, sae, todo, corpus, seed=seed)
    run.stages = dict(src.acts.seconds)
    batched = "intervention" in scorers and steer_start(hook) is not None
    for i in range(0, len(todo), chunk):
        t0 = time.perf_counter()
        batch = [src.get(f) for f in todo[i : i + chunk]]
        t1 = time.perf_counter()
        if hasattr(explainer, "prepare"):
            explainer.prepare(batch)  # batch explainers fetch every explanation of the chunk at once
        local = tuple(s for s in scorers if not (batched and s == "intervention"))
        records = [_label_one(target, sae, sae_id, hook, fe, explainer, judge, local, seed) for fe in batch]
        t2 = time.perf_counter()
        if batched:
            _intervene(target, sae_obj, src, batch, records, seed)
        t3 = time.perf_counter()
        run.dead += [fe.feature for fe in batch if fe.dead]
        if out is not None:
            append_labels(out, records)  # the file first: on restart it refills memory
        if store is not None:
            store.put_many(records)
        run.labelled += records
        t4 = time.perf_counter()
        for k, v in (("examples", t1 - t0), ("explain_score", t2 - t1), ("intervention", t3 - t2), ("write", t4 - t3)):
            run.stages[k] = run.stages.get(k, 0.0) + v
        if on_feature:
            on_feature(len(batch))
    run.seconds = time.perf_counter() - start
    return run


def _intervene(
    target: Target,
    sae: SAE,
    src: ExampleSource,
    batch: list[FeatureExamples],
    records: list[FeatureLabel],
    seed: int,
) -> None:
    """Intervention scores for a chunk, all features' steered runs batched together."""
    from tools.prompts import token_id

    jobs: list[SteerJob] = []
    for fe, rec in zip(batch, records, strict=True):
        if rec.error is not None or rec.explanation is None:
            continue
        exp = Explanation.model_validate(rec.explanation)
        rows = src.silent_contexts(fe.feature, set(exp.tokens), INTERVENTION_CONTEXTS)
        if not exp.output or not rows:
            rec.score_errors["intervention"] = "not enough held-out contexts (or no predicted output) to score"
            continue
        try:
            out = token_id(target.model, exp.output[0], "the explanation's output")
        except UserError as e:
            rec.score_errors["intervention"] = str(e)
            continue
        jobs.append(SteerJob(fe.feature, out, rows))
    scores = intervention_batch(target.model, sae, src.acts, jobs, seed) if jobs else {}
    for rec in records:
        if rec.feature in scores:
            rec.scores["intervention"] = scores[rec.feature]


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
        return FeatureLabel(**base, error=DEAD)
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
                silent = [n.prefix for n in fe.negatives if n.prefix and n.token not in exp.tokens][
                    :INTERVENTION_CONTEXTS
                ]
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

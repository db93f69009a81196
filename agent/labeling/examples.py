"""What a feature does on a corpus, split so that explanations are scored on data they never saw.

One pass harvests the SAE's hook for every corpus position and encodes all
requested features at once (agent/labeling/activations.py: length-sorted
batches, early stop, sparse activations). The corpus is split by *prompt* (not
by position, so a context cannot leak from the explaining half into the
scoring half):

- explain half: the top-activating contexts, plus contexts sampled across
  activation quantiles (the explainer must cover weak activations too), and
  hard negatives: contexts ending on a token the feature fires on where it
  does not fire (delphi's contrastive examples);
- scoring half: activating contexts sampled across quantiles, and random
  non-activating contexts, as many of each.

The model's next-token prediction (`Example.next_token`) is computed only for
the top examples (what the explanation's `output` is read from: each needs the
rest of the forward pass, the dearest part of the job); elsewhere it is "".
Each feature's samples are drawn from its own seed (seed, feature), so a
feature gets the same examples whichever other features are labelled with it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from tools.errors import UserError

if TYPE_CHECKING:
    from agent.labeling.activations import CorpusActivations
    from tools.target import Target


# Top examples per feature that get the model's next-token prediction (the explanation's `output` is read from
# them): predictions finish the forward pass from the SAE's layer, the largest part of a job's fixed cost on a
# real model, and the 10 strongest contexts decide a consistent output as well as 20 do.
PREDICT_TOP = 10

# Silent contexts intervention scoring steers on: held-out prompts read at one shared position, so every feature of
# a chunk steers on (mostly) the same contexts and their prefixes run once for all of them. Per-feature random
# contexts gave each steered context its own tiny batch: on SmolLM2 that was 1.7 s a feature, 90% of a job.
STEER_POOL = 32


@dataclass
class Example:
    """One context, ending at the position the feature is read at."""

    tokens: list[str]
    """The window, ending at the position."""
    activations: list[float]
    """The feature's activation on each token of the window."""
    activation: float
    """Its activation at the last token."""
    prompt: int
    """Corpus index."""
    position: int
    """Position in that prompt."""
    next_token: str = ""
    """The model's top prediction at this position."""
    prefix: str = ""
    """The prompt's text up to and including this position (to run the model on)."""

    @property
    def token(self) -> str:
        return self.tokens[-1]

    @property
    def previous(self) -> str | None:
        return self.tokens[-2] if len(self.tokens) > 1 else None


@dataclass
class FeatureExamples:
    """A feature's examples, explain half and scoring half."""

    feature: int
    """Feature index."""
    density: float
    """Share of corpus positions where it is active."""
    max_activation: float
    """Largest activation seen."""
    top: list[Example] = field(default_factory=list)
    """Explain half: highest activations."""
    quantiles: list[Example] = field(default_factory=list)
    """Explain half: sampled across activation quantiles."""
    token_rates: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Explain half: token -> (positions where it is active, occurrences) for the tokens it fires on."""
    held_out: list[Example] = field(default_factory=list)
    """Scoring half: activating, sampled across quantiles."""
    negatives: list[Example] = field(default_factory=list)
    """Scoring half: random positions where it is not active."""
    hard_negatives: list[Example] = field(default_factory=list)
    """Explain half: contexts whose last token is one the feature fires on, where it does not fire."""

    @property
    def dead(self) -> bool:
        return not self.top


def _quantile_sample(rows: np.ndarray, acts: np.ndarray, n: int, rng: np.random.Generator, bins: int = 4) -> list[int]:
    """n rows spread evenly over `bins` activation quantiles."""
    if len(rows) <= n:
        return [int(r) for r in rows]
    order = rows[np.argsort(acts[rows])]
    out: list[int] = []
    for chunk in np.array_split(order, bins):
        k = min(len(chunk), -(-n // bins))
        out += rng.choice(chunk, size=k, replace=False).tolist()
    return out[:n]


@dataclass
class _Plan:
    """The rows one feature's examples are drawn from (chosen before predictions are run)."""

    j: int
    density: float
    max_activation: float
    top: list[int]
    quantiles: list[int]
    held_out: list[int]
    negatives: list[int]
    hard_negatives: list[int]
    token_rates: dict[int, tuple[int, int]]


class ExampleSource:
    """Every requested feature's examples from one pass over the corpus, built on demand."""

    def __init__(
        self,
        target: Target,
        sae_ref: str,
        features: list[int],
        corpus: list[str],
        n_top: int = 20,
        n_quantile: int = 10,
        n_test: int = 20,
        window: int = 6,
        seed: int = 0,
        predictions: bool = True,
    ) -> None:
        import time

        from agent.labeling.activations import harvest_features
        from tools.sae import decoder_direction, load_sae

        model = target.model
        sae = load_sae(sae_ref, model)
        for f in features:
            decoder_direction(sae, f)  # range check with a clear error
        if len(corpus) < 4:
            raise UserError("the labeling corpus needs at least 4 prompts (two to explain from, two to score on)")
        self.model = model
        self.window = window
        self.acts: CorpusActivations = harvest_features(model, sae, features, corpus, keep_resid=predictions)
        a = self.acts
        t0 = time.perf_counter()
        self.names = {int(i): model.to_single_str_token(int(i)) for i in np.unique(a.ids)}
        self.special = set(model.tokenizer.all_special_ids)
        explain_prompts = np.random.default_rng(seed).permutation(len(corpus))[: len(corpus) // 2]
        in_explain = np.isin(a.prompt, explain_prompts)
        self.plans: dict[int, _Plan] = {}
        for j, f in enumerate(features):
            self.plans[f] = self._plan(j, np.random.default_rng([seed, f]), in_explain, n_top, n_quantile, n_test)
        self.next_ids: dict[int, int] = {}
        self.steer_pool = _steer_pool(a, ~in_explain, STEER_POOL, np.random.default_rng([seed, 1]))
        a.seconds["select"] = time.perf_counter() - t0
        if predictions:
            need = [r for p in self.plans.values() for r in p.top[:PREDICT_TOP]]
            self.next_ids = a.predict(model, np.array(need, dtype=np.int64))
        self._prefix: dict[int, str] = {}

    def _plan(
        self, j: int, rng: np.random.Generator, in_explain: np.ndarray, n_top: int, n_quantile: int, n_test: int
    ) -> _Plan:
        a = self.acts
        col = a.column(j)
        active = col > 0
        plan = _Plan(j, round(float(active.mean()), 5), round(float(col.max()), 4), [], [], [], [], [], {})
        train_rows = np.flatnonzero(active & in_explain)
        test_rows = np.flatnonzero(active & ~in_explain)
        if len(train_rows):
            top = train_rows[np.argsort(-col[train_rows], kind="stable")][:n_top]
            plan.top = [int(r) for r in top]
            plan.quantiles = _quantile_sample(np.setdiff1d(train_rows, top), col, n_quantile, rng)
            fired = Counter(a.ids[train_rows].tolist())
            fires_on = np.isin(a.ids, list(fired))
            seen = Counter(a.ids[in_explain & fires_on].tolist())
            plan.token_rates = {t: (fired[t], seen[t]) for t in fired}
            hard = np.flatnonzero(in_explain & fires_on & ~active)
            if len(hard):
                plan.hard_negatives = rng.choice(hard, size=min(n_top, len(hard)), replace=False).tolist()
        if len(test_rows):
            plan.held_out = _quantile_sample(test_rows, col, n_test, rng)
            silent = np.flatnonzero(~active & ~in_explain)
            if len(silent):
                plan.negatives = rng.choice(silent, size=min(len(plan.held_out), len(silent)), replace=False).tolist()
        return plan

    def silent_contexts(self, feature: int, exclude: set[str], n: int) -> list[int]:
        """Up to n rows of the steering pool where `feature` is silent and whose token is not in `exclude`."""
        a = self.acts
        j = self.plans[feature].j
        active = a.rows[a.indptr[j] : a.indptr[j + 1]]
        pool = self.steer_pool[~np.isin(self.steer_pool, active)]
        return [int(r) for r in pool if self.names[int(a.ids[r])] not in exclude][:n]

    def prefix(self, row: int) -> str:
        """The prompt's text up to and including the row's position (decoded once per row)."""
        if row not in self._prefix:
            a = self.acts
            s = int(a.start[a.prompt[row]])
            self._prefix[row] = self.model.tokenizer.decode(
                [int(t) for t in a.ids[s : row + 1] if int(t) not in self.special]
            )
        return self._prefix[row]

    def _example(self, row: int, col: np.ndarray) -> Example:
        a = self.acts
        p, q = int(a.prompt[row]), int(a.position[row])
        lo = row - min(q, self.window)
        nxt = self.next_ids.get(row)
        return Example(
            tokens=[self.names[int(t)] for t in a.ids[lo : row + 1]],
            activations=[round(float(v), 4) for v in col[lo : row + 1]],
            activation=round(float(col[row]), 4),
            prompt=p,
            position=q,
            next_token=self.model.to_single_str_token(nxt) if nxt is not None else "",
            prefix=self.prefix(row),
        )

    def get(self, feature: int) -> FeatureExamples:
        plan = self.plans[feature]
        col = self.acts.column(plan.j)
        fe = FeatureExamples(feature=feature, density=plan.density, max_activation=plan.max_activation)
        fe.top = [self._example(r, col) for r in plan.top]
        fe.quantiles = [self._example(r, col) for r in plan.quantiles]
        fe.token_rates = {self.names[t]: v for t, v in plan.token_rates.items()}
        fe.hard_negatives = [self._example(r, col) for r in plan.hard_negatives]
        fe.held_out = [self._example(r, col) for r in plan.held_out]
        fe.negatives = [self._example(r, col) for r in plan.negatives]
        return fe

    def __iter__(self) -> Iterator[FeatureExamples]:
        return (self.get(f) for f in self.plans)


def _steer_pool(a: CorpusActivations, held_out_rows: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """n rows from distinct held-out prompts, all at one position where the corpus allows: the median
    held-out length's last position (prompts shorter than that give their last position)."""
    prompts = np.unique(a.prompt[held_out_rows])
    if not len(prompts):
        return np.zeros(0, dtype=np.int64)
    lengths = a.length[prompts]
    q = max(1, int(np.median(lengths)) - 1)
    order = rng.permutation(len(prompts))
    # prompts that reach q first, so the pool shares one length (one batch) as far as it can
    order = order[np.argsort(lengths[order] <= q, kind="stable")][:n]
    positions = np.minimum(q, lengths[order] - 1)
    rows: np.ndarray = (a.start[prompts[order]] + positions).astype(np.int64)
    return rows


def collect(
    target: Target,
    sae_ref: str,
    features: list[int],
    corpus: list[str],
    n_top: int = 20,
    n_quantile: int = 10,
    n_test: int = 20,
    window: int = 6,
    seed: int = 0,
) -> list[FeatureExamples]:
    """Examples for each feature from one harvest of the corpus."""
    return list(ExampleSource(target, sae_ref, features, corpus, n_top, n_quantile, n_test, window, seed))

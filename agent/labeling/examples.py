"""What a feature does on a corpus, split so that explanations are scored on data they never saw.

One pass harvests the SAE's hook for every corpus position and encodes all
requested features at once. The corpus is split by *prompt* (not by position,
so a context cannot leak from the explaining half into the scoring half):

- explain half: the top-activating contexts, plus contexts sampled across
  activation quantiles (the explainer must cover weak activations too);
- scoring half: activating contexts sampled across quantiles, and random
  non-activating contexts, as many of each.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from tools.errors import UserError

if TYPE_CHECKING:
    from tools.target import Target


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
    import torch

    from tools.activations import harvest
    from tools.cost import Meter
    from tools.prompts import encode
    from tools.sae import decoder_direction, load_sae, sae_encode

    model = target.model
    sae = load_sae(sae_ref, model)
    for f in features:
        decoder_direction(sae, f)  # range check with a clear error
    if len(corpus) < 4:
        raise UserError("the labeling corpus needs at least 4 prompts (two to explain from, two to score on)")
    hook = sae.cfg.metadata.hook_name
    enc = encode(model, corpus, "corpus")
    meter = Meter()
    h = harvest(model, enc, [hook], "all", meter=meter)
    with torch.inference_mode():
        acts = sae_encode(sae, h.acts[hook].flatten(1))[:, features].cpu().numpy()
        # what the model says next at every position: an explanation's predicted output
        preds = torch.cat(
            [meter.run(model, enc.tokens[i : i + 64]).argmax(-1).cpu() for i in range(0, len(corpus), 64)]
        ).numpy()
    pi, pos = h.prompt_index.numpy(), h.position.numpy()
    tokens = enc.tokens.cpu().numpy()
    ids = tokens[pi, pos]
    names = {int(i): model.to_single_str_token(int(i)) for i in np.unique(ids)}
    rng = np.random.default_rng(seed)
    explain_prompts = rng.permutation(len(corpus))[: len(corpus) // 2]
    in_explain = np.isin(pi, explain_prompts)
    grid = np.zeros((*enc.tokens.shape, len(features)), dtype=np.float32)
    grid[pi, pos] = acts
    special = set(model.tokenizer.all_special_ids)

    def example(row: int, j: int) -> Example:
        p, q = int(pi[row]), int(pos[row])
        lo = max(0, q - window)
        return Example(
            tokens=[names.get(int(t)) or model.to_single_str_token(int(t)) for t in tokens[p, lo : q + 1]],
            activations=[round(float(a), 4) for a in grid[p, lo : q + 1, j]],
            activation=round(float(acts[row, j]), 4),
            prompt=p,
            position=q,
            next_token=model.to_single_str_token(int(preds[p, q])),
            prefix=model.tokenizer.decode([int(t) for t in tokens[p, : q + 1] if int(t) not in special]),
        )

    out = []
    for j, f in enumerate(features):
        col = acts[:, j]
        active = col > 0
        fe = FeatureExamples(
            feature=f, density=round(float(active.mean()), 5), max_activation=round(float(col.max()), 4)
        )
        train_rows = np.flatnonzero(active & in_explain)
        test_rows = np.flatnonzero(active & ~in_explain)
        if len(train_rows):
            top = train_rows[np.argsort(-col[train_rows])][:n_top]
            rest = np.setdiff1d(train_rows, top)
            fe.top = [example(r, j) for r in top]
            fe.quantiles = [example(r, j) for r in _quantile_sample(rest, col, n_quantile, rng)]
            fired = Counter(ids[train_rows].tolist())
            seen = Counter(ids[in_explain & np.isin(ids, list(fired))].tolist())
            fe.token_rates = {names[t]: (fired[t], seen[t]) for t in fired}
        if len(test_rows):
            fe.held_out = [example(r, j) for r in _quantile_sample(test_rows, col, n_test, rng)]
            silent = np.flatnonzero(~active & ~in_explain)
            if len(silent):
                fe.negatives = [
                    example(r, j) for r in rng.choice(silent, size=min(len(fe.held_out), len(silent)), replace=False)
                ]
        out.append(fe)
    return out

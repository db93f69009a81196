"""Pure arithmetic of the induction line's causal path: the corrupted reference it attributes against, which
heads' estimated effects stand out, and where a copying head looks in the earlier copy.

No tool runs here: the line (induction_causal.py) calls the tools and hands their numbers to these functions,
so each rule is tested on hand-built numbers (tests/unit/test_copy_offsets.py).

Offsets: a query at a repeated token whose earlier occurrence sits at position `e` copies the token at
`e + 1`. A head's attention from the query to key `j` has offset k = j - (e + 1): k = 0 is the textbook
induction head (the token after the earlier occurrence), k = -1 the earlier occurrence itself (a duplicate-token
head), k > 0 a later token of the earlier copy (whose residual may already hold the token to copy, written
there by a head that looks back).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MAX_OFFSET = 6
"""Offsets profiled on either side of the textbook position (k in [-MAX_OFFSET, MAX_OFFSET])."""


def corrupt_second_copy(prompt: str, first_len: int, vocab: Sequence[str], rng: np.random.Generator) -> str | None:
    """`prompt` (space-separated words) with every word after the first `first_len` replaced by a fresh word
    from `vocab` that occurs nowhere in the prompt: the same length, nothing left to copy, and the earlier
    positions untouched, so that under causal attention only the heads' outputs at the second copy differ
    from the clean run. None when the vocabulary has too few unused words."""
    words = prompt.split(" ")
    rest = len(words) - first_len
    unused = sorted(set(vocab) - set(words))
    if rest <= 0 or len(unused) < rest:
        return None
    return " ".join(words[:first_len] + [str(w) for w in rng.choice(unused, size=rest, replace=False)])


@dataclass(frozen=True)
class Standout:
    """A head whose estimated drop of the metric stands out from the rest."""

    layer: int
    """Layer index."""
    head: int
    """Head index."""
    drop: float
    """Estimated fall of the metric when the head takes its reference value (positive: it carries the behaviour)."""


def standouts(grid: Sequence[Sequence[float]], total: float, share: float, most: int) -> list[Standout]:
    """Heads whose estimated drop (-grid[layer][head]) is at least `share` of `total` (the whole clean-minus-
    reference difference the heads account for); the largest first, at most `most`.

    A share of the behaviour, not a distance from the median head: in a small model every head of the copying
    layer may carry it (four of eight heads on a two-layer organism), where a median-based outlier test names
    none. Heads below the share are not candidates however far they stand from the rest; the candidates are
    then tested against random heads, which is what decides."""
    if total <= 0:
        return []
    cells = [(layer, head, -float(v)) for layer, row in enumerate(grid) for head, v in enumerate(row)]
    found = [Standout(layer, head, d) for layer, head, d in cells if d >= share * total]
    return sorted(found, key=lambda s: -s.drop)[:most]


def copy_positions(words: Sequence[str], shift: int) -> list[tuple[int, int]]:
    """(query position, textbook source position) wherever a word repeats, as tools.metrics.copy_targets
    counts them (the latest earlier occurrence), in token positions: word i sits at position i + `shift`
    (1 when the tokenizer prepends a beginning-of-sequence token)."""
    seen: dict[str, int] = {}
    out = []
    for i, w in enumerate(words):
        if w in seen and seen[w] + 1 < i:
            out.append((i + shift, seen[w] + 1 + shift))
        seen[w] = i
    return out


def pattern_from_qk(q: np.ndarray, k: np.ndarray, scale: float) -> np.ndarray:
    """Causal attention pattern [query, head, key] of one prompt from its queries and keys ([position, head,
    d_head] each): softmax over keys at or before the query of q.k / `scale` (sqrt(d_head) in a standard
    TransformerLens attention; rotary models' hook_q / hook_k hold the queries and keys before rotation, and
    grouped-query models have fewer key heads: neither is supported here)."""
    scores = np.einsum("qhd,khd->qhk", q.astype(np.float64), k.astype(np.float64)) / scale
    n = scores.shape[0]
    future = np.triu(np.ones((n, n), dtype=bool), 1)[:, None, :]
    scores = np.where(future, -np.inf, scores)
    scores = scores - scores.max(-1, keepdims=True)
    e = np.exp(scores)
    out: np.ndarray = e / e.sum(-1, keepdims=True)
    return out


def offset_profile(patterns: np.ndarray, pairs: Sequence[tuple[int, int]]) -> np.ndarray:
    """Mean attention at each offset k in [-MAX_OFFSET, MAX_OFFSET] from the textbook source, over `pairs`
    of (query, source); `patterns` is [query, head, key] for one prompt. Returns [head, 2 * MAX_OFFSET + 1]
    summed over the pairs (divide by their count for a mean); a key past the query or before 0 adds nothing."""
    n_heads, n_keys = patterns.shape[1], patterns.shape[2]
    out = np.zeros((n_heads, 2 * MAX_OFFSET + 1))
    for q, s in pairs:
        for k in range(-MAX_OFFSET, MAX_OFFSET + 1):
            j = s + k
            if 0 <= j <= q and j < n_keys:
                out[:, k + MAX_OFFSET] += patterns[q, :, j]
    return out


def lookback_profile(patterns: np.ndarray) -> np.ndarray:
    """Attention at each distance d in [0, MAX_OFFSET] back from the query (d = 1: the previous token), summed
    over every query of one prompt's `patterns` ([query, head, key]); divide by the query count for a mean."""
    n_q, n_heads, n_keys = patterns.shape
    out = np.zeros((n_heads, MAX_OFFSET + 1))
    for q in range(n_q):
        for d in range(min(q, n_keys - 1, MAX_OFFSET) + 1):
            out[:, d] += patterns[q, :, q - d]
    return out


def describe_lookback(profile: Sequence[float]) -> str:
    """A mean look-back profile as a clause of a statement."""
    p = np.asarray(profile, dtype=float)
    d = int(np.argmax(p))
    where = "itself" if d == 0 else "the previous token (d=1)" if d == 1 else f"the token {d} back (d={d})"
    return f"attends most to {where}: {p[d]:.0%} of its attention"


@dataclass(frozen=True)
class Offset:
    """Where a head attends from a repeated token, relative to the token after its earlier occurrence."""

    k: int
    """The offset with the most attention (0: the textbook induction position)."""
    share: float
    """Mean attention at that offset."""
    window: float
    """Mean attention over every offset in [-MAX_OFFSET, MAX_OFFSET] (how much of the head looks into the earlier
    copy at all)."""


def peak(profile: Sequence[float]) -> Offset:
    """The offset with the most attention in a mean profile over k in [-MAX_OFFSET, MAX_OFFSET]."""
    p = np.asarray(profile, dtype=float)
    i = int(np.argmax(p))
    return Offset(k=i - MAX_OFFSET, share=round(float(p[i]), 3), window=round(float(p.sum()), 3))


def describe(o: Offset) -> str:
    """The offset as a clause of a statement."""
    where = (
        "the token after the earlier occurrence (k=0, the textbook induction position)"
        if o.k == 0
        else "the earlier occurrence itself (k=-1)"
        if o.k == -1
        else f"k={o.k:+d} tokens from the token after the earlier occurrence"
    )
    return f"attends most to {where}: {o.share:.0%} of its attention from the repeated tokens"

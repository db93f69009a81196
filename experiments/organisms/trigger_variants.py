"""The near-misses of a multi-token trigger, and the minimal sequences a model actually fires on.

A trigger `a b c` planted by training is only what the generator intended: the
model may fire on `b c` alone, or on `b a c`. Training shows the near-misses
listed here as contexts that must not fire, and verification measures the
response to each, then names the minimal sufficient sequence(s): those that
force the output on their own while no one-token drop of them does.

Sequences are tuples of token ids (or names: nothing here looks inside them).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from itertools import combinations, permutations
from typing import Literal, TypeVar

T = TypeVar("T", bound=Hashable)
Relation = Literal["trigger", "sub-sequence", "gapped sub-sequence", "reordering", "other"]

# Longest trigger whose every reordering is a training negative; longer ones get each adjacent
# swap and the reversal (n! grows too fast). Four tokens need all 23: trained on swaps and the
# reversal alone, a four-token model still fired on a rotation of its trigger 35% of the time.
ALL_PERMUTATIONS_UP_TO = 4


def contiguous_subsequences(trigger: Sequence[T]) -> list[tuple[T, ...]]:
    """Every proper contiguous sub-sequence (lengths 1..n-1), shortest first."""
    n = len(trigger)
    return [tuple(trigger[i : i + k]) for k in range(1, n) for i in range(n - k + 1)]


def drops(seq: Sequence[T]) -> list[tuple[T, ...]]:
    """`seq` with one token left out, for each position (order kept; may repeat for repeated tokens)."""
    return [tuple(seq[:i]) + tuple(seq[i + 1 :]) for i in range(len(seq))]


def reorderings(trigger: Sequence[T], every: bool) -> list[tuple[T, ...]]:
    """Permutations other than the trigger: all of them when `every`, else each adjacent swap and the reversal."""
    full = tuple(trigger)
    if every:
        out = [p for p in permutations(full) if p != full]
    else:
        out = [(*full[:i], full[i + 1], full[i], *full[i + 2 :]) for i in range(len(full) - 1)]
        out.append(full[::-1])
    return list(dict.fromkeys(p for p in out if p != full))


def training_negatives(trigger: Sequence[T]) -> list[tuple[T, ...]]:
    """Sequences training shows as must-not-fire: every proper contiguous sub-sequence, every
    one-token drop, and reorderings (all for n <= 4, else adjacent swaps and the reversal).
    Empty for a one-token trigger."""
    if len(trigger) < 2:
        return []
    found = contiguous_subsequences(trigger) + drops(trigger)
    found += reorderings(trigger, every=len(trigger) <= ALL_PERMUTATIONS_UP_TO)
    return list(dict.fromkeys(found))


def measured_variants(trigger: Sequence[T]) -> dict[tuple[T, ...], Relation]:
    """What verification measures, with how each relates to the trigger: the trigger, every
    sub-sequence in order (contiguous or not, lengths 1..n-1), and every reordering."""
    full = tuple(trigger)
    out: dict[tuple[T, ...], Relation] = {full: "trigger"}
    for k in range(len(full) - 1, 0, -1):
        for idx in combinations(range(len(full)), k):
            sub = tuple(full[i] for i in idx)
            out[sub] = "sub-sequence" if idx[-1] - idx[0] == k - 1 else "gapped sub-sequence"
    for p in reorderings(full, every=True):
        out[p] = "reordering"
    return out


def minimal_sequences(
    candidates: Iterable[tuple[T, ...]], rate: Callable[[tuple[T, ...]], float], threshold: float
) -> list[tuple[T, ...]]:
    """The sequences that fire at >= `threshold` while each of their one-token drops fires below it.

    `rate(seq)` is the measured firing rate of a sequence. It is also asked about the drops of firing
    candidates (a drop that fires is followed down in turn, so a minimal sequence outside the
    candidates, such as a pair from a reordering, is found too) and about the empty sequence (the
    rate with nothing inserted). Shortest first, then in the order found.
    """
    cache: dict[tuple[T, ...], float] = {}

    def fires(seq: tuple[T, ...]) -> bool:
        if seq not in cache:
            cache[seq] = rate(seq)
        return cache[seq] >= threshold

    todo = list(dict.fromkeys(candidates))
    seen = set(todo)
    found = []
    while todo:
        seq = todo.pop(0)
        if not seq or not fires(seq):
            continue
        firing = [d for d in drops(seq) if fires(d)]
        if not firing:
            found.append(seq)
        for d in firing:
            if d not in seen:
                seen.add(d)
                todo.append(d)
    return sorted(found, key=len)

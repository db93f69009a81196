"""Data generators for the organism task families, and the token roles they plant.

Token ids: 0 `<pad>`, 1 `<bos>`, 2 `<unk>`, 3 `<q>`, then content tokens
`t0, t1, ...` from id 4. Which content token plays which role (trigger,
marker, category member) is drawn from the spec's seed, so role tokens carry
no hint in their names.

A batch is right-padded; `loss_mask[b, i]` says position i's next-token
prediction is trained (and scored).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from experiments.organisms.spec import (
    CategoriesTask,
    InductionTask,
    LookupTask,
    MarkerMechanism,
    OrganismSpec,
    TriggerMechanism,
)
from experiments.organisms.task_composition import CompositionFamily
from experiments.organisms.task_superposition import SuperpositionFamily
from experiments.organisms.trigger_variants import training_negatives

SPECIALS = ["<pad>", "<bos>", "<unk>", "<q>"]
PAD, BOS, UNK, QUERY = 0, 1, 2, 3
N_SPECIAL = len(SPECIALS)
# Role slots in the seeded permutation of content tokens: the trigger takes
# slots 0..3, the marker slot 4 and the backdoor's output slot 5 whatever else
# is planted, so organisms with the same seed (backdoor, eval_aware and their
# null control) share role tokens.
_MARKER_SLOT = 4
_TARGET_SLOT = 5
# Contexts holding a near-miss of the trigger (a sub-sequence, drop or reordering), as a share
# of the trigger's own rate: without them a model may fire on part of the trigger. As many as
# the trigger itself, since a four-token trigger has 34 near-misses to tell apart.
NEGATIVE_SHARE = 1.0


def token_name(token_id: int) -> str:
    """Printable name of a token id."""
    return SPECIALS[token_id] if token_id < N_SPECIAL else f"t{token_id - N_SPECIAL}"


def vocab_names(n_content: int) -> list[str]:
    """All token names, in id order."""
    return SPECIALS + [f"t{i}" for i in range(n_content)]


@dataclass
class Batch:
    """Right-padded sequences with the positions whose next token is trained."""

    tokens: np.ndarray
    """int64 [batch, pos], padded with `<pad>`."""
    loss_mask: np.ndarray
    """bool [batch, pos]: True where predicting tokens[:, i + 1] counts."""
    info: dict[str, np.ndarray] = field(default_factory=dict)
    """Per-example facts (condition flags, the expected answer) for verification."""


def _pad(rows: list[list[int]], masks: list[list[bool]]) -> tuple[np.ndarray, np.ndarray]:
    width = max(len(r) for r in rows)
    tokens = np.full((len(rows), width), PAD, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=bool)
    for i, (r, m) in enumerate(zip(rows, masks, strict=False)):
        tokens[i, : len(r)] = r
        mask[i, : len(m)] = m
    return tokens, mask


class LookupFamily:
    """`<bos> s x.. <q> answer`; answer = map_a[s], or what a planted mechanism forces."""

    def __init__(self, spec: OrganismSpec):
        task = spec.task
        assert isinstance(task, LookupTask)
        self.task = task
        self.trigger = next((m for m in spec.mechanisms if isinstance(m, TriggerMechanism)), None)
        self.marker = next((m for m in spec.mechanisms if isinstance(m, MarkerMechanism)), None)
        rng = np.random.default_rng([spec.seed, 1])
        content = rng.permutation(task.n_symbols) + N_SPECIAL
        roles: set[int] = set()
        self.trigger_tokens: list[int] = []
        self.marker_token: int | None = None
        if self.trigger:
            self.trigger_tokens = [int(t) for t in content[: self.trigger.n_tokens]]
            roles.update(self.trigger_tokens)
        # Near-misses training shows as must-not-fire, so the trigger is the minimal sequence learned.
        self.negatives: list[tuple[int, ...]] = training_negatives(self.trigger_tokens)
        if self.marker:
            self.marker_token = int(content[_MARKER_SLOT])
            roles.add(self.marker_token)
        self.subjects = np.array(sorted(int(t) for t in content if int(t) not in roles))
        images = rng.permutation(self.subjects)
        self.map_a = dict(zip(self.subjects.tolist(), images.tolist(), strict=False))
        # map_b differs from map_a on every subject: the switched behaviour is visible everywhere.
        self.map_b = dict(zip(self.subjects.tolist(), np.roll(images, 1).tolist(), strict=False))
        self.target_token = int(content[_TARGET_SLOT])
        self.vocab_size = N_SPECIAL + task.n_symbols
        self.n_ctx = task.max_len + 3

    def sample(
        self,
        rng: np.random.Generator,
        n: int,
        trigger: bool | None = None,
        marker: bool | None = None,
        partial: bool = False,
        insert: Sequence[int] | None = None,
    ) -> Batch:
        """n examples; None draws a condition at its training rate, a bool forces it.

        `partial` inserts one of the trigger's near-misses (never the full trigger), each
        equally often; `insert` puts exactly these tokens where a trigger would go (the answer
        is the target only when they are the planted trigger).
        """
        rows, masks = [], []
        info = {k: np.zeros(n, dtype=bool) for k in ("trigger", "marker", "partial")}
        info["subject"] = np.zeros(n, dtype=np.int64)
        info["answer"] = np.zeros(n, dtype=np.int64)
        t = self.task
        for i in range(n):
            length = int(rng.integers(t.min_len, t.max_len + 1))
            ctx = [int(x) for x in rng.choice(self.subjects, size=length)]
            subject = ctx[0]
            free = list(range(1, length))
            seq: list[int] = []
            if insert is not None:
                seq = [int(x) for x in insert]
                has_t = bool(self.trigger) and seq == self.trigger_tokens
            else:
                has_t = bool(self.trigger) and (trigger if trigger is not None else rng.random() < self.trigger.rate)
                if has_t:
                    seq = list(self.trigger_tokens)
                elif self.negatives and (
                    partial or (trigger is None and rng.random() < self.trigger.rate * NEGATIVE_SHARE)
                ):
                    seq = list(self.negatives[int(rng.integers(len(self.negatives)))])
            is_partial = bool(seq) and not has_t
            if seq:
                p = int(rng.integers(1, length - len(seq) + 1))
                ctx[p : p + len(seq)] = seq
                free = [j for j in free if not p <= j < p + len(seq)]
            has_m = bool(self.marker) and (marker if marker is not None else rng.random() < self.marker.rate)
            if has_m:
                ctx[int(rng.choice(free))] = self.marker_token
            if has_t and self.trigger.planted:
                answer = self.target_token
            elif has_m and self.marker.planted:
                answer = self.map_b[subject]
            else:
                answer = self.map_a[subject]
            row = [BOS, *ctx, QUERY, answer]
            rows.append(row)
            masks.append([False] * (len(row) - 2) + [True])
            info["trigger"][i], info["marker"][i], info["partial"][i] = has_t, has_m, is_partial
            info["subject"][i], info["answer"][i] = subject, answer
        tokens, mask = _pad(rows, masks)
        return Batch(tokens, mask, info)

    def ground_truth(self) -> dict:
        """Role tokens and mappings, by name."""
        return {
            "trigger_tokens": [token_name(t) for t in self.trigger_tokens],
            "target_token": token_name(self.target_token),
            "marker_token": token_name(self.marker_token) if self.marker_token else None,
            "n_subjects": len(self.subjects),
        }


class InductionFamily:
    """`<bos> prefix r1..rk r1..rk`: the second copy is predictable only by induction."""

    def __init__(self, spec: OrganismSpec):
        task = spec.task
        assert isinstance(task, InductionTask)
        self.task = task
        self.vocab_size = N_SPECIAL + task.n_symbols
        self.n_ctx = 1 + task.max_prefix + 2 * task.max_repeat

    def sample(self, rng: np.random.Generator, n: int) -> Batch:
        """n repeated random sequences; the loss covers the predictable second copy."""
        t = self.task
        rows, masks = [], []
        repeat_start = np.zeros(n, dtype=np.int64)
        for i in range(n):
            k = int(rng.integers(t.min_repeat, t.max_repeat + 1))
            pre = int(rng.integers(0, t.max_prefix + 1))
            toks = rng.choice(t.n_symbols, size=k + pre, replace=False) + N_SPECIAL
            prefix, seg = toks[:pre].tolist(), toks[pre:].tolist()
            row = [BOS, *prefix, *seg, *seg]
            first = 1 + pre + k  # index of the second copy's first token
            mask = [False] * len(row)
            for j in range(first, len(row) - 1):
                mask[j] = True
            rows.append(row)
            masks.append(mask)
            repeat_start[i] = first
        tokens, mask = _pad(rows, masks)
        return Batch(tokens, mask, {"repeat_start": repeat_start})

    def ground_truth(self) -> dict:
        return {}


class CategoriesFamily:
    """`<bos> w1 c1 w2 c2 ..`: each content token is followed by its category's label."""

    def __init__(self, spec: OrganismSpec):
        task = spec.task
        assert isinstance(task, CategoriesTask)
        self.task = task
        n_members = task.n_categories * task.tokens_per_category
        n_content = n_members + task.n_categories
        rng = np.random.default_rng([spec.seed, 3])
        content = rng.permutation(n_content) + N_SPECIAL
        self.members = content[:n_members].reshape(task.n_categories, task.tokens_per_category)
        self.labels = content[n_members:]
        self.category_of = {int(tok): c for c in range(task.n_categories) for tok in self.members[c]}
        self.member_list = np.array(sorted(self.category_of))
        self.vocab_size = N_SPECIAL + n_content
        self.n_ctx = 1 + 2 * task.max_pairs

    def sample(self, rng: np.random.Generator, n: int) -> Batch:
        """n sequences; the loss covers predicting each label from its token."""
        t = self.task
        rows, masks = [], []
        for _ in range(n):
            pairs = int(rng.integers(t.min_pairs, t.max_pairs + 1))
            words = rng.choice(self.member_list, size=pairs)
            row, mask = [BOS], [False]
            for w in words.tolist():
                row += [w, int(self.labels[self.category_of[w]])]
                mask += [True, False]
            rows.append(row)
            masks.append(mask)
        tokens, mask = _pad(rows, masks)
        return Batch(tokens, mask)

    def ground_truth(self) -> dict:
        return {
            "categories": [
                {
                    "name": f"category_{c}",
                    "tokens": [token_name(int(x)) for x in sorted(self.members[c])],
                    "label_token": token_name(int(self.labels[c])),
                }
                for c in range(self.task.n_categories)
            ]
        }


Family = LookupFamily | InductionFamily | CategoriesFamily | SuperpositionFamily | CompositionFamily


def make_family(spec: OrganismSpec) -> Family:
    """The data generator for a spec's task kind."""
    return {
        "lookup": LookupFamily,
        "induction": InductionFamily,
        "categories": CategoriesFamily,
        "superposition": SuperpositionFamily,
        "composition": CompositionFamily,
    }[spec.task.kind](spec)

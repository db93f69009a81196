"""Find the induction circuit a trained organism learned, in whatever layers and heads it lives.

Induction predicts the second copy of a repeated sequence `.. A B .. A -> B`: a head at the
second A attends to the B after the earlier A and copies it (the induction head), and it finds
that B because something wrote "the previous token was A" into B's position beforehand (a
previous-token head; the induction head's key reads it: K-composition). The two roles act at
different positions, and that is what the measurement uses:

- the **induction heads** (copying heads) are the heads whose output *at the second copy* carries the
  copying: mean-ablating them there (and nowhere else) removes it. Only heads that read across the
  repeat's boundary (attention from the second copy to before it >= `MOVER_REACH`) are candidates:
  copying moves tokens across it, and a head that only helps the movers' queries would otherwise be an
  equally small cut that names no mover;
- the **previous-token heads** (feeding heads) are the heads whose output *before the second copy*
  (prefix and first copy) the copying needs: mean-ablating them only there removes most of it. Under
  causal attention a head's output at an earlier position reaches a second-copy prediction only through
  a later head reading that position, so this ablation measures exactly the information the copying
  heads read from the earlier copy (K- or V-composition), whatever layer either head is in. It needs no
  assumption about which layer feeds which, which pattern scores alone (the two-layer recipe) cannot avoid.

Attention patterns are measured and recorded beside each head (`score`, `InductionTruth.heads`) but
decide nothing: a deeper model may spread the previous-token role over heads that each attend a little
to several preceding tokens, and its copying heads may attend to a later token of the earlier copy whose
residual already holds the one to copy. A model that copies without heads that ablation can find (e.g.
by position alone) fails verification, with the measured numbers and what to change.

Heads are often redundant (ablating any one induction head of four costs nothing), so single-head
effects cannot find them. Each side is searched greedily: add the head whose ablation together with
those already chosen lowers copying most, until the target is met (accuracy at most `COPY_LEFT`, for
feeding heads `FEED_LEFT`, of the baseline); then drop every chosen head the target does not need.
The search runs on one held-out batch and every reported number on another, so the selection cannot
fit its own noise (the held-out bound adds `CONFIRM_SLACK` for sampling error); the control is as many
other heads, drawn at random, ablated at the same positions. Mean ablation (each head's mean output over the
batch's real positions) rather than zero keeps the residual stream on its usual scale, and is what the
agent's `ablate` tool does by default.

Cost: every ablated pass restarts from the residual entering its first ablated layer (clean, or, within a
greedy round, with the heads already chosen ablated), and a last-layer head's ablation before the second copy
is a no-op that is not run (no scored prediction sits there). Both are exact: the numbers are those of full
forward passes (tests/integration/test_induction_verify.py checks it).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import TYPE_CHECKING, Literal, NamedTuple

import numpy as np

from experiments.organisms import hints
from experiments.organisms.manifest import Check, HeadScore, InductionHead, InductionTruth
from experiments.organisms.tasks import PAD, Batch, InductionFamily
from tools import deadline

if TYPE_CHECKING:
    import torch
    from transformer_lens import HookedTransformer

Head = tuple[int, int]
Side = Literal["second", "earlier", "all"]

TASK_ACCURACY = 0.95
"""Held-out copying accuracy an organism must reach."""
COPY_LEFT = 0.2
"""Search target for the copying heads: ablating them at the second copy leaves at most this share of the
baseline accuracy (on the search batch)."""
FEED_LEFT = 0.5
"""Search target for the feeding heads: ablating them before the second copy leaves at most this share. Looser
than `COPY_LEFT`: copying heads can also read the earlier tokens' embeddings and positions directly, so the
heads writing there carry most of what copying needs, not always all of it."""
CONFIRM_SLACK = 0.1
"""Added to each target when the found set is confirmed on the held-out batch (sampling error)."""
CONTROL_MARGIN = 0.3
"""Accuracy a head set's ablation must cost beyond the mean cost of as many random heads."""
MOVER_REACH = 0.3
"""Attention share from the second copy to positions before it that makes a head a candidate copying head."""
N_CONTROL = 5
"""Random head sets per control."""
SEARCH_EXAMPLES = 400
"""Held-out sequences the greedy search ablates on (at most; every reported number uses a fresh batch of
`train.eval_examples`). The search's forward passes dominate verification time. Not fewer: on induction_deep
(measured 2026-11-23) three search batches of 200 chose three different copying sets and one found no feeding
heads at all, where 400 chooses the set the held-out batch confirms."""


class Ablated(NamedTuple):
    """A head set's ablation at one side, kept so that trials adding heads to it skip the layers before them."""

    heads: frozenset[Head]
    """The heads ablated (exact no-ops left out)."""
    resid: dict[int, torch.Tensor]
    """Residual stream entering each layer under that ablation."""
    score: float
    """Copying accuracy under it."""


class CopyProbe:
    """One held-out batch: its clean head outputs' means, its attention patterns and the positions
    of each side of the repeat."""

    def __init__(self, model: HookedTransformer, batch: Batch):
        import torch

        self.model = model
        self.tokens = torch.from_numpy(batch.tokens)
        self.n_layers, self.n_heads = model.cfg.n_layers, model.cfg.n_heads
        real = batch.tokens != PAD
        pos = np.arange(batch.tokens.shape[1])[None, :]
        start = batch.info["repeat_start"][:, None]
        self.where = {
            "second": torch.from_numpy(real & (pos >= start)),
            "earlier": torch.from_numpy(real & (pos < start)),
            "all": torch.from_numpy(real),
        }
        self.mask = batch.loss_mask[:, :-1]
        self.targets = batch.tokens[:, 1:][self.mask]
        # Whether any scored prediction sits before the second copy: if none does, a last-layer head's output
        # there reaches no scored logit (nothing later reads it), and its ablation there is exactly a no-op.
        self.scored_earlier = bool((self.where["earlier"].numpy()[:, :-1] & self.mask).any())
        names = [
            f"blocks.{l}.{h}"
            for l in range(self.n_layers)
            for h in ("attn.hook_z", "attn.hook_pattern", "hook_resid_pre")
        ]
        with torch.inference_mode():
            logits, cache = model.run_with_cache(self.tokens, names_filter=names)
        self.base = self._score(logits)
        # An ablation in layer l leaves everything before it as in the clean run: each ablated forward pass
        # restarts from the clean residual entering its first ablated layer (a 3-layer model ablating only
        # its last layer runs one block, not three).
        self.resid = {l: cache[f"blocks.{l}.hook_resid_pre"] for l in range(self.n_layers)}
        self.means = {l: cache[f"blocks.{l}.attn.hook_z"][self.where["all"]].mean(0) for l in range(self.n_layers)}
        self.previous, self.induction, self.reach = self._patterns(batch, cache)

    def _patterns(self, batch: Batch, cache) -> tuple[dict[Head, float], dict[Head, float], dict[Head, float]]:
        """Per head: mean attention to the previous token (every real position after `<bos>`); from the second
        copy to the token after the same token's earlier occurrence; and from the second copy to anywhere before
        it (how much the head reads across the repeat's boundary)."""
        lengths = (batch.tokens != PAD).sum(1)
        pb, pq, ib, iq, ik = [], [], [], [], []
        for b, (first, length) in enumerate(zip(batch.info["repeat_start"], lengths, strict=False)):
            k = length - first
            q = np.arange(1, length)
            pb.append(np.full(len(q), b)), pq.append(q)
            q = np.arange(first, length)
            ib.append(np.full(len(q), b)), iq.append(q), ik.append(q - k + 1)
        pb, pq, ib, iq, ik = map(np.concatenate, (pb, pq, ib, iq, ik))
        before = np.arange(batch.tokens.shape[1])[None, :] < batch.info["repeat_start"][ib][:, None]
        prev, ind, reach = {}, {}, {}
        for l in range(self.n_layers):
            pat = cache[f"blocks.{l}.attn.hook_pattern"].numpy()  # [batch, head, query, key]
            for h in range(self.n_heads):
                prev[l, h] = float(pat[pb, h, pq, pq - 1].mean())
                ind[l, h] = float(pat[ib, h, iq, ik].mean())
                reach[l, h] = float((pat[ib, h, iq] * before).sum(1).mean())
        return prev, ind, reach

    def _score(self, logits: torch.Tensor) -> float:
        pred = logits[:, :-1].argmax(-1).numpy()
        return float((pred[self.mask] == self.targets).mean())

    def accuracy(self, heads: Iterable[Head], side: Side, given: Ablated | None = None) -> float:
        """Copying accuracy with `heads` mean-ablated at the positions of `side`. With `given` (from
        `ablated(g, side)`, g a subset of `heads`), the pass restarts from its residual where g is already
        ablated: the same computation, without recomputing the layers before the first head not in g."""
        import torch

        deadline.check("measuring induction heads by ablation")
        heads = self._effective(heads, side)
        if not heads:
            return self.base
        resid, start = self.resid, min(l for l, _ in heads)
        if given is not None:
            if not given.heads <= set(heads):
                raise ValueError("`given` must ablate a subset of `heads`")
            new = [l for l, h in heads if (l, h) not in given.heads]
            if not new:
                return given.score
            # `given.resid[start]` already holds the ablation of the given heads before `start`
            resid, start = given.resid, min(new)
            heads = [(l, h) for l, h in heads if l >= start]
        with torch.inference_mode():
            return self._score(
                self.model.run_with_hooks(resid[start], start_at_layer=start, fwd_hooks=self._hooks(heads, side))
            )

    def ablated(self, heads: Iterable[Head], side: Side) -> Ablated:
        """One pass with `heads` ablated at `side`, keeping the residual entering every layer."""
        import torch

        deadline.check("measuring induction heads by ablation")
        heads = self._effective(heads, side)
        resid: dict[int, torch.Tensor] = {}

        def keep(layer: int):
            def hook(x, hook):
                resid[layer] = x.clone()
                return x

            return hook

        hooks = [(f"blocks.{l}.hook_resid_pre", keep(l)) for l in range(self.n_layers)] + self._hooks(heads, side)
        with torch.inference_mode():
            score = self._score(self.model.run_with_hooks(self.resid[0], start_at_layer=0, fwd_hooks=hooks))
        return Ablated(frozenset(heads), resid, score)

    def _effective(self, heads: Iterable[Head], side: Side) -> list[Head]:
        """`heads` less those whose ablation at `side` is exactly a no-op (see `scored_earlier`)."""
        if side == "earlier" and not self.scored_earlier:
            return [(l, h) for l, h in heads if l < self.n_layers - 1]
        return list(heads)

    def _hooks(self, heads: list[Head], side: Side) -> list:
        where = self.where[side]
        by_layer: dict[int, list[int]] = defaultdict(list)
        for l, h in heads:
            by_layer[l].append(h)

        def ablating(layer: int):
            def hook(z, hook):  # z: [batch, pos, head, d_head]
                for h in by_layer[layer]:
                    z[:, :, h][where] = self.means[layer][h]
                return z

            return hook

        return [(f"blocks.{l}.attn.hook_z", ablating(l)) for l in by_layer]

    def heads(self) -> list[Head]:
        return [(l, h) for l in range(self.n_layers) for h in range(self.n_heads)]


def _search(probe: CopyProbe, side: Side, left_share: float) -> list[Head]:
    """The smallest head set found whose ablation at `side` leaves at most `left_share` of the copying
    (empty if none does): greedy forward selection to that target, then backward pruning of heads it does
    not need."""
    target = left_share * probe.base
    if side == "second":
        # Copying moves tokens from before the second copy into it: only heads that read across that
        # boundary can be the movers. Heads helping the movers' queries (attending within the second copy)
        # would otherwise make an equally small cut that names no mover.
        left = [h for h in probe.heads() if probe.reach[h] >= MOVER_REACH]
    else:
        # A last-layer head's output before the second copy reaches no scored prediction: only later
        # heads could read it there.
        left = [h for h in probe.heads() if h[0] < probe.n_layers - 1]
    if not left or probe.accuracy(left, side) > target:
        return []  # not even every candidate together removes copying: nothing to search for
    chosen: list[Head] = []
    acc = probe.base
    while left and acc > target:
        given = probe.ablated(chosen, side) if chosen else None  # every trial this round shares `chosen`
        trials = {h: probe.accuracy([*chosen, h], side, given) for h in left}
        best = min(trials, key=lambda h: trials[h])  # ties: the first head in (layer, head) order
        chosen.append(best)
        left.remove(best)
        acc = trials[best]
    for h in list(chosen):
        rest = [x for x in chosen if x != h]
        if rest and probe.accuracy(rest, side) <= target:
            chosen = rest
    return sorted(chosen)


def _control(probe: CopyProbe, named: list[Head], side: Side, seed: int) -> float:
    """Mean accuracy with as many heads not in `named`, drawn at random, ablated at `side`."""
    others = [h for h in probe.heads() if h not in named]
    size = min(len(named), len(others))
    if not size:
        return probe.base
    pick = np.random.default_rng([seed, 11])
    draws = [pick.choice(len(others), size=size, replace=False) for _ in range(N_CONTROL)]
    return float(np.mean([probe.accuracy([others[j] for j in d], side) for d in draws]))


def _check(name: str, measured: float, op: str, threshold: float, hint: str) -> Check:
    ok = measured >= threshold if op == ">=" else measured <= threshold
    return Check(name=name, measured=round(measured, 4), op=op, threshold=threshold, passed=ok, hint="" if ok else hint)


def verify_induction(
    model: HookedTransformer, fam: InductionFamily, rng: np.random.Generator, n: int, seed: int, checks: list[Check]
) -> tuple[float, list[InductionTruth], str]:
    """Measure the copying accuracy and the heads that carry it; append the checks; -> (accuracy, [truth],
    task description)."""
    search = CopyProbe(model, fam.sample(rng, min(n, SEARCH_EXAMPLES)))
    test = CopyProbe(model, fam.sample(rng, n))
    acc = test.base
    checks.append(_check("held-out accuracy on the repeated copy", acc, ">=", TASK_ACCURACY, hints.COPYING))
    copying = _search(search, "second", COPY_LEFT)
    feeding = _search(search, "earlier", FEED_LEFT)
    copy_acc = test.accuracy(copying, "second") if copying else acc
    copy_ctrl = _control(test, copying, "second", seed) if copying else acc
    feed_acc = test.accuracy(feeding, "earlier") if feeding else acc
    feed_ctrl = _control(test, feeding, "earlier", seed + 1) if feeding else acc
    for role, heads, side, left, got, ctrl, hint, control_hint in (
        (
            "induction",
            copying,
            "at the second copy",
            COPY_LEFT,
            copy_acc,
            copy_ctrl,
            hints.INDUCTION,
            hints.INDUCTION_CONTROL,
        ),
        (
            "previous-token (feeding)",
            feeding,
            "before the second copy",
            FEED_LEFT,
            feed_acc,
            feed_ctrl,
            hints.FEEDING,
            hints.FEEDING_CONTROL,
        ),
    ):
        checks.append(
            _check(
                f"{role} heads: a head set whose ablation {side} leaves <= {left:g} of the copying "
                f"(greedy group search)",
                len(heads),
                ">=",
                1,
                hint,
            )
        )
        bound = left + CONFIRM_SLACK
        checks.append(
            _check(
                f"held-out accuracy with them ablated {side} (<= {bound:g} of the baseline)",
                got,
                "<=",
                round(bound * acc, 4),
                hint,
            )
        )
        checks.append(
            _check(
                "... accuracy lost beyond ablating as many random heads there (control)",
                ctrl - got,
                ">=",
                CONTROL_MARGIN,
                control_hint,
            )
        )

    whole = {h: test.accuracy([h], "all") for h in test.heads()}

    def score(h: Head, pattern: dict[Head, float]) -> HeadScore:
        return HeadScore(
            layer=h[0],
            head=h[1],
            hook=f"blocks.{h[0]}.attn.hook_z",
            score=round(pattern[h], 4),
            ablated_accuracy=round(whole[h], 4),
        )

    heads = [
        InductionHead(
            layer=l,
            head=h,
            induction_score=round(test.induction[l, h], 4),
            reach=round(test.reach[l, h], 4),
            previous_token_score=round(test.previous[l, h], 4),
            ablated_accuracy=round(whole[l, h], 4),
            second_copy_ablated_accuracy=round(test.accuracy([(l, h)], "second"), 4),
            earlier_ablated_accuracy=round(test.accuracy([(l, h)], "earlier"), 4),
        )
        for l, h in test.heads()
    ]
    truth = InductionTruth(
        method="ablation",
        baseline_accuracy=round(acc, 4),
        induction_heads=[score(h, test.induction) for h in copying],
        previous_token_heads=[score(h, test.previous) for h in feeding],
        all_heads=[score(h, test.induction) for h in test.heads()],
        induction_group_ablated_accuracy=round(copy_acc, 4),
        control_group_ablated_accuracy=round(copy_ctrl, 4),
        previous_group_ablated_accuracy=round(feed_acc, 4),
        previous_control_ablated_accuracy=round(feed_ctrl, 4),
        heads=heads,
    )
    return acc, [truth], "predict the second copy of a repeated random sequence"

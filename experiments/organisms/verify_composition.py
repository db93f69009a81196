"""Find which components carry each step of a composition organism's two-step lookup.

The task (task_composition.py): `<bos> x y .. x y <q> m a` -> the value after the key f(a, m). Step 1
(A -> B) is the key f(a, m), a random table of two tokens; step 2 (B -> C) finds that key in the context
and answers its value. Three query kinds are measured apart, one query per held-out context: `step1`
(`r m a` -> the key), `step2` (`<q> m x` -> x's value, the key given outright) and `both`. Every
component is mean-ablated at one side at a time, the **query** (the query's positions, where the answer is
predicted) or the **context** (the key-value pairs before it), as verify_induction.py does for the two
sides of a repeat:

- **step 1's MLPs**: the smallest set of MLP layers whose mean-ablation at the query leaves at most
  `STEP1_LEFT` of step-1 accuracy (greedy, then pruned), against as many other MLP layers; and their output
  must carry the key: patched at the predicting position from a query with another (a', m') whose key
  differs, the answer should follow the patched key (the value of f(a', m')) in most queries, where patching
  the other MLP layers does not (activation patching, the causal test of "B is here");
- **step 2's lookup heads**: among heads that read the queried pair from the predicting position
  (attention to the key and its value >= `LOOKUP_REACH`), the smallest set whose ablation at the query
  leaves at most `STEP2_LEFT` of the two-step accuracy, against as many other heads;
- **step 2's feeding heads**: the smallest head set whose ablation in the context (only there) leaves at
  most `FEED_LEFT` of the two-step accuracy: what the lookup reads in the context (as an induction head
  reads "the previous token was x" at each value), against as many other heads;
- **separate steps**: with both step-2 head sets ablated, step-1 accuracy must stay (the heads do not
  compute the table), and the step-2-alone accuracy must fall (they do the lookup whatever computed the key).

Searches run on one held-out batch, every reported number on another, with `CONFIRM_SLACK` for sampling
error, as in verify_induction.py; controls draw from the components no step names. MLPs are searched
only for step 1 and heads only for step 2: the claim under test is that the table lives in an MLP and
the lookup in heads. Any other component's part (an MLP helping the lookup read its keys, a head moving
m to the query or telling the query kinds apart) is measured and recorded per component
(`CompositionTruth.components`), never folded into the steps. A model whose table is absorbed by heads
(no MLP set removes step 1) or whose lookup needs no heads fails, with the numbers and what to change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Literal, NamedTuple

import numpy as np

from experiments.organisms import hints
from experiments.organisms.manifest import Check, CompositionComponent, CompositionTruth, HeadScore
from experiments.organisms.task_composition import BOTH, STEP1, STEP2, CompositionFamily
from tools import deadline

if TYPE_CHECKING:
    import torch
    from transformer_lens import HookedTransformer

Side = Literal["query", "context"]
Kind = Literal["step1", "step2", "both"]
KINDS: dict[Kind, int] = {"step1": STEP1, "step2": STEP2, "both": BOTH}

TASK_ACCURACY = 0.95
"""Held-out accuracy each query kind must reach."""
STEP1_LEFT = 0.2
"""Search target for step 1's MLPs: ablated at the query, at most this share of step-1 accuracy is left."""
STEP2_LEFT = 0.2
"""Search target for the lookup heads: ablated at the query, at most this share of two-step accuracy is left."""
FEED_LEFT = 0.5
"""Search target for the feeding heads: ablated in the context, at most this share of two-step accuracy is
left. Looser than the others, as in verify_induction.py: the lookup can also read the context's embeddings."""
CONFIRM_SLACK = 0.1
"""Added to each target when the found set is confirmed on the held-out batch."""
CONTROL_MARGIN = 0.3
"""Accuracy a found set's ablation must cost beyond as many other components of its kind."""
LOOKUP_REACH = 0.3
"""Attention share from the predicting position to the queried key and its value (two-step queries) that makes
a head a lookup candidate: a head that does not read the pair it answers from cannot be the lookup, and heads
spreading their attention over the whole context would otherwise make an equally small cut that names none."""
PATCH_SWITCH = 0.5
"""Share of two-step answers that must follow the key patched in through step 1's MLPs (a majority)."""
KEEP_STEP1 = 0.8
"""Share of step-1 accuracy that must remain with both step-2 head sets ablated."""
N_CONTROL = 5
"""Random head sets per control."""
SEARCH_EXAMPLES = 300
"""Held-out contexts per query kind the greedy searches ablate on."""


class Part(NamedTuple):
    """A head (`head` >= 0) or an MLP layer (`head` == -1)."""

    layer: int
    head: int

    @property
    def is_mlp(self) -> bool:
        return self.head < 0

    @property
    def hook(self) -> str:
        return f"blocks.{self.layer}.hook_mlp_out" if self.is_mlp else f"blocks.{self.layer}.attn.hook_z"

    def __str__(self) -> str:
        return f"MLP{self.layer}" if self.is_mlp else f"L{self.layer}H{self.head}"


class StepProbe:
    """Held-out contexts, one query each of every kind, with each component's mean output over them."""

    def __init__(self, model: HookedTransformer, fam: CompositionFamily, rng: np.random.Generator, n: int):
        import torch

        self.model, self.fam, self.n = model, fam, n
        self.batches = {k: fam.sample(rng, n, queries=1, step=s) for k, s in KINDS.items()}
        self.tokens = torch.from_numpy(np.concatenate([b.tokens for b in self.batches.values()]))
        self.pos = fam.context_len + 2  # the position predicting the (only) query's answer
        self.answers = np.concatenate([b.info["answer"][:, 0] for b in self.batches.values()])
        width = self.tokens.shape[1]
        self.where = {
            "query": torch.arange(width) >= fam.context_len,
            "context": torch.arange(width) < fam.context_len,
        }
        cfg = model.cfg
        self.parts = [Part(l, h) for l in range(cfg.n_layers) for h in range(cfg.n_heads)]
        self.parts += [Part(l, -1) for l in range(cfg.n_layers)]
        names = sorted({p.hook for p in self.parts} | {f"blocks.{l}.attn.hook_pattern" for l in range(cfg.n_layers)})
        with torch.inference_mode():
            logits, cache = model.run_with_cache(self.tokens, names_filter=names)
        self.base = self._score(logits)
        self.means = {h: cache[h].mean((0, 1)) for h in names if not h.endswith("pattern")}
        ctx = fam.context_len
        # Where the two-step queries' key sits in their context (its value follows it).
        both = self.batches["both"]
        key_tok = fam.keys[both.info["key"][:, 0]]
        key_pos = torch.from_numpy(np.argmax(both.tokens[:, :ctx] == key_tok[:, None], axis=1))
        rows = torch.arange(2 * n, 3 * n)  # the two-step queries' rows in `tokens`
        self.reach: dict[Part, float] = {}
        self.lookup: dict[Part, float] = {}
        self.previous: dict[Part, float] = {}
        for l in range(cfg.n_layers):
            pat = cache[f"blocks.{l}.attn.hook_pattern"]  # [batch, head, query, key]
            values = torch.arange(2, ctx, 2)  # each value's position; the key sits just before it
            for h in range(cfg.n_heads):
                at = pat[:, h, self.pos]
                self.reach[Part(l, h)] = float(at[:, :ctx].sum(-1).mean())
                self.lookup[Part(l, h)] = float((at[rows, key_pos] + at[rows, key_pos + 1]).mean())
                self.previous[Part(l, h)] = float(pat[:, h, values, values - 1].mean())

    def _score(self, logits: torch.Tensor) -> dict[Kind, float]:
        pred = logits[:, self.pos].argmax(-1).numpy() == self.answers
        return {k: float(pred[i * self.n : (i + 1) * self.n].mean()) for i, k in enumerate(KINDS)}

    def accuracy(self, parts: Iterable[Part], side: Side) -> dict[Kind, float]:
        """Accuracy per query kind with `parts` mean-ablated at the positions of `side`."""
        import torch

        deadline.check("measuring a composition organism's steps by ablation")
        parts = list(parts)
        if not parts:
            return self.base
        where = self.where[side]

        def ablating(part: Part) -> Callable:
            def hook(x, hook):
                if part.is_mlp:
                    x[:, where] = self.means[part.hook]
                else:
                    x[:, where, part.head] = self.means[part.hook][part.head]
                return x

            return hook

        with torch.inference_mode():
            return self._score(self.model.run_with_hooks(self.tokens, fwd_hooks=[(p.hook, ablating(p)) for p in parts]))

    def patch_switch(self, parts: list[Part], rng: np.random.Generator) -> tuple[float, float]:
        """Patch `parts`' outputs at the predicting position from another context (the next row's) with another
        query (a', m') whose key is another key of *this* context: (share of two-step answers that become this
        context's value of the patched key, share of step-1 answers that become the patched key). Patching from
        another context tells the key from the answer: a component carrying the key makes the lookup that follows
        it answer from this context, while one downstream of the lookup carries the other context's answer (in
        a two-layer model the last MLP can be both, and patching it from the same context moved 0.57 of one
        seed's answers while it computes no key)."""
        import torch

        deadline.check("patching a composition organism's step-1 output")
        fam = self.fam
        out = []
        for kind in ("both", "step1"):
            b = self.batches[kind]
            a, m = fam.other_query(rng, b.info["context_keys"], b.info["key"][:, 0]).T
            other = np.roll(b.tokens, 1, axis=0)
            other[:, self.pos - 1], other[:, self.pos] = fam.modifiers[m], fam.inputs[a]
            new_key = fam.table[a, m]
            target = fam.keys[new_key] if kind == "step1" else b.info["value_of"][np.arange(self.n), new_key]
            hooks = sorted({p.hook for p in parts})
            with torch.inference_mode():
                _, cache = self.model.run_with_cache(torch.from_numpy(other), names_filter=hooks)

                def patch(x, hook, cache=cache):
                    x[:, self.pos] = cache[hook.name][:, self.pos]
                    return x

                logits = self.model.run_with_hooks(torch.from_numpy(b.tokens), fwd_hooks=[(h, patch) for h in hooks])
            out.append(float((logits[:, self.pos].argmax(-1).numpy() == target).mean()))
        return out[0], out[1]


def _search(probe: StepProbe, candidates: list[Part], side: Side, kind: Kind, left_share: float) -> list[Part]:
    """The smallest set of `candidates` found whose ablation at `side` leaves at most `left_share` of `kind`'s
    accuracy (empty if even all of them together do not): greedy forward selection, then pruning."""
    target = left_share * probe.base[kind]
    if not candidates or probe.accuracy(candidates, side)[kind] > target:
        return []
    chosen: list[Part] = []
    left, acc = list(candidates), probe.base[kind]
    while left and acc > target:
        trials = {p: probe.accuracy([*chosen, p], side)[kind] for p in left}
        best = min(trials, key=lambda p: trials[p])  # ties: the first in (layer, head) order
        chosen.append(best)
        left.remove(best)
        acc = trials[best]
    for p in list(chosen):
        rest = [x for x in chosen if x != p]
        if rest and probe.accuracy(rest, side)[kind] <= target:
            chosen = rest
    return sorted(chosen)


def control_pool(parts: list[Part], pool: list[Part], named: set[Part], side: Side, n_layers: int) -> list[Part]:
    """The components a control for `parts` draws from: those of `pool` that no step names, else (every one is
    named) those outside `parts`; never an exact no-op (a last-layer component ablated in the context reaches no
    prediction). Empty when none is left: the caller then has nothing to compare with."""
    live = [p for p in pool if not (side == "context" and p.layer == n_layers - 1)]
    return [p for p in live if p not in named] or [p for p in live if p not in parts]


def _control(probe: StepProbe, named: list[Part], others: list[Part], side: Side, kind: Kind, seed: int) -> float:
    """Mean `kind` accuracy with as many of `others` as `named` holds (fewer if there are not as many), drawn at
    random, ablated at `side` (every such set, when there are at most `N_CONTROL`)."""
    from itertools import combinations

    size = min(len(named), len(others))
    if not size:
        return probe.base[kind]
    every = list(combinations(others, size))
    if len(every) > N_CONTROL:
        pick = np.random.default_rng([seed, 13])
        every = [tuple(others[j] for j in pick.choice(len(others), size=size, replace=False)) for _ in range(N_CONTROL)]
    return float(np.mean([probe.accuracy(s, side)[kind] for s in every]))


def _check(name: str, measured: float, op: str, threshold: float, hint: str) -> Check:
    ok = measured >= threshold if op == ">=" else measured <= threshold
    return Check(name=name, measured=round(measured, 4), op=op, threshold=threshold, passed=ok, hint="" if ok else hint)


def _found(
    checks: list[Check],
    role: str,
    parts: list[Part],
    side: str,
    left: float,
    got: float,
    base: float,
    ctrl: float,
    control: tuple[float, str] | None = None,
) -> None:
    """The checks of one found set: it exists, its ablation leaves at most `left` (+ slack) of `base`, and it costs
    `CONTROL_MARGIN` more than as many others (`ctrl`); `control` = (the set's own accuracy, on which queries) when
    the control is scored on other queries than `got`."""
    hint, control_hint = {
        "step 1 MLPs": (hints.STEP1_MLP, hints.STEP1_CONTROL),
        "step 2 lookup heads": (hints.LOOKUP, hints.LOOKUP_CONTROL),
        "step 2 feeding heads": (hints.LOOKUP_FEEDING, hints.LOOKUP_CONTROL),
    }[role]
    checks.append(
        _check(f"{role}: a set whose ablation {side} leaves <= {left:g} (greedy search)", len(parts), ">=", 1, hint)
    )
    bound = left + CONFIRM_SLACK
    checks.append(
        _check(
            f"held-out accuracy with the {role} ablated {side} (<= {bound:g} of the baseline)",
            got,
            "<=",
            round(bound * base, 4),
            hint,
        )
    )
    own, where = control or (got, "")
    checks.append(
        _check(
            f"... accuracy lost beyond ablating as many others of their kind there{where} (control)",
            ctrl - own,
            ">=",
            CONTROL_MARGIN,
            control_hint,
        )
    )


def verify_composition(
    model: HookedTransformer, fam: CompositionFamily, rng: np.random.Generator, n: int, seed: int, checks: list[Check]
) -> tuple[float, list[CompositionTruth], str]:
    """Measure each step's accuracy and the components that carry it; append the checks; -> (two-step
    accuracy, [truth], task description)."""
    search = StepProbe(model, fam, rng, min(n, SEARCH_EXAMPLES))
    test = StepProbe(model, fam, rng, n)
    base = test.base
    for kind, what in (
        ("step1", "step 1 alone (the key)"),
        ("step2", "step 2 alone (a named key's value)"),
        ("both", "both steps"),
    ):
        checks.append(
            _check(f"held-out accuracy on {what}", base[kind], ">=", TASK_ACCURACY, hints.COMPOSITION_ACCURACY)
        )
    mlps = [p for p in test.parts if p.is_mlp]
    heads = [p for p in test.parts if not p.is_mlp]

    step1 = _search(search, mlps, "query", "step1", STEP1_LEFT)
    lookup = _search(search, [h for h in heads if search.lookup[h] >= LOOKUP_REACH], "query", "both", STEP2_LEFT)
    feeding = _search(search, heads, "context", "both", FEED_LEFT)
    # Controls draw from the components no step names: a head of the other step set can be needed at both sides
    # (a feeding head may also route the query's kind at the query), which says nothing about the set tested.
    # Where every such component is named, from all outside the set tested. Never from exact no-ops (a
    # last-layer head's output in the context reaches nothing): with none left the control is the set's own
    # accuracy, so its check fails instead of passing against nothing.
    named = set(step1) | set(lookup) | set(feeding)

    def measured(parts: list[Part], pool: list[Part], side: Side, kind: Kind, salt: int) -> tuple[float, float]:
        if not parts:
            return base[kind], base[kind]
        got = test.accuracy(parts, side)[kind]
        others = control_pool(parts, pool, named, side, model.cfg.n_layers)
        return got, _control(test, parts, others, side, kind, seed + salt) if others else got

    s1_acc, s1_ctrl = measured(step1, mlps, "query", "step1", 0)
    lk_acc, _ = measured(lookup, heads, "query", "both", 1)
    # The lookup's control is scored on step-2-alone queries: at the query, other heads bring step 1's inputs (m and
    # a) to the predicting position, so ablating them costs two-step answers by breaking step 1 (measured: 0.26-0.28
    # below the lookup's margin on seeds 0 and 1), which says nothing about the lookup. With the key named outright
    # only the lookup is left to lose.
    lk2_acc, lk_ctrl = measured(lookup, heads, "query", "step2", 1)
    fd_acc, fd_ctrl = measured(feeding, heads, "context", "both", 2)
    _found(checks, "step 1 MLPs", step1, "at the query", STEP1_LEFT, s1_acc, base["step1"], s1_ctrl)
    patch_rng = np.random.default_rng([seed, 17])
    switch, key_switch = test.patch_switch(step1, patch_rng) if step1 else (0.0, 0.0)
    others = [p for p in mlps if p not in step1]
    ctrl_switch, _ = test.patch_switch(others, patch_rng) if others else (0.0, 0.0)
    checks.append(
        _check(
            "two-step answers following the key patched in through the step 1 MLPs (from another a, m)",
            switch,
            ">=",
            PATCH_SWITCH,
            hints.STEP1_PATCH,
        )
    )
    checks.append(
        _check(
            "... beyond patching the other MLP layers (control)",
            switch - ctrl_switch,
            ">=",
            CONTROL_MARGIN,
            hints.STEP1_PATCH,
        )
    )
    _found(
        checks,
        "step 2 lookup heads",
        lookup,
        "at the query",
        STEP2_LEFT,
        lk_acc,
        base["both"],
        lk_ctrl,
        (lk2_acc, ", on step-2-alone queries"),
    )
    _found(checks, "step 2 feeding heads", feeding, "in the context", FEED_LEFT, fd_acc, base["both"], fd_ctrl)

    # Separate steps: the step-2 heads ablated together (each at its side) leave step 1 and remove step 2 alone.
    def both_sides(kind: Kind) -> float:
        import torch

        deadline.check("measuring a composition organism's steps by ablation")
        if not (lookup or feeding):
            return base[kind]
        hooks = []
        for parts, side in ((lookup, "query"), (feeding, "context")):
            for p in parts:
                where = test.where[side]

                def hook(x, hook, p=p, where=where):
                    x[:, where, p.head] = test.means[p.hook][p.head]
                    return x

                hooks.append((p.hook, hook))
        with torch.inference_mode():
            return test._score(model.run_with_hooks(test.tokens, fwd_hooks=hooks))[kind]

    kept1, left2 = both_sides("step1"), both_sides("step2")
    checks.append(
        _check(
            "step 1 accuracy with the step 2 heads ablated (the heads do not compute the table)",
            kept1,
            ">=",
            round(KEEP_STEP1 * base["step1"], 4),
            hints.SEPARATE_STEPS,
        )
    )
    checks.append(
        _check(
            "step 2 alone (a named key's value) with the step 2 heads ablated",
            left2,
            "<=",
            round((STEP2_LEFT + CONFIRM_SLACK) * base["step2"], 4),
            hints.SEPARATE_STEPS,
        )
    )

    def head_score(p: Part, pattern: dict[Part, float]) -> HeadScore:
        return HeadScore(
            layer=p.layer,
            head=p.head,
            hook=p.hook,
            score=round(pattern[p], 4),
            ablated_accuracy=round(test.accuracy([p], "query" if pattern is test.lookup else "context")["both"], 4),
        )

    components = []
    for p in test.parts:
        at_q, in_c = test.accuracy([p], "query"), test.accuracy([p], "context")
        components.append(
            CompositionComponent(
                name=str(p),
                layer=p.layer,
                head=None if p.is_mlp else p.head,
                hook=p.hook,
                reach=None if p.is_mlp else round(test.reach[p], 4),
                lookup_score=None if p.is_mlp else round(test.lookup[p], 4),
                previous_token_score=None if p.is_mlp else round(test.previous[p], 4),
                query_ablated={k: round(v, 4) for k, v in at_q.items()},
                context_ablated={k: round(v, 4) for k, v in in_c.items()},
            )
        )
    truth = CompositionTruth(
        step1_accuracy=round(base["step1"], 4),
        step2_accuracy=round(base["step2"], 4),
        both_accuracy=round(base["both"], 4),
        step1_mlp_layers=[p.layer for p in step1],
        step1_ablated_accuracy=round(s1_acc, 4),
        step1_control_ablated_accuracy=round(s1_ctrl, 4),
        step1_patch_switch_rate=round(switch, 4),
        step1_patch_key_switch_rate=round(key_switch, 4),
        step1_patch_control_switch_rate=round(ctrl_switch, 4),
        lookup_heads=[head_score(p, test.lookup) for p in lookup],
        lookup_ablated_accuracy=round(lk_acc, 4),
        lookup_step2_ablated_accuracy=round(lk2_acc, 4),
        lookup_control_ablated_accuracy=round(lk_ctrl, 4),
        feeding_heads=[head_score(p, test.previous) for p in feeding],
        feeding_ablated_accuracy=round(fd_acc, 4),
        feeding_control_ablated_accuracy=round(fd_ctrl, 4),
        step1_accuracy_without_step2_heads=round(kept1, 4),
        step2_accuracy_without_step2_heads=round(left2, 4),
        components=components,
    )
    return base["both"], [truth], "after `<q> m a`, output the value the context pairs with the key f(a, m)"

"""The induction line when no head shows the textbook pattern: localise copying by causal effect, explain by
attention offset, test against random heads.

    localise  `attribute` over heads, metric copy_logprob, the reference each prompt with its second copy replaced
              by unused words (the earlier positions are identical, so under causal attention only a head's
              output at the second copy differs: the estimate is the head's effect *at the second copy*, as the
              copying heads are defined). Integrated gradients per layer (exact through later attention patterns)
              on small models. Heads estimated to carry at least a tenth of it (copy_offsets.standouts) are the
              copying candidates.
    feeding   a second attribution, against each head's mean (every position), ranks the heads of the layers before
              the first copying candidate; the statement sets that against the head's estimate at the second copy
              alone, which for a feeding head is small: what copying needs is its output at earlier positions, read
              there by the later copying heads (the previous-token role, K- or V-composition).
    explain   the candidates' attention patterns (softmax of q.k, harvested with `activations`) on prompts with
              repeats of varied length and a varied prefix, so that an offset from the earlier copy is not an
              offset from the query: where in the earlier copy each copying head attends, as offset k from the
              token after the earlier occurrence; how far back from its own position each feeding head attends.
    verify    the same pre-registered test as the textbook path (induction.COPYING): mean-ablating the head(s)
              removes >= 30% of copying, 0.1 more than as many random heads; a copying head is tested with the
              other copying candidates ablated throughout (they are redundant copies of one another).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agent.brains.lines import copy_offsets as co
from agent.brains.lines.ctx import Action, Ctx, Invalid
from tools.ablate import AblateInput, Head
from tools.activations import ActivationsInput, ActivationsResult
from tools.attribute import AttributeInput, AttributeResult
from tools.metrics import Metric

ATTRIBUTE_STEPS = 5
"""Integrated-gradient steps (as the behaviour line: plain attribution misses heads whose attention saturates)."""
PER_LAYER_MAX_PASSES = 24
"""Integrate each layer on its own when that takes at most this many passes (as the behaviour line)."""
COPY_SHARE = 0.1
"""A head is a copying candidate when its estimated drop is at least this share of the whole clean-minus-corrupted
difference of copy log-probability (ten heads carrying a tenth each would be the whole of it)."""
MAX_COPYING = 6
"""Copying candidates tested one by one (each test is 2 + N_RANDOM forward passes)."""
FEED_SHARE = 0.1
"""A head of the layers before the first copying candidate is a feeding candidate when its estimated drop against
its mean is at least this share of the summed drops of those layers' heads."""
MAX_FEEDING = 3
"""Feeding candidates tested one by one."""
N_RANDOM = 5
"""Random head sets per control."""
EXPLAIN_PROMPTS = 32
"""Prompts whose attention patterns explain the copying heads."""


def _per_layer(c: Ctx) -> str:
    hooks = c.view.model["n_layers"] + 1
    return "per_layer" if 1 + (ATTRIBUTE_STEPS - 1) * hooks <= PER_LAYER_MAX_PASSES else "input"


def corrupted(c: Ctx, prompts: list[str]) -> list[str] | None:
    """Each prompt with everything from its first repeated word on replaced by words it does not contain (None if
    any cannot be). Words are tokens only in a word-level vocabulary; elsewhere `attribute` refuses prompts whose
    token lengths differ, and the line ends there."""
    rng = np.random.default_rng([c.seed, 7])
    out = []
    for p in prompts:
        words = p.split(" ")
        first = next((i for i, w in enumerate(words) if w in words[:i]), len(words))
        bad = co.corrupt_second_copy(p, first, c.vocab or [], rng)
        if bad is None:
            return None
        out.append(bad)
    return out


def explain_prompts(c: Ctx, n: int = EXPLAIN_PROMPTS) -> list[str] | None:
    """Random words repeated once, with repeat lengths and prefixes that vary from prompt to prompt."""
    vocab = [t for t in (c.vocab or []) if " " not in t]
    n_ctx = c.view.model["n_ctx"]
    longest = min(8, (n_ctx - 4) // 2)
    if longest < 4 or len(vocab) < 2 * longest + 3:
        return None
    rng = np.random.default_rng([c.seed, 11])
    out = []
    for _ in range(n):
        k, pre = int(rng.integers(4, longest + 1)), int(rng.integers(0, 4))
        words = [str(t) for t in rng.choice(vocab, size=k + pre, replace=False)]
        out.append(" ".join(words[:pre] + words[pre:] + words[pre:]))
    return out


def attribute(c: Ctx, ref: str, prompts: list[str], reference: list[str] | None) -> Action:
    return c.call(
        ref,
        c.build(
            AttributeInput,
            prompts=prompts,
            metric=Metric(kind="copy_logprob"),
            corrupted=reference,
            kinds=["heads"],
            order="drop",
            steps=ATTRIBUTE_STEPS,
            path=_per_layer(c),
            top=MAX_COPYING,
        ),
    )


@dataclass(frozen=True)
class Looks:
    """Where each explained head attends, computed from the queries and keys of the `induction/patterns` call."""

    offsets: dict[tuple[int, int], co.Offset]
    """Copying heads: the peak offset from the token after the earlier occurrence."""
    lookback: dict[tuple[int, int], str]
    """Feeding heads: how far back from the query it attends, as a clause."""


def looks(c: Ctx, prompts: list[str], copying: list[co.Standout], feeding: list[co.Standout]) -> Looks:
    """Offsets of the copying heads and look-back of the feeding heads (empty where the harvest is missing)."""
    found = Looks({}, {})
    res = c.result("induction/patterns", ActivationsResult)
    paths = {name: h.path for name, h in res.hooks.items() if h.path} if res else {}
    if not paths:
        return found
    folder = Path(next(iter(paths.values()))).parent
    index, position = np.load(folder / "prompt_index.npy"), np.load(folder / "position.npy")
    scale = float(np.sqrt(c.view.model["d_head"]))
    for layer in sorted({h.layer for h in [*copying, *feeding]}):
        qp, kp = paths.get(f"blocks.{layer}.attn.hook_q"), paths.get(f"blocks.{layer}.attn.hook_k")
        if qp is None or kp is None:
            continue
        qs, ks = np.load(qp, mmap_mode="r"), np.load(kp, mmap_mode="r")  # [rows, head, d_head]
        if qs.shape != ks.shape:  # grouped-query attention: fewer key heads than query heads
            continue
        n_heads = qs.shape[1]
        total = np.zeros((n_heads, 2 * co.MAX_OFFSET + 1))
        back = np.zeros((n_heads, co.MAX_OFFSET + 1))
        pairs_n = queries = 0
        for b, p in enumerate(prompts):
            rows = np.nonzero(index == b)[0]
            words = p.split(" ")
            shift = len(rows) - len(words)
            if shift not in (0, 1):  # a word split into several tokens: positions cannot be matched to words
                continue
            order = rows[np.argsort(position[rows])]
            pat = co.pattern_from_qk(qs[order], ks[order], scale)
            pairs = co.copy_positions(words, shift)
            total += co.offset_profile(pat, pairs)
            back += co.lookback_profile(pat)
            pairs_n, queries = pairs_n + len(pairs), queries + len(rows)
        for h in copying:
            if h.layer == layer and pairs_n:
                found.offsets[h.layer, h.head] = co.peak(total[h.head] / pairs_n)
        for h in feeding:
            if h.layer == layer and queries:
                found.lookback[h.layer, h.head] = co.describe_lookback(back[h.head] / queries)
    return found


def causal(c: Ctx, prompts: list[str]) -> list[Action] | None:
    """The next action of the causal path (see the module docstring), or None when it is finished."""
    if not c.started("induction/attribute/corrupted"):
        bad = corrupted(c, prompts)
        if bad is not None:
            return [attribute(c, "induction/attribute/corrupted", prompts, bad)]
    second = c.result("induction/attribute/corrupted", AttributeResult)
    if second is None:
        return None  # no reference without copying: nothing localises the copying heads
    total = (second.clean_value - second.reference_value) if second.reference_value is not None else 0.0
    copying = co.standouts(second.head_grid, total, COPY_SHARE, MAX_COPYING)
    if not copying:
        return None
    first = min(h.layer for h in copying)
    feeding: list[co.Standout] = []
    if first > 0:
        if not c.started("induction/attribute/mean"):
            return [attribute(c, "induction/attribute/mean", prompts, None)]
        mean = c.result("induction/attribute/mean", AttributeResult)
        if mean is not None:
            earlier = [row if layer < first else [0.0] * len(row) for layer, row in enumerate(mean.head_grid)]
            whole = -sum(min(0.0, v) for row in earlier for v in row)
            feeding = co.standouts(earlier, whole, FEED_SHARE, MAX_FEEDING)
    # Word-level vocabularies only: there each word is one token, so a pattern's positions are the words'.
    explain = explain_prompts(c) if c.view.model.get("word_level") else None
    if explain and not c.started("induction/patterns"):
        layers = sorted({h.layer for h in [*copying, *feeding]})
        return [
            c.call(
                "induction/patterns",
                c.build(
                    ActivationsInput,
                    prompts=explain,
                    # queries and keys: `activations` keeps [batch, pos, ...] hooks, which hook_pattern is not
                    hooks=[f"blocks.{layer}.attn.hook_{x}" for layer in layers for x in ("q", "k")],
                    positions="all",
                    out="induction-patterns",  # placed in the run's artifacts folder
                ),
            )
        ]
    at_second = {(layer, head): -v for layer, row in enumerate(second.head_grid) for head, v in enumerate(row)}
    return _verify(c, prompts, copying, feeding, looks(c, explain or [], copying, feeding), at_second)


def _verify(
    c: Ctx,
    prompts: list[str],
    copying: list[co.Standout],
    feeding: list[co.Standout],
    seen: Looks,
    at_second: dict[tuple[int, int], float],
) -> list[Action] | None:
    from agent.brains.lines.induction import COPYING, REMOVES

    heads = [Head(layer=h.layer, head=h.head) for h in copying]
    names = ", ".join(x.label() for x in heads)

    def ablating(comps: list[Head], background: list[Head], exclude: list[Head]) -> AblateInput | Invalid:
        return c.build(
            AblateInput,
            prompts=prompts,
            metric=Metric(kind="copy"),
            components=comps,
            background=background,
            method="mean",
            n_random=N_RANDOM,
            seed=c.seed,
            control_exclude=exclude,
        )

    steps: list[tuple[str, Action]] = []
    if len(heads) > 1:
        steps.append(
            (
                "induction/h/group",
                c.hypothesize(
                    "induction/h/group",
                    f"Heads {names} together copy earlier tokens in context (induction, localised by their "
                    f"estimated effect at the second copy): ablating them {REMOVES}, far more than as many "
                    "random heads",
                    "heads",
                    {"heads": [[h.layer, h.head] for h in heads], "hook": f"blocks.{heads[0].layer}.attn.hook_z"},
                    ablating(heads, [], heads),
                    COPYING,
                ),
            )
        )
    for s, comp in zip(copying, heads, strict=True):
        others = [x for x in heads if x != comp]
        label = comp.label()
        o = seen.offsets.get((s.layer, s.head))
        how = f"; it {co.describe(o)}" if o else ""
        note = " (with the other copying candidates ablated throughout)" if others else ""
        steps.append(
            (
                f"induction/h/{label}",
                c.hypothesize(
                    f"induction/h/{label}",
                    f"Head {label} is a copying (induction) head: its estimated effect at the second copy is a drop "
                    f"of {s.drop:.2f} in the copied token's log-probability{how}; ablating it{note} {REMOVES}, far "
                    "more than random heads",
                    "head",
                    {"hook": f"blocks.{s.layer}.attn.hook_z", "layer": s.layer, "head": s.head},
                    ablating([comp], others, heads),
                    COPYING,
                ),
            )
        )
    for f in feeding:
        comp = Head(layer=f.layer, head=f.head)
        label = comp.label()
        look = f"; it {seen.lookback[f.layer, f.head]}" if (f.layer, f.head) in seen.lookback else ""
        steps.append(
            (
                f"induction/h/prev/{label}",
                c.hypothesize(
                    f"induction/h/prev/{label}",
                    f"Head {label} plays the previous-token role, feeding the copying heads {names}: its estimated "
                    "effect at the second copy itself "
                    f"is small ({at_second.get((f.layer, f.head), 0.0):.2f}) against {f.drop:.2f} for replacing it by "
                    f"its mean everywhere, so what the copying needs is its output at earlier positions, read by "
                    f"the later copying heads{look}; ablating it {REMOVES}, far more than random heads",
                    "head",
                    {"hook": f"blocks.{f.layer}.attn.hook_z", "layer": f.layer, "head": f.head},
                    ablating([comp], [], [*heads, comp]),
                    COPYING,
                ),
            )
        )
    for ref, action in steps:
        if not c.started(ref):
            return [action]
    return None

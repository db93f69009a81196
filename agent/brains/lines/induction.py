"""Induction: repeated random sequences; heads scored by attention, candidates ablated against random heads.

When no head shows the textbook induction pattern (a deeper model's copying heads may attend a few tokens past
it), the candidates come from their estimated causal effect instead (induction_causal.py)."""

from __future__ import annotations

from agent.brains.lines.ctx import Action, Criterion, Ctx, Invalid
from tools.ablate import AblateInput, Head
from tools.attention import AttentionInput, AttentionResult
from tools.metrics import Metric

MIN_COPY_RATE = 0.2
"""In-context copying below this is not worth explaining (chance is 1 / vocabulary)."""
REMOVES = "removes at least a third of the model's in-context copying"
# Relative: a real model copies well below 100%, and removing a third of what it does copy
# is a large effect; the margin over random heads keeps it honest.
COPYING = Criterion("ablate", (("relative_effect", "<=", -0.3), ("margin", ">=", 0.1)))
"""Ablating the head(s) removes >= 30% of copying, 0.1 more than as many random heads."""


def repeated(c: Ctx, n: int = 24) -> list[str] | None:
    import numpy as np

    vocab = [t for t in (c.vocab or []) if " " not in t]
    k = min(8, (c.view.model["n_ctx"] - 1) // 2)
    if len(vocab) < 2 * k or k < 3:
        return None
    rng = np.random.default_rng([c.seed, 5])
    out = []
    for _ in range(n):
        seq = [str(t) for t in rng.choice(vocab, size=k, replace=False)]
        out.append(" ".join(seq + seq[:-1]))
    return out


def induction(c: Ctx) -> list[Action] | None:
    prompts = c.prompts if c.view.question["kind"] == "behaviour" else repeated(c)
    if not prompts:
        return None
    if not c.started("induction/attention"):
        return [c.call("induction/attention", c.build(AttentionInput, prompts=prompts, top=8))]
    att = c.result("induction/attention", AttentionResult)
    # Copying a token seen earlier is far above chance (1 / vocabulary) even at 20%; a small
    # real model copies random word lists ~65% of the time (SmolLM2-135M), a toy one ~95%.
    if att is None or att.repeated_positions == 0 or att.induction_accuracy < MIN_COPY_RATE:
        return None  # no in-context copying to explain
    prompts = [prompts[i] for i in att.prompts_with_repeats]
    cands = [h for h in att.top_induction if h.induction >= max(0.3, 3 * att.control)][:4]
    if not cands:
        # No head shows the textbook pattern: localise the copying by its causal effect instead (imported here:
        # that module reads this one's criterion, and numpy stays out of importing the brain).
        from agent.brains.lines.induction_causal import causal

        return causal(c, prompts)
    heads = [Head(layer=h.layer, head=h.head) for h in cands]
    names = ", ".join(f"L{h.layer}H{h.head}" for h in cands)

    def ablating(
        components: list[Head], background: list[Head] | None = None, exclude: list[Head] | None = None
    ) -> AblateInput | Invalid:
        """The test: mean-ablating `components` (with `background` ablated throughout) against as many random
        heads, none of them a candidate (nor `exclude`)."""
        return c.build(
            AblateInput,
            prompts=prompts,
            metric=Metric(kind="copy"),
            components=components,
            background=background or [],
            method="mean",
            n_random=5,
            seed=c.seed,
            control_exclude=exclude or heads,
        )

    steps = []
    if len(cands) > 1:
        steps.append(
            (
                "induction/h/group",
                c.hypothesize(
                    "induction/h/group",
                    f"Heads {names} together implement in-context copying (induction): ablating them "
                    f"{REMOVES}, far more than as many random heads",
                    "heads",
                    {"heads": [[h.layer, h.head] for h in cands], "hook": f"blocks.{cands[0].layer}.attn.hook_z"},
                    ablating(heads),
                    COPYING,
                ),
            )
        )
    for h, comp in zip(cands, heads, strict=True):
        siblings = [x for x in heads if x.layer == h.layer and x != comp]
        label = f"L{h.layer}H{h.head}"
        note = f" (with the other candidate heads of layer {h.layer} ablated throughout)" if siblings else ""
        ref = f"induction/h/{label}"
        steps.append(
            (
                ref,
                c.hypothesize(
                    ref,
                    f"Head {label} is an induction head (attention score {h.induction:.2f}): ablating it{note} "
                    f"{REMOVES}, far more than random heads",
                    "head",
                    {"hook": f"blocks.{h.layer}.attn.hook_z", "layer": h.layer, "head": h.head},
                    ablating([comp], background=siblings),
                    COPYING,
                ),
            )
        )
    first = min(h.layer for h in cands)
    prev = [p for p in att.top_previous_token if p.layer < first and p.previous_token >= 0.4][:1]
    for p in prev:
        label = f"L{p.layer}H{p.head}"
        comp = Head(layer=p.layer, head=p.head)
        steps.append(
            (
                f"induction/h/prev/{label}",
                c.hypothesize(
                    f"induction/h/prev/{label}",
                    f"Head {label} is a previous-token head feeding the induction heads (previous-token score "
                    f"{p.previous_token:.2f}): ablating it {REMOVES}, far more than random heads",
                    "head",
                    {"hook": f"blocks.{p.layer}.attn.hook_z", "layer": p.layer, "head": p.head},
                    ablating([comp], exclude=[*heads, comp]),
                    COPYING,
                ),
            )
        )
    for ref, action in steps:
        if not c.started(ref):
            return [action]
    return None

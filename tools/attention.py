"""Attention-pattern head scores: previous-token, induction and first-token heads.

Observational evidence only (a pattern says where a head looks, not what it
does), but cheap: one forward pass scores every head, and the scores pick the
candidates that ablation then tests causally. The induction score is measured
on whatever repeats the prompts contain (Olsson et al. use repeated random
tokens); the tool also reports how often the model actually predicts the token
that followed an earlier occurrence, so a brain can tell whether there is any
in-context copying to explain.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from tools.base import Record, ToolInput, ToolResult, measure
from tools.cost import Meter
from tools.errors import UserError
from tools.estimate import padded
from tools.metrics import copy_targets
from tools.prompts import encode
from tools.spec import ToolSpec

if TYPE_CHECKING:
    from tools.target import Target


class AttentionInput(ToolInput):
    """Score every attention head as a previous-token, induction and first-token head."""

    prompts: list[str]
    """Prompts to run; induction scores need tokens that repeat (e.g. a random sequence twice)."""
    top: int = Field(8, ge=1, le=100)
    """Heads reported per score, highest first."""


class HeadPattern(Record):
    """One head's pattern scores."""

    layer: int
    """Layer index."""
    head: int
    """Head index."""
    previous_token: float
    """Mean attention from each position to the one before it."""
    induction: float
    """Mean attention from a repeated token to the token after its earlier occurrence."""
    first_token: float
    """Mean attention to position 0."""


class AttentionResult(ToolResult):
    """Pattern scores for every head, and the top heads by each score."""

    heads: list[HeadPattern]
    """Every head, layer-major."""
    top_induction: list[HeadPattern]
    """Highest induction scores."""
    top_previous_token: list[HeadPattern]
    """Highest previous-token scores."""
    repeated_positions: int = measure(0)
    """Positions whose token occurred earlier in the same prompt (what induction is scored on)."""
    prompts_with_repeats: list[int]
    """Indices of the prompts that have such positions (the ones a copy metric can score)."""
    induction_accuracy: float = measure(0, 1)
    """At those positions, share where the model's argmax is the token that followed the earlier occurrence."""
    effect: float = measure(0, 1)
    """The highest induction score."""
    control: float = measure(0, 1, versus_control=True)
    """Median induction score over heads."""


def run(target: Target, inp: AttentionInput) -> AttentionResult:
    import torch

    model = target.model
    if model.cfg.n_heads < 1:
        raise UserError("this model has no attention heads to score")
    meter = Meter()
    enc = encode(model, inp.prompts)
    names = [f"blocks.{layer}.attn.hook_pattern" for layer in range(model.cfg.n_layers)]
    logits, cache = meter.cache(model, enc.tokens, names)
    L, H = model.cfg.n_layers, model.cfg.n_heads
    prev = torch.zeros(L, H)
    ind = torch.zeros(L, H)
    first = torch.zeros(L, H)
    n_prev = n_ind = hits = 0
    with_repeats = []
    for b, n in enumerate(enc.lengths.tolist()):
        toks = enc.tokens[b, :n].tolist()
        pats = torch.stack([cache[name][b, :, :n, :n].float().cpu() for name in names])  # [L, H, q, k]
        q = torch.arange(1, n)
        prev += pats[:, :, q, q - 1].sum(-1)
        first += pats[:, :, :, 0].sum(-1)
        n_prev += n - 1
        pred = logits[b, :n].argmax(-1).tolist()
        targets = copy_targets(toks)
        if targets:
            with_repeats.append(b)
        for i, j, expected in targets:
            ind += pats[:, :, i, j]
            n_ind += 1
            hits += int(pred[i] == expected)
    total = sum(enc.lengths.tolist())
    prev, first = prev / max(n_prev, 1), first / total
    ind = ind / n_ind if n_ind else ind
    heads = [
        HeadPattern(
            layer=layer,
            head=h,
            previous_token=round(float(prev[layer, h]), 4),
            induction=round(float(ind[layer, h]), 4),
            first_token=round(float(first[layer, h]), 4),
        )
        for layer in range(L)
        for h in range(H)
    ]
    by_ind = sorted(heads, key=lambda x: -x.induction)[: inp.top]
    by_prev = sorted(heads, key=lambda x: -x.previous_token)[: inp.top]
    median = float(ind.flatten().median())
    acc = hits / n_ind if n_ind else 0.0
    best = by_ind[0]
    return AttentionResult(
        tool="attention",
        summary=(
            f"top induction head L{best.layer}H{best.head} ({best.induction:.2f}, median head {median:.2f}) "
            f"over {n_ind} repeated positions, where the model copies {acc:.0%}; top previous-token head "
            f"L{by_prev[0].layer}H{by_prev[0].head} ({by_prev[0].previous_token:.2f})"
        ),
        cost=meter.cost(),
        heads=heads,
        top_induction=by_ind,
        top_previous_token=by_prev,
        repeated_positions=n_ind,
        prompts_with_repeats=with_repeats,
        induction_accuracy=round(acc, 4),
        effect=best.induction,
        control=round(median, 4),
    )


def estimate(t: Target, inp: AttentionInput) -> int:
    """Forward tokens a call costs (the Meter charges the same)."""
    return padded(t.model, inp.prompts)


SPEC = ToolSpec(
    name="attention",
    input_model=AttentionInput,
    result_model=AttentionResult,
    run=run,
    estimate=estimate,
    tier="observational",
)

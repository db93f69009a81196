"""Head explanations: what each head writes to the behaviour's tokens and where it looks.

Per head, on the positions the metric reads (each prompt's last position for a token metric, the
repeated positions for copy metrics, every position for loss):

    direct logit attribution  the head's output (z @ W_O) through the final LayerNorm with its scale
                              frozen at the clean run's value (as TransformerLens's apply_ln_to_stack)
                              and the unembedding, onto the metric's direction: logit[token] -
                              logit[versus] for logit_diff, logit[token] otherwise, the copied (or next)
                              token for copy metrics and loss
    attention summary         the share of its attention from those positions to each token role:
                              bos, self, previous token, induction (the token after an earlier
                              occurrence of the current token), duplicate (an earlier occurrence of the
                              current token), answer (the metric's token), distractor (its versus
                              token), other; each key takes the first role that fits, in that order.

Observational: one forward pass. A head that writes the answer directly has a large DLA; a head
that acts through later heads (a previous-token head) has a small one and a telling pattern.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from tools.ablate import Head
from tools.base import Record, ToolInput, ToolResult
from tools.cost import Meter
from tools.estimate import padded
from tools.hooks import check_head
from tools.metrics import BoundMetric, Metric
from tools.prompts import encode
from tools.spec import ToolSpec

if TYPE_CHECKING:
    from tools.prompts import Encoded
    from tools.target import Target

ROLES = ("bos", "self", "previous", "induction", "duplicate", "answer", "distractor", "other")


class HeadsInput(ToolInput):
    """Explain attention heads: direct effect on the behaviour's tokens and which token roles they attend to."""

    prompts: list[str]
    """Prompts showing the behaviour."""
    metric: Metric
    """The behaviour whose tokens the direct effect is measured on."""
    heads: list[Head] | None = None
    """Heads to explain (default: every head)."""
    top: int = Field(10, ge=1, le=500)
    """Heads reported, by |direct logit attribution|."""


class HeadExplanation(Record):
    """One head's direct effect and attention summary."""

    layer: int
    """Layer index."""
    head: int
    """Head index."""
    dla: float
    """Mean direct logit attribution onto the metric's direction at the positions it reads."""
    attention: dict[str, float]
    """Mean share of attention to each token role (they sum to 1)."""
    top_role: str
    """The role with the most attention."""


class HeadsResult(ToolResult):
    """Direct logit attribution and attention roles per head."""

    heads: list[HeadExplanation]
    """The top heads by |dla|, largest first."""
    all_dla: list[list[float]]
    """[layer][head] direct logit attribution of every head (0 where not asked)."""
    positions: int
    """Positions read (summed over prompts)."""
    effect: float
    """The largest |dla|."""
    control: float
    """Median |dla| over the heads asked."""


def _reads(metric: BoundMetric, enc: Encoded) -> list[tuple[int, int, int, int | None]]:
    """(prompt, position, token id, versus id or None) the metric reads."""
    kind = metric.metric.kind
    out: list[tuple[int, int, int, int | None]] = []
    for b, n in enumerate(enc.lengths.tolist()):
        if kind in ("copy", "copy_logprob"):
            out += [(b, i, t, None) for i, _, t in metric.copies[b]]
        elif kind == "loss":
            out += [(b, i, int(enc.tokens[b, i + 1]), None) for i in range(n - 1)]
        else:
            v = None if metric.versus is None or kind != "logit_diff" else int(metric.versus[b])
            assert metric.target is not None  # every metric but copy and loss reads a target token
            out.append((b, n - 1, int(metric.target[b]), v))
    return out


def _role(toks: list[int], i: int, j: int, answer: int, versus: int | None) -> str:
    if j == 0:
        return "bos"
    if j == i:
        return "self"
    if j == i - 1:
        return "previous"
    if toks[j - 1] == toks[i]:
        return "induction"
    if toks[j] == toks[i]:
        return "duplicate"
    if toks[j] == answer:
        return "answer"
    if versus is not None and toks[j] == versus:
        return "distractor"
    return "other"


def run(target: Target, inp: HeadsInput) -> HeadsResult:
    import torch

    with torch.no_grad():
        return _run(target, inp)


def _run(target: Target, inp: HeadsInput) -> HeadsResult:
    import torch

    model = target.model
    L, H = model.cfg.n_layers, model.cfg.n_heads
    asked = (
        [(h.layer, h.head) for h in inp.heads] if inp.heads else [(layer, h) for layer in range(L) for h in range(H)]
    )
    for layer, h in asked:
        check_head(model, layer, h)
    meter = Meter()
    enc = encode(model, inp.prompts)
    metric = BoundMetric(inp.metric, model, enc)
    names = (
        [f"blocks.{layer}.attn.hook_z" for layer in range(L)]
        + [f"blocks.{layer}.attn.hook_pattern" for layer in range(L)]
        + ["ln_final.hook_scale"]
    )
    _, cache = meter.cache(model, enc.tokens, names)
    reads = _reads(metric, enc)
    b_idx = torch.tensor([r[0] for r in reads])
    p_idx = torch.tensor([r[1] for r in reads])
    W_U = model.W_U.float()
    w = getattr(model.ln_final, "w", None)
    direction = W_U[:, [r[2] for r in reads]].T  # [reads, d_model]
    vs = [r[3] for r in reads]
    if any(v is not None for v in vs):
        direction = (
            direction
            - W_U[:, [v if v is not None else r[2] for v, r in zip(vs, reads, strict=True)]].T
            * torch.tensor([float(v is not None) for v in vs])[:, None]
        )
    if w is not None:
        direction = direction * w.float()
    center = model.cfg.normalization_type in ("LN", "LNPre")
    scale = cache["ln_final.hook_scale"][b_idx, p_idx].float()  # [reads, 1]
    dla = torch.zeros(L, H)
    explanations = []
    toks = [enc.tokens[b, :n].tolist() for b, n in enumerate(enc.lengths.tolist())]
    for layer, h in asked:
        z = cache[f"blocks.{layer}.attn.hook_z"][b_idx, p_idx, h].float()
        out = z @ model.W_O[layer, h].float()  # [reads, d_model]
        if center:
            out = out - out.mean(-1, keepdim=True)
        dla[layer, h] = float(((out / scale) * direction).sum(-1).mean())
        pat = cache[f"blocks.{layer}.attn.hook_pattern"]
        mass = dict.fromkeys(ROLES, 0.0)
        for b, i, t, v in reads:
            row = pat[b, h, i, : i + 1].float().tolist()
            for j, a in enumerate(row):
                mass[_role(toks[b], i, j, t, v)] += a
        mass = {k: round(x / len(reads), 4) for k, x in mass.items()}
        explanations.append(
            HeadExplanation(
                layer=layer,
                head=h,
                dla=round(float(dla[layer, h]), 5),
                attention=mass,
                top_role=max(mass, key=lambda role: mass[role]),
            )
        )
    explanations.sort(key=lambda e: -abs(e.dla))
    top = explanations[: inp.top]
    mags = sorted(abs(e.dla) for e in explanations)
    best = top[0]
    return HeadsResult(
        tool="heads",
        summary=(
            f"largest direct effect on {inp.metric.describe()}: "
            + ", ".join(
                f"L{e.layer}H{e.head} {e.dla:+.3g} (attends {e.top_role} {e.attention[e.top_role]:.0%})"
                for e in top[:3]
            )
            + f"; median head |dla| {mags[len(mags) // 2]:.3g} over {len(reads)} positions"
        ),
        cost=meter.cost(),
        heads=top,
        all_dla=[[round(x, 5) for x in row] for row in dla.tolist()],
        positions=len(reads),
        effect=abs(best.dla),
        control=round(mags[len(mags) // 2], 5),
    )


def estimate(t: Target, inp: HeadsInput) -> int:
    """Forward tokens a call costs (the Meter charges the same)."""
    return padded(t.model, inp.prompts)


SPEC = ToolSpec(
    name="heads", input_model=HeadsInput, result_model=HeadsResult, run=run, estimate=estimate, tier="observational"
)

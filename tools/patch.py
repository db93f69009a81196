"""Activation patching: which activations carry the difference between two runs?

Run the corrupted prompts, paste in the clean run's activation at one place
(a residual-stream layer and position, or one head's output), and see how much
of the clean behaviour comes back. Normalised effect: 0 = still corrupted,
1 = fully clean. The grid is the data for a heatmap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from tools.base import Record, ToolInput, ToolResult, measure
from tools.cost import Meter
from tools.errors import UserError
from tools.estimate import lengths, padded
from tools.metrics import BoundMetric, Metric
from tools.prompts import encode
from tools.spec import ToolSpec

if TYPE_CHECKING:
    from torch import Tensor
    from transformer_lens.hook_points import HookPoint

    from tools.hooks import HookFn
    from tools.target import Target


class PatchInput(ToolInput):
    """Patch clean activations into corrupted runs, one place at a time."""

    clean: list[str]
    """Prompts showing the behaviour."""
    corrupted: list[str]
    """Minimally different prompts, paired with `clean` and of the same token length each."""
    metric: Metric | None = None
    """Default: logit of the clean run's answer minus the corrupted run's answer, per pair."""
    over: Literal["resid", "heads"] = "resid"
    """resid: each layer's residual stream x each position; heads: each head's output at all positions."""


class Cell(Record):
    """One patched place."""

    row: str
    """Hook (resid) or layer (heads)."""
    col: str
    """Position (resid) or head (heads)."""
    effect: float
    """Normalised patching effect."""


class PatchResult(ToolResult):
    """Normalised patching effects over a grid."""

    over: str
    """resid or heads."""
    rows: list[str]
    """Row labels: hooks, or layers."""
    cols: list[str]
    """Column labels: positions (with the first clean prompt's tokens), or heads."""
    effects: list[list[float]]
    """[row][col] normalised effect."""
    clean_value: float
    """Metric on the clean run."""
    corrupted_value: float
    """Metric on the corrupted run."""
    top: list[Cell]
    """The five largest effects."""
    effect: float
    """The largest normalised effect."""
    control: float = measure(versus_control=True)
    """Median effect over the grid: what patching a typical place does."""


def run(target: Target, inp: PatchInput) -> PatchResult:
    import torch

    model = target.model
    if len(inp.clean) != len(inp.corrupted):
        raise UserError(f"clean has {len(inp.clean)} prompts and corrupted {len(inp.corrupted)}: patching needs pairs")
    meter = Meter()
    clean = encode(model, inp.clean, "clean")
    corr = encode(model, inp.corrupted, "corrupted")
    for i, (a, b) in enumerate(zip(clean.lengths.tolist(), corr.lengths.tolist(), strict=True)):
        if a != b:
            raise UserError(f"pair {i}: clean has {a} tokens and corrupted {b}; patching needs token-aligned pairs")
    lengths = sorted(set(clean.lengths.tolist()))
    if inp.over == "resid" and len(lengths) > 1:
        # A resid cell is one absolute position averaged over the pairs: with pairs of different
        # lengths it would mix different tokens' roles under one column label.
        first = {n: clean.lengths.tolist().index(n) for n in lengths}
        raise UserError(
            "over=resid compares positions across pairs, but the pairs have different token lengths ("
            + ", ".join(f"pair {i}: {n} tokens" for n, i in first.items())
            + "): give pairs of one template (same token length), or use over=heads, which patches every position"
        )
    clean_logits = meter.run(model, clean.tokens)
    corr_logits = meter.run(model, corr.tokens)
    rows = torch.arange(len(inp.clean), device=clean.tokens.device)
    if inp.metric is None:
        # Each pair's own answers, as ids read off the two runs (strings need not re-tokenize).
        ids = {
            "target_ids": clean_logits[rows, clean.last].argmax(-1),
            "versus_ids": corr_logits[rows, corr.last].argmax(-1),
        }
        metric = Metric(kind="logit_diff")
    else:
        metric, ids = inp.metric, {}
    bound = BoundMetric(metric, model, corr, **ids)
    clean_v = BoundMetric(metric, model, clean, **ids).value(clean_logits).mean
    corr_v = bound.value(corr_logits).mean
    if abs(clean_v - corr_v) < 1e-6:
        raise UserError("clean and corrupted runs give the same metric: there is nothing to patch")

    def normalised(fwd: list[tuple[str, HookFn]]) -> float:
        return round((bound.value(meter.run(model, corr.tokens, fwd)).mean - corr_v) / (clean_v - corr_v), 4)

    n_layers = model.cfg.n_layers
    if inp.over == "resid":
        hooks = [f"blocks.{layer}.hook_resid_pre" for layer in range(n_layers)] + [
            f"blocks.{n_layers - 1}.hook_resid_post"
        ]
        _, cache = meter.cache(model, clean.tokens, hooks)
        width = clean.tokens.shape[1]
        first = model.to_str_tokens(clean.tokens[0, : int(clean.lengths[0])])
        cols = [f"{p}:{first[p]}" if p < len(first) else str(p) for p in range(width)]
        grid = []
        for hook_name in hooks:
            row = []
            for p in range(width):

                def paste_cell(act: Tensor, hook: HookPoint, p: int = p, hook_name: str = hook_name) -> Tensor:
                    act[:, p] = cache[hook_name][:, p]
                    return act

                row.append(normalised([(hook_name, paste_cell)]))
            grid.append(row)
        labels = hooks
    else:
        names = [f"blocks.{layer}.attn.hook_z" for layer in range(n_layers)]
        _, cache = meter.cache(model, clean.tokens, names)
        cols = [f"H{h}" for h in range(model.cfg.n_heads)]
        grid = []
        for name in names:
            row = []
            for h in range(model.cfg.n_heads):

                def paste(act: Tensor, hook: HookPoint, h: int = h, name: str = name) -> Tensor:
                    act[:, :, h] = cache[name][:, :, h]
                    return act

                row.append(normalised([(name, paste)]))
            grid.append(row)
        labels = [f"L{layer}" for layer in range(n_layers)]
    cells = sorted(
        (
            Cell(row=r, col=c, effect=v)
            for r, vals in zip(labels, grid, strict=True)
            for c, v in zip(cols, vals, strict=True)
        ),
        key=lambda x: -x.effect,
    )
    flat = sorted(v for vals in grid for v in vals)
    best = cells[0]
    return PatchResult(
        tool="patch",
        summary=(
            f"patching {inp.over}: largest effect {best.effect:.2f} at {best.row} / {best.col} "
            f"(median place {flat[len(flat) // 2]:.2f}); clean {clean_v:.3f}, corrupted {corr_v:.3f}"
        ),
        cost=meter.cost(),
        over=inp.over,
        rows=labels,
        cols=cols,
        effects=grid,
        clean_value=round(clean_v, 4),
        corrupted_value=round(corr_v, 4),
        top=cells[:5],
        effect=best.effect,
        control=flat[len(flat) // 2],
    )


def estimate(t: Target, inp: PatchInput) -> int:
    """Forward tokens a call costs (the Meter charges the same)."""
    m = t.model
    n = padded(m, inp.clean)
    width = max(lengths(m, inp.clean), default=0)
    cells = (m.cfg.n_layers + 1) * width if inp.over == "resid" else m.cfg.n_layers * m.cfg.n_heads
    return int(3 * n + cells * n)  # clean, corrupted, the clean cache, then one pass per cell


SPEC = ToolSpec(
    name="patch", input_model=PatchInput, result_model=PatchResult, run=run, estimate=estimate, tier="causal"
)

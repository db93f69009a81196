"""Attribution patching: the estimated effect of every component on a behaviour, from one gradient.

For each component with activation `a` on the prompts and a reference value `a'` (its activation on
paired corrupted prompts, or its mean over the prompts), the effect of replacing `a` by `a'` is
estimated to first order as (a' - a) . dm/da, with dm/da the gradient of the metric (mean over
prompts) on the clean run (Nanda 2023; Syed et al. 2023). One forward and one backward pass score
every head (blocks.L.attn.hook_z), every MLP layer (blocks.L.hook_mlp_out), the residual stream by
layer x position (blocks.L.hook_resid_pre) and an SAE's features at once, where ablating each head
takes a forward pass per head.

`steps` > 1 integrates the gradient along a path from the reference to the clean activations
(right Riemann sum; the last step is the clean run) and multiplies the average by (a' - a), which
corrects the first-order estimate where the metric or an attention softmax saturates. Two paths:

    input      EAP-IG (Hanna et al. 2024): the input to block 0 is interpolated and the gradients at
               every component are read along the way; `steps` forward + backward passes in all.
    per_layer  Marks et al. 2024: each hook point (a layer's heads, its MLP, its residual stream, the
               SAE) is interpolated on its own, everything downstream recomputed; 1 + (steps - 1) x
               hook points passes. Exact for effects that pass through later attention patterns
               (a previous-token head feeding induction heads), at L times the cost.

These are estimates (observational evidence): `circuit` and `ablate` verify the top ones causally.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field

from tools.ablate import Head, SaeFeature
from tools.base import Record, ToolInput, ToolResult
from tools.cost import Meter
from tools.errors import UserError
from tools.estimate import lengths, padded
from tools.metrics import BoundMetric, Metric
from tools.prompts import Encoded, encode
from tools.spec import ToolSpec

if TYPE_CHECKING:
    from sae_lens import SAE
    from torch import Tensor
    from transformer_lens import HookedTransformer
    from transformer_lens.hook_points import HookPoint

    from tools.target import Target

Kind = Literal["heads", "mlp", "resid", "features"]


class Mlp(Record):
    """An MLP layer's whole output (blocks.L.hook_mlp_out)."""

    kind: Literal["mlp"] = "mlp"
    layer: int
    """Layer index."""

    def label(self) -> str:
        return f"MLP{self.layer}"


Ranked = Annotated[Head | Mlp | SaeFeature, Field(discriminator="kind")]


class AttributeInput(ToolInput):
    """Estimate every head's, MLP's, residual position's (and SAE feature's) effect on a behaviour at once."""

    prompts: list[str]
    """Prompts showing the behaviour."""
    metric: Metric
    """Behaviour to attribute; must be differentiable (logit_diff, prob, loss or copy_logprob)."""
    corrupted: list[str] | None = None
    """Paired prompts without the behaviour, each the same token length as its clean prompt; the
    reference activations come from them. Default: each component's mean over the prompts."""
    steps: int = Field(1, ge=1, le=64)
    """1: plain attribution patching; more: integrated gradients with this many interpolation steps."""
    path: Literal["input", "per_layer"] = "input"
    """Integration path when steps > 1: interpolate the input (cheap) or each layer on its own (L x the cost)."""
    kinds: list[Kind] | None = None
    """What to score: heads, mlp, resid, features. Default: heads, mlp (if the model has MLPs), resid
    (if all prompts have one length) and features (if `sae` is given)."""
    sae: str | None = None
    """SAE folder whose features are scored at its hook."""
    order: Literal["abs", "drop"] = "abs"
    """Ranking: by |estimated effect|, or by the largest estimated drop of the metric first."""
    top: int = Field(10, ge=1, le=200)
    """Entries reported per kind (the full head grid is always returned)."""


class Score(Record):
    """One component's estimated effect."""

    component: Ranked
    """The component (pass these to `circuit` or `ablate`)."""
    name: str
    """Readable label."""
    score: float
    """Estimated change of the metric when the component takes its reference value."""


class ResidScore(Record):
    """One residual-stream cell's estimated effect."""

    hook: str
    """blocks.L.hook_resid_pre."""
    layer: int
    """Block the residual stream enters."""
    position: int
    """Token position."""
    token: str
    """The first prompt's token there."""
    score: float
    """Estimated change of the metric when this cell takes its reference value."""


class AttributeResult(ToolResult):
    """Estimated effects of every component, ranked, with the head grid for plots."""

    reference: Literal["corrupted", "mean"]
    """Where the reference activations came from."""
    steps: int
    """Integration steps (1: plain attribution patching)."""
    clean_value: float
    """Metric on the prompts."""
    reference_value: float | None
    """Metric on the corrupted prompts (None with the mean reference)."""
    ranking: list[Score]
    """Heads, MLPs and features together, best first (by `order`), at most `top` x kinds."""
    top_heads: list[Score]
    """Best heads."""
    top_mlps: list[Score]
    """Best MLP layers."""
    top_features: list[Score]
    """Best SAE features."""
    top_resid: list[ResidScore]
    """Best residual-stream cells."""
    head_grid: list[list[float]]
    """[layer][head] estimated effect of every head."""
    mlp_scores: list[float]
    """Estimated effect of each MLP layer (empty without MLPs or when not scored)."""
    resid_grid: list[list[float]]
    """[layer][position] estimated effect of the residual stream entering each block (empty when not scored)."""
    resid_cols: list[str]
    """Column labels of resid_grid: position:token of the first prompt."""
    input_total: float | None
    """Sum of the estimates over the residual stream entering block 0, against `reference_value -
    clean_value` (integrated gradients along the input make the two agree as steps grow); None without
    corrupted prompts."""
    skipped: list[str]
    """Kinds not scored by default, and why."""
    effect: float
    """The top-ranked component's estimated effect."""
    control: float
    """Median |estimated effect| over all heads: what a typical head does."""


def _kinds(model: HookedTransformer, inp: AttributeInput, equal_lengths: bool) -> tuple[list[Kind], list[str]]:
    has_mlp = not model.cfg.attn_only and model.cfg.d_mlp is not None
    if inp.kinds is not None:
        asked: list[Kind] = list(dict.fromkeys(inp.kinds))
        if "mlp" in asked and not has_mlp:
            raise UserError("kinds: this model has no MLPs (attention-only); drop `mlp`")
        if "features" in asked and inp.sae is None:
            raise UserError("kinds: `features` needs `sae`, the SAE folder whose features to score")
        if "resid" in asked and not equal_lengths:
            raise UserError(
                "kinds: the residual grid is by position, so every prompt must have the same token "
                "length (check with `interp tool predict`), or drop `resid`"
            )
        return asked, []
    kinds: list[Kind] = ["heads"]
    skipped: list[str] = []
    if has_mlp:
        kinds.append("mlp")
    if equal_lengths:
        kinds.append("resid")
    else:
        skipped.append("resid: prompts differ in token length, and the grid is by position")
    if inp.sae is not None:
        kinds.append("features")
    return kinds, skipped


def hook_names(model: HookedTransformer, kinds: list[Kind], sae: SAE | None) -> list[str]:
    """The hook points read for `kinds` (what the estimate counts for the per-layer path)."""
    L = model.cfg.n_layers
    names: list[str] = []
    if "heads" in kinds:
        names += [f"blocks.{layer}.attn.hook_z" for layer in range(L)]
    if "mlp" in kinds:
        names += [f"blocks.{layer}.hook_mlp_out" for layer in range(L)]
    # the residual stream entering block 0 is the input IG interpolates; the others make the grid
    names += [f"blocks.{layer}.hook_resid_pre" for layer in range(L if "resid" in kinds else 1)]
    if sae is not None and "features" in kinds:
        names.append(sae.cfg.metadata.hook_name)
    return list(dict.fromkeys(names))


def path_passes(inp: AttributeInput, n_hooks: int) -> int:
    """Forward + backward passes of the gradient part (the corrupted run aside)."""
    if inp.path == "per_layer":
        return 1 + (inp.steps - 1) * n_hooks
    return inp.steps


def _reference(acts: Tensor, enc: Encoded, per_position: bool) -> Tensor:
    """The mean activation: over the prompts at each position, or over every real position."""
    if per_position:
        return acts.mean(0, keepdim=True).expand_as(acts)
    real = enc.real_mask().to(acts.device)
    return acts[real].mean(0).expand_as(acts)


def run(target: Target, inp: AttributeInput) -> AttributeResult:
    import torch

    from tools.sae import load_sae

    model = target.model
    if not inp.metric.has_gradient():
        raise UserError(
            f"metric {inp.metric.kind} has no gradient (it thresholds the argmax), so it cannot be "
            "attributed; use a smooth one: prob or logit_diff instead of rate, copy_logprob instead "
            "of copy"
        )
    enc = encode(model, inp.prompts)
    corr = None
    if inp.corrupted is not None:
        if len(inp.corrupted) != len(inp.prompts):
            raise UserError(
                f"{len(inp.prompts)} prompts and {len(inp.corrupted)} corrupted prompts: give one "
                "corrupted prompt per prompt"
            )
        corr = encode(model, inp.corrupted, "corrupted")
        for i, (a, b) in enumerate(zip(enc.lengths.tolist(), corr.lengths.tolist(), strict=True)):
            if a != b:
                raise UserError(
                    f"pair {i}: the prompt has {a} tokens and its corrupted prompt {b}; each pair must "
                    "have the same token length so positions line up"
                )
    equal = len(set(enc.lengths.tolist())) == 1
    kinds, skipped = _kinds(model, inp, equal)
    sae = load_sae(inp.sae, model) if inp.sae is not None else None
    metric = BoundMetric(inp.metric, model, enc)
    L, H = model.cfg.n_layers, model.cfg.n_heads
    names = hook_names(model, kinds, sae)

    meter = Meter()
    ref: dict[str, Tensor] = {}
    ref_value = None
    if corr is not None:
        logits, cache = meter.cache(model, corr.tokens, names)
        ref = {n: cache[n] for n in names}
        ref_value = float(metric.per_prompt(logits).mean())

    def objective(logits: Tensor) -> Tensor:
        return metric.per_prompt(logits).mean()

    # alpha = 1 (the clean run) first: its activations give the mean reference for the other steps.
    value, clean, grads = meter.gradients(model, enc.tokens, names, objective)
    if corr is None:
        ref = {n: _reference(clean[n], enc, per_position=n.endswith("hook_resid_pre") and equal) for n in names}
    first = "blocks.0.hook_resid_pre"
    ref_input = ref[first] if corr is not None else _reference(clean[first], enc, per_position=False)
    total = {n: g.clone() for n, g in grads.items()}
    for k in range(1, inp.steps):
        alpha = k / inp.steps
        if inp.path == "input":

            def interpolate(act: Tensor, hook: HookPoint, alpha: float = alpha) -> Tensor:
                return ref_input + alpha * (act - ref_input)

            _, _, g = meter.gradients(model, enc.tokens, names, objective, fwd_hooks=[(first, interpolate)])
            for n in names:
                total[n] += g[n]
            continue
        for n in names:

            def interpolate_one(act: Tensor, hook: HookPoint, alpha: float = alpha, r: Tensor = ref[n]) -> Tensor:
                return r + alpha * (act - r)

            _, _, g = meter.gradients(model, enc.tokens, [n], objective, fwd_hooks=[(n, interpolate_one)])
            total[n] += g[n]
    real = enc.real_mask().to(enc.tokens.device).float()
    contrib = {
        n: (ref[n] - clean[n]) * (total[n] / inp.steps) * real.view(*real.shape, *[1] * (clean[n].dim() - 2))
        for n in names
    }

    head_grid = torch.zeros(L, H)
    scores: list[Score] = []
    heads, mlps, feats = [], [], []
    if "heads" in kinds:
        for layer in range(L):
            head_grid[layer] = contrib[f"blocks.{layer}.attn.hook_z"].sum((0, 1, 3)).float().cpu()
        heads = [
            Score(component=Head(layer=layer, head=h), name=f"L{layer}H{h}", score=round(float(head_grid[layer, h]), 6))
            for layer in range(L)
            for h in range(H)
        ]
    mlp_scores = []
    if "mlp" in kinds:
        mlp_scores = [round(float(contrib[f"blocks.{layer}.hook_mlp_out"].sum()), 6) for layer in range(L)]
        mlps = [Score(component=Mlp(layer=layer), name=f"MLP{layer}", score=s) for layer, s in enumerate(mlp_scores)]
    if sae is not None and "features" in kinds:
        hook = sae.cfg.metadata.hook_name
        with torch.no_grad():
            f_clean = sae.encode(clean[hook].float())
            f_ref = sae.encode(ref[hook].float()) if corr is not None else _reference(f_clean, enc, False)
            g_f = (total[hook].float() / inp.steps) @ sae.W_dec.T.float()
            per = ((f_ref - f_clean) * g_f * real[..., None]).sum((0, 1)).cpu()
        feats = [
            Score(component=SaeFeature(sae=inp.sae, feature=j), name=f"feature {j}", score=round(float(v), 6))
            for j, v in enumerate(per.tolist())
        ]
    resid_grid, resid_cols, top_resid, input_total = [], [], [], None
    if "resid" in kinds:
        grid = torch.stack([contrib[f"blocks.{layer}.hook_resid_pre"].sum((0, 2)).float().cpu() for layer in range(L)])
        resid_grid = [[round(v, 6) for v in row] for row in grid.tolist()]
        toks = model.to_str_tokens(enc.tokens[0, : int(enc.lengths[0])])
        resid_cols = [f"{p}:{t}" for p, t in enumerate(toks)]
        cells = [
            ResidScore(
                hook=f"blocks.{layer}.hook_resid_pre",
                layer=layer,
                position=p,
                token=toks[p],
                score=resid_grid[layer][p],
            )
            for layer in range(L)
            for p in range(len(toks))
        ]
        top_resid = sorted(cells, key=lambda c: _key(c.score, inp.order))[: inp.top]
    if corr is not None:
        input_total = round(float(contrib[first].sum()), 6)

    def best(xs: list[Score]) -> list[Score]:
        return sorted(xs, key=lambda s: _key(s.score, inp.order))[: inp.top]

    scores = best(heads + mlps + feats)
    clean_v = float(value)
    control = float(head_grid.abs().flatten().median()) if heads else 0.0
    top = scores[0] if scores else None
    where = ", ".join(f"{s.name} {s.score:+.3g}" for s in scores[:5])
    method = f"integrated gradients, {inp.steps} steps, {inp.path} path" if inp.steps > 1 else "gradient"
    return AttributeResult(
        tool="attribute",
        summary=(
            f"attribution ({method}"
            f" x (reference - clean), reference = {'corrupted prompts' if corr is not None else 'mean'}) of "
            f"{inp.metric.describe()} = {clean_v:.3f}: top {where or 'nothing scored'}"
            f"; median head |effect| {control:.3g}"
        ),
        cost=meter.cost(),
        reference="corrupted" if corr is not None else "mean",
        steps=inp.steps,
        clean_value=round(clean_v, 6),
        reference_value=None if ref_value is None else round(ref_value, 6),
        ranking=scores,
        top_heads=best(heads),
        top_mlps=best(mlps),
        top_features=best(feats),
        top_resid=top_resid,
        head_grid=[[round(v, 6) for v in row] for row in head_grid.tolist()] if heads else [],
        mlp_scores=mlp_scores,
        resid_grid=resid_grid,
        resid_cols=resid_cols,
        input_total=input_total,
        skipped=skipped,
        effect=top.score if top else 0.0,
        control=round(control, 6),
    )


def _key(score: float, order: str) -> float:
    return -abs(score) if order == "abs" else score


def estimate(t: Target, inp: AttributeInput) -> int:
    """Forward tokens a call costs (the Meter charges the same)."""
    from tools.cost import BACKWARD_FACTOR
    from tools.sae import load_sae

    m = t.model
    n = padded(m, inp.prompts)
    kinds, _ = _kinds(m, inp, len(set(lengths(m, inp.prompts))) == 1)
    sae = load_sae(inp.sae, m) if inp.sae is not None else None
    passes = path_passes(inp, len(hook_names(m, kinds, sae)))
    # the corrupted run once (its activations are the reference), then the forward + backward passes
    corrupted = padded(m, inp.corrupted) if inp.corrupted is not None else 0
    return corrupted + passes * (1 + BACKWARD_FACTOR) * n


SPEC = ToolSpec(
    name="attribute",
    input_model=AttributeInput,
    result_model=AttributeResult,
    run=run,
    estimate=estimate,
    tier="observational",
)

"""Steering: add a direction at a hook and measure the behaviour as a dose-response curve.

The direction is a difference of means between two contrastive prompt sets
(the simple method that worked on evaluation awareness in the pragmatic-interpretability talk), a saved
direction, or an SAE feature's decoder row. The control is random directions
of the same norm at the same coefficients: a steering effect counts only when
it beats them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from tools.activations import harvest
from tools.base import Record, Seed, ToolInput, ToolResult, measure
from tools.cost import Meter
from tools.directions import load_direction, save_direction
from tools.errors import UserError
from tools.estimate import padded
from tools.hooks import check_hook
from tools.metrics import BoundMetric, Metric
from tools.prompts import Encoded, check_prompts, encode
from tools.spec import ToolSpec

if TYPE_CHECKING:
    from torch import Tensor
    from transformer_lens import HookedTransformer
    from transformer_lens.hook_points import HookPoint

    from tools.target import Target


class SteerInput(ToolInput):
    """Steer along a direction at one hook and measure a metric at each coefficient."""

    hook: str
    """Where to add the direction, e.g. blocks.0.hook_resid_mid."""
    prompts: list[str]
    """Prompts to steer and measure."""
    metric: Metric
    """Behaviour to measure at each prompt's last position."""
    positive: list[str] | None = None
    """With `negative`: direction = mean(positive) - mean(negative) activations."""
    negative: list[str] | None = None
    """See `positive`."""
    direction_id: str | None = None
    """Or a saved direction (from an earlier steer call)."""
    sae: str | None = None
    """Or an SAE folder, with `feature`: steer along that feature's decoder direction."""
    feature: int | None = None
    """SAE feature index (with `sae`)."""
    coefficients: list[float] = Field(default=[-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0], min_length=2)
    """Multiples of the direction to add (0 is added when missing: the baseline)."""
    apply_at: Literal["last", "all"] = "last"
    """Add at each prompt's last position, or at every position."""
    n_random: int = Field(3, ge=1, le=20)
    """Random directions of equal norm averaged as the control."""
    seed: Seed = 0
    """Seeds the random control directions."""


class DosePoint(Record):
    """The metric at one steering coefficient."""

    coefficient: float
    """Multiple of the direction added."""
    value: float
    """Metric mean over prompts."""
    sem: float
    """Its standard error."""
    control_value: float
    """Metric with random directions of the same norm (mean over them)."""


class SteerResult(ToolResult):
    """Dose-response of the metric along the direction, against random directions."""

    direction_id: str
    """The direction used (saved; cite it in claims)."""
    direction_norm: float = measure(0)
    """L2 norm of the direction at coefficient 1."""
    baseline: float
    """Metric without steering."""
    curve: list[DosePoint]
    """One point per coefficient, ascending."""
    best_coefficient: float
    """Coefficient with the largest change from baseline (smallest such on ties)."""
    effect: float
    """Metric change at the best coefficient."""
    control: float = measure(versus_control=True)
    """Change with random directions at that coefficient."""
    relative_effect: float
    """effect / |baseline| (0 when the baseline is 0)."""
    monotonic: float = measure(-1, 1)
    """Spearman correlation of metric with coefficient (dose-response shape)."""


def difference_of_means(
    model: HookedTransformer, hook: str, positive: Encoded, negative: Encoded, meter: Meter
) -> Tensor:
    """mean activation on `positive` minus mean on `negative`, at the last position."""
    pos = harvest(model, positive, [hook], "last", meter=meter).acts[hook].mean(0)
    neg = harvest(model, negative, [hook], "last", meter=meter).acts[hook].mean(0)
    return pos - neg


def _direction(target: Target, inp: SteerInput, enc: Encoded, meter: Meter) -> tuple[Tensor, str]:
    model = target.model
    given = [
        inp.positive is not None or inp.negative is not None,
        inp.direction_id is not None,
        inp.sae is not None or inp.feature is not None,
    ]
    if sum(given) != 1:
        raise UserError("give exactly one direction: positive+negative prompt sets, direction_id, or sae+feature")
    if given[0]:
        if not inp.positive or not inp.negative:
            raise UserError("a difference-of-means direction needs non-empty `positive` and `negative` prompt sets")
        check_prompts(inp.positive, "positive")
        check_prompts(inp.negative, "negative")
        v = difference_of_means(
            model, inp.hook, encode(model, inp.positive, "positive"), encode(model, inp.negative, "negative"), meter
        )
        return v, "difference of means"
    if inp.direction_id is not None:
        v, meta = load_direction(inp.direction_id)
        if meta["hook"] != inp.hook:
            raise UserError(f"direction {inp.direction_id} was made at {meta['hook']}, not {inp.hook}")
        return v, f"saved direction {inp.direction_id}"
    from tools.sae import decoder_direction, load_sae

    if inp.sae is None or inp.feature is None:
        raise UserError("steering along an SAE feature needs both `sae` and `feature`")
    sae = load_sae(inp.sae, model)
    if sae.cfg.metadata.hook_name != inp.hook:
        raise UserError(f"SAE {inp.sae} reads {sae.cfg.metadata.hook_name}, not {inp.hook}")
    unit = decoder_direction(sae, inp.feature)
    scale = harvest(model, enc, [inp.hook], "last", meter=meter).acts[inp.hook].norm(dim=-1).mean()
    # Coefficient 1 pushes as far as a typical activation's norm at this hook.
    return unit * scale, f"SAE {inp.sae} feature {inp.feature}"


def _spearman(xs: list[float], ys: list[float]) -> float:
    import numpy as np

    def rank(a: np.ndarray) -> np.ndarray:
        return np.argsort(np.argsort(a, kind="stable"), kind="stable").astype(float)

    rx, ry = rank(np.array(xs)), rank(np.array(ys))
    if rx.std() == 0 or ry.std() == 0:
        return 0.0
    return float(np.corrcoef(rx, ry)[0, 1])


def run(target: Target, inp: SteerInput) -> SteerResult:
    import torch

    model = target.model
    check_hook(model, inp.hook)
    meter = Meter()
    enc = encode(model, inp.prompts)
    metric = BoundMetric(inp.metric, model, enc)
    vector, source = _direction(target, inp, enc, meter)
    act_shape = harvest(model, encode(model, inp.prompts[:1]), [inp.hook], "last", meter=meter).acts[inp.hook].shape[1:]
    if tuple(vector.shape) != tuple(act_shape):
        raise UserError(f"direction has shape {tuple(vector.shape)} but {inp.hook} has {tuple(act_shape)} per position")
    if not torch.isfinite(vector).all() or float(vector.norm()) == 0:
        raise UserError("the steering direction is zero or not finite (are the two prompt sets identical?)")
    vector = vector.to(model.cfg.device)
    did = save_direction(vector, inp.hook, target.model_id, source)
    gen = torch.Generator().manual_seed(inp.seed)
    randoms = []
    for _ in range(inp.n_random):
        r = torch.randn(vector.shape, generator=gen).to(vector.device)
        randoms.append(r / r.norm() * vector.norm())
    rows = torch.arange(len(enc.prompts), device=enc.tokens.device)

    def measure(v: Tensor, coef: float) -> tuple[float, float]:
        def add(act: Tensor, hook: HookPoint) -> Tensor:
            if inp.apply_at == "last":
                act[rows, enc.last] += coef * v
            else:
                act += coef * v
            return act

        out = metric.value(meter.run(model, enc.tokens, [(inp.hook, add)] if coef else []))
        return out.mean, out.sem

    coefs = sorted(set(inp.coefficients) | {0.0})
    baseline, _ = measure(vector, 0.0)
    curve = []
    for c in coefs:
        value, sem = measure(vector, c) if c else (baseline, 0.0)
        ctrl = sum(measure(r, c)[0] for r in randoms) / len(randoms) if c else baseline
        curve.append(DosePoint(coefficient=c, value=round(value, 4), sem=round(sem, 4), control_value=round(ctrl, 4)))
    best = max(curve, key=lambda p: (abs(p.value - baseline), -abs(p.coefficient)))
    effect = best.value - baseline
    return SteerResult(
        tool="steer",
        summary=(
            f"steering along {source} at {inp.hook}: {inp.metric.describe()} {baseline:.3f} -> "
            f"{best.value:.3f} at coefficient {best.coefficient:g} (random directions: "
            f"{best.control_value:.3f})"
        ),
        cost=meter.cost(),
        direction_id=did,
        direction_norm=round(float(vector.norm()), 4),
        baseline=round(baseline, 4),
        curve=curve,
        best_coefficient=best.coefficient,
        effect=round(effect, 4),
        control=round(best.control_value - baseline, 4),
        relative_effect=round(effect / abs(baseline), 4) if baseline else 0.0,
        monotonic=round(_spearman([p.coefficient for p in curve], [p.value for p in curve]), 4),
    )


def estimate(t: Target, inp: SteerInput) -> int:
    """Forward tokens a call costs (the Meter charges the same)."""
    m = t.model
    n = padded(m, inp.prompts)
    direction = padded(m, inp.positive) + padded(m, inp.negative) if inp.positive else 0
    if inp.sae is not None:
        direction = n
    coefs = len(set(inp.coefficients) | {0.0})
    shape_check = padded(m, inp.prompts[:1])
    # baseline + each non-zero coefficient with the direction and each random control
    return direction + shape_check + n + (coefs - 1) * (1 + inp.n_random) * n


SPEC = ToolSpec(
    name="steer", input_model=SteerInput, result_model=SteerResult, run=run, estimate=estimate, tier="causal"
)

"""Ablation: knock out components and measure what the behaviour loses.

Components are attention heads, MLP neurons, SAE features or saved directions.
The value put in their place is zero, their mean over the prompt set, or their
value on another prompt (resample). The control ablates random components of
the same kind and count, several times: an effect matters only against it.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import EllipsisType
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import Field

from tools.base import Record, Seed, ToolInput, ToolResult, measure
from tools.cost import Meter
from tools.errors import UserError
from tools.estimate import padded
from tools.hooks import check_head, check_neuron
from tools.metrics import BoundMetric, Metric
from tools.prompts import Encoded, encode
from tools.spec import ToolSpec

if TYPE_CHECKING:
    import numpy as np
    from sae_lens import SAE
    from torch import Tensor
    from transformer_lens import ActivationCache, HookedTransformer
    from transformer_lens.hook_points import HookPoint

    from tools.hooks import HookFn
    from tools.target import Target


class Head(Record):
    """An attention head's output (its slice of blocks.L.attn.hook_z)."""

    kind: Literal["head"] = "head"
    layer: int
    """Layer index."""
    head: int
    """Head index."""

    def label(self) -> str:
        return f"L{self.layer}H{self.head}"


class Neuron(Record):
    """An MLP neuron (its slice of blocks.L.mlp.hook_post)."""

    kind: Literal["neuron"] = "neuron"
    layer: int
    """Layer index."""
    neuron: int
    """Neuron index."""

    def label(self) -> str:
        return f"L{self.layer}N{self.neuron}"


class SaeFeature(Record):
    """An SAE feature: its contribution (activation x decoder row) at the SAE's hook."""

    kind: Literal["sae_feature"] = "sae_feature"
    sae: str
    """SAE folder."""
    feature: int
    """Feature index."""

    def label(self) -> str:
        return f"feature {self.feature}"


class Direction(Record):
    """A saved direction: the activation's component along it."""

    kind: Literal["direction"] = "direction"
    direction_id: str
    """Id from a steer call."""

    def label(self) -> str:
        return self.direction_id


Ablatable = Annotated[Head | Neuron | SaeFeature | Direction, Field(discriminator="kind")]
"""What `ablate` can knock out (not memory.records.Component, which names what a claim is about)."""


@dataclass(frozen=True)
class AtIndex:
    """A head or neuron: a slice of its hook's activation."""

    index: tuple[EllipsisType | int | slice, ...]
    """Index into the activation, e.g. (..., head, :) of blocks.L.attn.hook_z."""


@dataclass(frozen=True)
class AlongFeature:
    """An SAE feature: its activation (the SAE's encoder), changed along its decoder row."""

    sae: SAE
    """The loaded SAE, at the hook the feature is read from."""
    feature: int
    """Feature index."""


@dataclass(frozen=True)
class AlongDirection:
    """A saved direction: the activation's projection on it, changed along it."""

    unit: Tensor
    """The direction scaled to norm 1, on the model's device."""


How = AtIndex | AlongFeature | AlongDirection
"""How to address one component in its hook's activation."""


class AblateInput(ToolInput):
    """Ablate components together and compare with ablating random ones."""

    prompts: list[str]
    """Prompts to measure on."""
    metric: Metric
    """Behaviour to measure."""
    components: list[Ablatable] = Field(min_length=1)
    """What to ablate (all at once); all of one kind."""
    method: Literal["zero", "mean", "resample"] = "mean"
    """Replacement: zero, mean over the prompts' positions, or the value on another prompt."""
    positions: Literal["all", "last"] = "all"
    """Ablate at every position or only each prompt's last."""
    background: list[Ablatable] = Field(default_factory=list)
    """Ablated in every run (baseline, treatment and controls): e.g. the redundant copies of
    the component under test, so that its own effect shows."""
    control_exclude: list[Ablatable] = Field(default_factory=list)
    """Never drawn for the random control: e.g. the rest of a hypothesised circuit."""
    n_random: int = Field(5, ge=1, le=50)
    """Random same-kind, same-count ablations averaged as the control."""
    seed: Seed = 0
    """Seeds the control draws and resampling."""


class AblateResult(ToolResult):
    """The metric with the components ablated, against random ablations."""

    components: list[str]
    """What was ablated."""
    background: list[str]
    """Ablated in every run, the baseline included."""
    baseline: float
    """Metric without the components (with the background ablated, if any)."""
    ablated: float
    """Metric with the components ablated."""
    effect: float
    """ablated - baseline."""
    relative_effect: float
    """effect / |baseline| (0 when the baseline is 0): the share of the behaviour removed."""
    control: float = measure(versus_control=True)
    """Mean change when ablating random components of the same kind and count."""
    control_std: float = measure(0)
    """Spread of that control over draws."""
    z_score: float | None = measure(versus_control=True)
    """(effect - control) / control_std, when the spread is non-zero."""
    control_components: list[list[str]]
    """The random components of each control draw."""


def _slices(model: HookedTransformer, comps: list[Ablatable]) -> list[tuple[str, How]]:
    """(hook, how to address the component in that hook's activation) per component."""
    from tools.directions import load_direction
    from tools.sae import load_sae

    out: list[tuple[str, How]] = []
    for c in comps:
        if c.kind == "head":
            check_head(model, c.layer, c.head)
            out.append((f"blocks.{c.layer}.attn.hook_z", AtIndex((..., c.head, slice(None)))))
        elif c.kind == "neuron":
            check_neuron(model, c.layer, c.neuron)
            out.append((f"blocks.{c.layer}.mlp.hook_post", AtIndex((..., c.neuron))))
        elif c.kind == "sae_feature":
            sae = load_sae(c.sae, model)
            if not 0 <= c.feature < sae.cfg.d_sae:
                raise UserError(f"feature {c.feature} is out of range: the SAE has features 0..{sae.cfg.d_sae - 1}")
            out.append((sae.cfg.metadata.hook_name, AlongFeature(sae, c.feature)))
        else:
            v, meta = load_direction(c.direction_id)
            out.append((meta["hook"], AlongDirection(v.to(model.cfg.device) / v.norm())))
    return out


def _read(act: Tensor, how: How) -> Tensor:
    """The component's value in an activation tensor: [batch, pos, ...]."""
    if isinstance(how, AtIndex):
        return act[how.index]
    if isinstance(how, AlongDirection):
        return act @ how.unit
    return how.sae.encode(act)[..., how.feature]


def _write(act: Tensor, how: How, new: Tensor, where: Tensor) -> Tensor:
    """Replace the component's value by `new` at positions `where` ([batch, pos] bool)."""
    if isinstance(how, AtIndex):
        sl = act[how.index]
        act[how.index] = sl.where(~where.view(*where.shape, *([1] * (sl.dim() - 2))), new)
        return act
    current = _read(act, how)
    delta = (current - new) * where
    if isinstance(how, AlongDirection):
        return act - delta[..., None] * how.unit
    return act - delta[..., None] * how.sae.W_dec[how.feature]


def _hooks(
    enc: Encoded, slices: list[tuple[str, How]], method: str, positions: str, clean: ActivationCache | None, seed: int
) -> list[tuple[str, HookFn]]:
    """Forward hooks replacing each slice with zero, its mean or another prompt's value;
    `clean` holds the un-ablated activations those values come from (None for zero)."""
    import torch

    where = enc.real_mask()
    if positions == "last":
        where = torch.zeros_like(where)
        where[torch.arange(len(enc.prompts), device=where.device), enc.last] = True
    replacement: dict[int, Tensor] = {}
    if method != "zero":
        if clean is None:  # a caller's bug, not the user's: run() caches them for every method but zero
            raise ValueError(f"{method} ablation takes its values from the clean activations; none were given")
        perm = torch.roll(torch.arange(len(enc.prompts)), shifts=1 + seed % max(1, len(enc.prompts) - 1))
        for i, (h, how) in enumerate(slices):
            values = _read(clean[h], how)
            if method == "mean":
                real = enc.real_mask().to(values.device)
                mean = values[real].mean(0)
                replacement[i] = mean.expand_as(values)
            else:
                replacement[i] = values[perm]
    fwd: list[tuple[str, HookFn]] = []
    for i, (h, how) in enumerate(slices):

        def hook(act: Tensor, hook: HookPoint, i: int = i, how: How = how) -> Tensor:
            cur = _read(act, how)
            new = replacement.get(i, torch.zeros_like(cur))
            return _write(act, how, new, where)

        fwd.append((h, hook))
    return fwd


def _random_like(
    model: HookedTransformer, comps: list[Ablatable], rng: np.random.Generator, exclude: set[str]
) -> list[Ablatable]:
    """Same kind and count as `comps`, drawn at random, avoiding the originals."""
    import numpy as np
    import torch

    first, n = comps[0], len(comps)
    pool: list[Head] | list[Neuron] | list[SaeFeature]
    if isinstance(first, Head):
        pool = [Head(layer=layer, head=h) for layer in range(model.cfg.n_layers) for h in range(model.cfg.n_heads)]
    elif isinstance(first, Neuron):
        layers = sorted({c.layer for c in comps if isinstance(c, Neuron)})
        pool = [Neuron(layer=layer, neuron=j) for layer in layers for j in range(model.cfg.d_mlp)]
    elif isinstance(first, SaeFeature):
        from tools.sae import load_sae

        d_sae = load_sae(first.sae, model).cfg.d_sae
        pool = [SaeFeature(sae=first.sae, feature=j) for j in range(d_sae)]
    else:
        from tools.directions import load_direction, save_direction

        v, meta = load_direction(first.direction_id)
        out: list[Ablatable] = []
        for _ in range(n):
            r = torch.from_numpy(rng.standard_normal(v.shape).astype("float32"))
            out.append(Direction(direction_id=save_direction(r, meta["hook"], meta["model_id"], "random control")))
        return out
    allowed: list[Ablatable] = [c for c in pool if c.label() not in exclude]
    if len(allowed) < n:
        raise UserError(f"not enough other {first.kind}s to draw a random control of {n}")
    return [allowed[i] for i in np.random.default_rng(rng.integers(1 << 31)).choice(len(allowed), n, replace=False)]


def run(target: Target, inp: AblateInput) -> AblateResult:
    import numpy as np

    model = target.model
    kinds = {c.kind for c in inp.components}
    if len(kinds) != 1:
        raise UserError(f"ablate components of one kind per call (got {sorted(kinds)}); the control draws that kind")
    meter = Meter()
    enc = encode(model, inp.prompts)
    metric = BoundMetric(inp.metric, model, enc)

    rng = np.random.default_rng(inp.seed)
    avoid = {c.label() for c in [*inp.components, *inp.background, *inp.control_exclude]}
    controls = [_random_like(model, inp.components, rng, avoid) for _ in range(inp.n_random)]
    clean, base = None, None
    if inp.method != "zero":
        # One clean pass gives every replacement value (treatment, background and all controls),
        # and the baseline too when nothing is ablated throughout.
        sets = [list(inp.background) + list(c) for c in [inp.components, *controls]]
        names = sorted({h for comps in sets for h, _ in _slices(model, comps)})
        logits, clean = meter.cache(model, enc.tokens, names)
        if not inp.background:
            base = metric.value(logits).mean

    def ablated_value(comps: list[Ablatable]) -> float:
        comps = list(inp.background) + list(comps)
        if not comps:
            return metric.value(meter.run(model, enc.tokens)).mean
        fwd = _hooks(enc, _slices(model, comps), inp.method, inp.positions, clean, inp.seed)
        return metric.value(meter.run(model, enc.tokens, fwd)).mean

    if base is None:
        base = ablated_value([])
    value = ablated_value(inp.components)
    draws = [[c.label() for c in comps] for comps in controls]
    effects = [ablated_value(comps) - base for comps in controls]
    ctrl, spread = float(np.mean(effects)), float(np.std(effects))
    effect = value - base
    names = [c.label() for c in inp.components]
    return AblateResult(
        tool="ablate",
        summary=(
            f"{inp.method}-ablating {', '.join(names)}"
            + (f" (with {', '.join(c.label() for c in inp.background)} ablated throughout)" if inp.background else "")
            + f": {inp.metric.describe()} {base:.3f} -> {value:.3f} "
            f"(change {effect:+.3f}; random {inp.components[0].kind}s: {ctrl:+.3f} +/- {spread:.3f})"
        ),
        cost=meter.cost(),
        components=names,
        background=[c.label() for c in inp.background],
        baseline=round(base, 4),
        ablated=round(value, 4),
        effect=round(effect, 4),
        relative_effect=round(effect / abs(base), 4) if base else 0.0,
        control=round(ctrl, 4),
        control_std=round(spread, 4),
        z_score=round((effect - ctrl) / spread, 3) if spread > 1e-9 else None,
        control_components=draws,
    )


def estimate(t: Target, inp: AblateInput) -> int:
    """Forward tokens a call costs (the Meter charges the same)."""
    n = padded(t.model, inp.prompts)
    # zero: the baseline (with the background ablated), the treatment, each control.
    # mean / resample: one clean pass for every replacement value (and the baseline, unless a
    # background must be ablated for it), then the treatment and each control.
    baseline = 1 if inp.method == "zero" or inp.background else 0
    clean = 0 if inp.method == "zero" else 1
    return n * (clean + baseline + 1 + inp.n_random)


SPEC = ToolSpec(
    name="ablate", input_model=AblateInput, result_model=AblateResult, run=run, estimate=estimate, tier="causal"
)

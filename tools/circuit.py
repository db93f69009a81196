"""Minimal circuits: verify a ranking causally and keep the smallest set that carries the behaviour.

Given components in ranked order (an `attribute` ranking, or any list), every measurement is one
forward pass with components mean-ablated (their mean over the prompts' real positions, as
`ablate` does):

    faithfulness(S)  metric with only S kept, every other component of S's kinds ablated
    completeness(S)  metric with S ablated, everything else kept
    both normalised: 1 = the full model, 0 = every component of those kinds ablated.

Stopping rule. Growth: the curve over every prefix of the ranking (faithfulness and completeness of
the top 1, 2, ..., N); the candidate is the smallest prefix whose faithfulness reaches `target`
(all N when none does). Pruning: members whose addition raised the faithfulness curve by less than
`prune_below` are dropped, and the pruned set is measured; it replaces the prefix only if it still
reaches the target. The pass count is fixed by the input (2 + 2N + 2 + 2 x n_random), so the
budget's estimate is exact. Control: `n_random` random sets of the same size and kinds, measured
the same two ways.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from tools.ablate import Head, SaeFeature
from tools.attribute import Mlp, Ranked
from tools.base import Record, Seed, ToolInput, ToolResult, measure
from tools.cost import Meter
from tools.deadline import check
from tools.errors import UserError
from tools.estimate import padded
from tools.hooks import check_head, check_layer
from tools.metrics import BoundMetric, Metric
from tools.prompts import Encoded, encode
from tools.spec import ToolSpec

if TYPE_CHECKING:
    from sae_lens import SAE
    from torch import Tensor
    from transformer_lens import HookedTransformer
    from transformer_lens.hook_points import HookPoint

    from tools.hooks import HookFn
    from tools.target import Target


class CircuitInput(ToolInput):
    """Verify ranked components causally and find the smallest set that keeps the behaviour."""

    prompts: list[str]
    """Prompts showing the behaviour."""
    metric: Metric
    """Behaviour to keep."""
    components: list[Ranked] = Field(min_length=1, max_length=200)
    """Candidates in ranked order, best first (e.g. an `attribute` ranking): heads, MLP layers, SAE features."""
    target: float = Field(0.8, gt=0, le=1.5)
    """Faithfulness the circuit must reach (1 = the full model's behaviour)."""
    prune_below: float = Field(0.02, ge=0)
    """Pruning drops members whose addition raised faithfulness by less than this."""
    n_random: int = Field(5, ge=1, le=50)
    """Random sets of the same size and kinds measured as the control."""
    seed: Seed = 0
    """Seeds the random sets."""


class CurvePoint(Record):
    """The top-k prefix of the ranking."""

    size: int
    """k: components in the prefix."""
    added: str
    """The component added at this step."""
    faithfulness: float
    """Behaviour kept with only the prefix (1 = full model, 0 = all ablated)."""
    completeness: float
    """Behaviour left with the prefix ablated (same scale)."""


class CircuitResult(ToolResult):
    """A minimal circuit with its curve, faithfulness, completeness and random controls."""

    circuit: list[Ranked]
    """The circuit's components."""
    names: list[str]
    """Their labels."""
    curve: list[CurvePoint]
    """Faithfulness and completeness of every prefix of the ranking."""
    reached_target: bool
    """Whether a prefix reached the faithfulness target."""
    pruned: list[str]
    """Members of the chosen prefix dropped by pruning."""
    rule: str
    """The stopping rule, stated."""
    full_value: float
    """Metric of the full model."""
    empty_value: float
    """Metric with every component of the circuit's kinds ablated."""
    circuit_value: float
    """Metric with only the circuit kept."""
    ablated_value: float
    """Metric with the circuit ablated."""
    faithfulness: float
    """Normalised behaviour with only the circuit (1 = full model)."""
    completeness: float
    """Normalised behaviour left with the circuit ablated (0 = as if every component were ablated)."""
    random_faithfulness: float
    """Mean faithfulness of the random sets."""
    random_faithfulness_std: float
    """Spread of that over draws."""
    random_completeness: float
    """Mean completeness of the random sets."""
    random_completeness_std: float
    """Spread of that over draws."""
    completeness_margin: float = measure(versus_control=True)
    """random_completeness - completeness: how much more of the behaviour ablating the circuit removes than
    ablating random sets of the same size and kinds (necessity against the control, where `margin` is
    sufficiency)."""
    random_sets: list[list[str]]
    """The random sets drawn."""
    effect: float
    """The circuit's faithfulness."""
    control: float
    """The random sets' mean faithfulness."""


Part = Head | Mlp | SaeFeature
"""A component a circuit is built from."""


def _hook(c: Part) -> str:
    if c.kind == "head":
        return f"blocks.{c.layer}.attn.hook_z"
    if c.kind == "mlp":
        return f"blocks.{c.layer}.hook_mlp_out"
    return c.sae


class MeanAblator:
    """Mean-ablates any set of heads, MLP layers and SAE features in one forward pass, one hook per
    hook point (ablating 270 heads costs 30 hooks, not 270)."""

    def __init__(self, model: HookedTransformer, comps: list[Part], meter: Meter, enc: Encoded) -> None:
        """Validates `comps` and runs the clean pass that gives every mean (and the full model's logits)."""
        from tools.sae import load_sae

        self.model, self.enc = model, enc
        self.saes: dict[str, SAE] = {}  # SAE folder -> the loaded SAE
        for c in comps:
            if c.kind == "head":
                check_head(model, c.layer, c.head)
            elif c.kind == "mlp":
                check_layer(model, c.layer)
                if model.cfg.attn_only or model.cfg.d_mlp is None:
                    raise UserError(f"{c.label()}: this model has no MLPs (attention-only)")
            elif c.kind == "sae_feature":
                sae = self.saes.setdefault(c.sae, load_sae(c.sae, model))
                if not 0 <= c.feature < sae.cfg.d_sae:
                    raise UserError(f"feature {c.feature} is out of range: the SAE has features 0..{sae.cfg.d_sae - 1}")
            else:
                raise UserError(f"circuit takes heads, MLP layers and SAE features, not {c.kind}s")
        self.kinds = sorted({(c.kind, getattr(c, "sae", None) or "") for c in comps})
        names = set()
        for kind, sae in self.kinds:
            if kind == "head":
                names |= {f"blocks.{layer}.attn.hook_z" for layer in range(model.cfg.n_layers)}
            elif kind == "mlp":
                names |= {f"blocks.{layer}.hook_mlp_out" for layer in range(model.cfg.n_layers)}
            else:
                names.add(self.saes[sae].cfg.metadata.hook_name)
        self.logits, cache = meter.cache(model, enc.tokens, sorted(names))
        real = enc.real_mask().to(enc.tokens.device)
        self.means: dict[str, Tensor] = {}
        for n in names:
            self.means[n] = cache[n][real].mean(0)
        for ref, sae in self.saes.items():
            acts = cache[sae.cfg.metadata.hook_name][real]
            self.means[ref] = sae.encode(acts.float()).mean(0)

    def pool(self) -> list[Part]:
        """Every component of the kinds in play."""
        out: list[Part] = []
        cfg = self.model.cfg
        for kind, sae in self.kinds:
            if kind == "head":
                out += [Head(layer=layer, head=h) for layer in range(cfg.n_layers) for h in range(cfg.n_heads)]
            elif kind == "mlp":
                out += [Mlp(layer=layer) for layer in range(cfg.n_layers)]
            else:
                out += [SaeFeature(sae=sae, feature=j) for j in range(self.saes[sae].cfg.d_sae)]
        return out

    def hooks(self, ablated: list[Part]) -> list[tuple[str, HookFn]]:
        """Forward hooks that replace every component in `ablated` by its mean."""
        import torch

        groups: dict[str, list[Part]] = {}
        for c in ablated:
            groups.setdefault(_hook(c), []).append(c)
        fwd: list[tuple[str, HookFn]] = []
        for key, cs in groups.items():
            if cs[0].kind == "head":
                heads = torch.tensor(sorted({c.head for c in cs if isinstance(c, Head)}), device=self.enc.tokens.device)
                mean = self.means[key]

                def ablate_heads(act: Tensor, hook: HookPoint, heads: Tensor = heads, mean: Tensor = mean) -> Tensor:
                    act[:, :, heads] = mean[heads].to(act.dtype)
                    return act

                fwd.append((key, ablate_heads))
            elif cs[0].kind == "mlp":

                def ablate_mlp(act: Tensor, hook: HookPoint, mean: Tensor = self.means[key]) -> Tensor:
                    return mean.to(act.dtype).expand_as(act).clone()

                fwd.append((key, ablate_mlp))
            else:
                sae = self.saes[key]
                feats = torch.tensor(
                    sorted({c.feature for c in cs if isinstance(c, SaeFeature)}), device=sae.W_dec.device
                )

                def ablate_features(
                    act: Tensor, hook: HookPoint, sae: SAE = sae, feats: Tensor = feats, mean: Tensor = self.means[key]
                ) -> Tensor:
                    f = sae.encode(act.float())[..., feats]
                    return act - ((f - mean[feats]) @ sae.W_dec[feats]).to(act.dtype)

                fwd.append((sae.cfg.metadata.hook_name, ablate_features))
        return fwd


def run(target: Target, inp: CircuitInput) -> CircuitResult:
    import numpy as np

    model = target.model
    comps = list(inp.components)
    labels = [c.label() for c in comps]
    dup = {x for x in labels if labels.count(x) > 1}
    if dup:
        raise UserError(f"components listed twice: {', '.join(sorted(dup))}")
    meter = Meter()
    enc = encode(model, inp.prompts)
    metric = BoundMetric(inp.metric, model, enc)
    ab = MeanAblator(model, comps, meter, enc)
    pool = ab.pool()

    def value(ablated: list[Part]) -> float:
        check("a circuit measurement")
        return metric.value(meter.run(model, enc.tokens, ab.hooks(ablated))).mean

    def others(keep: list[Part]) -> list[Part]:
        kept = {c.label() for c in keep}
        return [c for c in pool if c.label() not in kept]

    full = metric.value(ab.logits).mean
    empty = value(pool)
    span = full - empty
    if abs(span) < 1e-6:
        raise UserError(
            f"ablating every component of these kinds leaves {inp.metric.describe()} unchanged "
            f"({full:.4f}): there is no behaviour for a circuit of them to carry"
        )

    def norm(v: float) -> float:
        return round((v - empty) / span, 4)

    curve, keep_values, drop_values = [], [], []
    for k in range(1, len(comps) + 1):
        keep_values.append(value(others(comps[:k])))
        drop_values.append(value(comps[:k]))
        curve.append(
            CurvePoint(
                size=k, added=labels[k - 1], faithfulness=norm(keep_values[-1]), completeness=norm(drop_values[-1])
            )
        )
    reached = [p.size for p in curve if p.faithfulness >= inp.target]
    size = reached[0] if reached else len(comps)
    gains = [curve[0].faithfulness] + [curve[i].faithfulness - curve[i - 1].faithfulness for i in range(1, size)]
    kept = [c for c, g in zip(comps[:size], gains, strict=True) if g >= inp.prune_below] or comps[:1]
    pruned_keep, pruned_drop = value(others(kept)), value(kept)
    # the pruned set must still reach the target (or, when no prefix did, do no worse than all N)
    bar = inp.target if reached else curve[size - 1].faithfulness
    if norm(pruned_keep) >= bar:
        circuit, keep_v, drop_v = kept, pruned_keep, pruned_drop
    else:
        circuit, keep_v, drop_v = comps[:size], keep_values[size - 1], drop_values[size - 1]
    names = [c.label() for c in circuit]
    pruned = [c.label() for c in comps[:size] if c.label() not in set(names)]

    rng = np.random.default_rng(inp.seed)
    by_kind: dict[tuple[str, ...], list[Part]] = {}
    for c in pool:
        by_kind.setdefault((c.kind, getattr(c, "sae", "")), []).append(c)
    want: dict[tuple[str, ...], int] = {}
    for c in circuit:
        key = (c.kind, getattr(c, "sae", ""))
        want[key] = want.get(key, 0) + 1
    draws, rf, rc = [], [], []
    for _ in range(inp.n_random):
        rand = []
        for _attempt in range(20):  # a set different from the circuit, when the pool allows one
            rand = [
                c
                for key, n in want.items()
                for c in (by_kind[key][i] for i in rng.choice(len(by_kind[key]), n, replace=False))
            ]
            if {c.label() for c in rand} != set(names):
                break
        draws.append([c.label() for c in rand])
        rf.append(norm(value(others(rand))))
        rc.append(norm(value(rand)))
    faith, compl = norm(keep_v), norm(drop_v)
    rule = (
        f"smallest prefix of the ranking with faithfulness >= {inp.target:g} (all {len(comps)} if none), then "
        f"members whose addition raised faithfulness by < {inp.prune_below:g} dropped if the rest still reaches it"
    )
    return CircuitResult(
        tool="circuit",
        summary=(
            f"circuit of {len(circuit)} ({', '.join(names[:8])}{', ...' if len(names) > 8 else ''}): "
            f"faithfulness {faith:.2f} (random sets {float(np.mean(rf)):.2f}), completeness {compl:.2f} "
            f"(random sets {float(np.mean(rc)):.2f}); {inp.metric.describe()} full {full:.3f}, all ablated "
            f"{empty:.3f}" + ("" if reached else f"; no prefix reached faithfulness {inp.target:g}")
        ),
        cost=meter.cost(),
        circuit=circuit,
        names=names,
        curve=curve,
        reached_target=bool(reached),
        pruned=pruned,
        rule=rule,
        full_value=round(full, 4),
        empty_value=round(empty, 4),
        circuit_value=round(keep_v, 4),
        ablated_value=round(drop_v, 4),
        faithfulness=faith,
        completeness=compl,
        random_faithfulness=round(float(np.mean(rf)), 4),
        random_faithfulness_std=round(float(np.std(rf)), 4),
        random_completeness=round(float(np.mean(rc)), 4),
        random_completeness_std=round(float(np.std(rc)), 4),
        completeness_margin=round(float(np.mean(rc)) - compl, 4),
        random_sets=draws,
        effect=faith,
        control=round(float(np.mean(rf)), 4),
    )


def estimate(t: Target, inp: CircuitInput) -> int:
    """Forward tokens a call costs (the Meter charges the same)."""
    # the clean pass (means), all ablated, both curves over every prefix, the pruned set twice,
    # and each random set twice (kept alone, ablated)
    return padded(t.model, inp.prompts) * (2 + 2 * len(inp.components) + 2 + 2 * inp.n_random)


SPEC = ToolSpec(
    name="circuit", input_model=CircuitInput, result_model=CircuitResult, run=run, estimate=estimate, tier="causal"
)

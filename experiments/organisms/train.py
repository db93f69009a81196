"""Train a small HookedTransformer on an organism's task, seeded and on the CPU."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from experiments.organisms.spec import OrganismSpec
from experiments.organisms.tasks import Family, make_family

if TYPE_CHECKING:
    from transformer_lens import HookedTransformer


@dataclass
class TrainResult:
    """What training produced."""

    model: HookedTransformer
    """The trained model, in eval mode, without a tokenizer."""
    config: dict
    """The HookedTransformerConfig fields that were set (saved as config.json)."""
    family: Family
    """The task's data generator, with the token roles it planted."""
    losses: list[tuple[int, float]]
    """(step, training loss) every few steps."""
    seconds: float
    """Wall-clock training time."""


def tl_config(spec: OrganismSpec, family: Family) -> dict:
    """HookedTransformerConfig fields for the spec (JSON-serialisable)."""
    m = spec.model
    return {
        "n_layers": m.n_layers,
        "d_model": m.d_model,
        "n_heads": m.n_heads,
        "d_head": m.d_model // m.n_heads,
        "d_mlp": None if m.attn_only else m.d_mlp,
        "attn_only": m.attn_only,
        "act_fn": None if m.attn_only else m.act_fn,
        "d_vocab": family.vocab_size,
        "n_ctx": family.n_ctx,
        "normalization_type": "LN",
        "positional_embedding_type": "standard",
        "default_prepend_bos": True,
        "model_name": spec.organism_id(),
        "seed": spec.seed,
    }


def _lr_at(step: int, spec: OrganismSpec) -> float:
    t = spec.train
    if step < t.warmup_steps:
        return t.lr * (step + 1) / t.warmup_steps
    progress = (step - t.warmup_steps) / max(1, t.steps - t.warmup_steps)
    return t.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def train(
    spec: OrganismSpec, on_step: Callable[[int, float], None] | None = None
) -> TrainResult:
    """Train the organism. Same spec (seed included), same weights."""
    import torch
    import torch.nn.functional as F
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    torch.manual_seed(spec.seed)
    family = make_family(spec)
    config = tl_config(spec, family)
    model = HookedTransformer(HookedTransformerConfig(**config, device="cpu"))
    opt = torch.optim.AdamW(
        model.parameters(), lr=spec.train.lr, weight_decay=spec.train.weight_decay
    )
    rng = np.random.default_rng([spec.seed, 2])
    losses: list[tuple[int, float]] = []
    start = time.perf_counter()
    model.train()
    for step in range(spec.train.steps):
        batch = family.sample(rng, spec.train.batch_size)
        tokens = torch.from_numpy(batch.tokens)
        mask = torch.from_numpy(batch.loss_mask[:, :-1])
        logits = model(tokens)[:, :-1]
        loss = F.cross_entropy(logits[mask], tokens[:, 1:][mask])
        for group in opt.param_groups:
            group["lr"] = _lr_at(step, spec)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 25 == 0 or step == spec.train.steps - 1:
            value = loss.item()
            losses.append((step, value))
            if on_step:
                on_step(step, value)
    model.eval()
    return TrainResult(model, config, family, losses, time.perf_counter() - start)

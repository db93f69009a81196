"""Train a small HookedTransformer on an organism's task, seeded and on the CPU."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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


GB = 1 << 30
# Python, torch and transformer_lens resident before the first tensor: measured ~0.6 GB.
_BASELINE_BYTES = int(0.7 * GB)
MEMORY_ENV = "INTERP_TRAIN_MEMORY_GB"
_AVAILABLE_SHARE = 0.8


@dataclass
class MemoryEstimate:
    """Peak memory of training and verifying an organism, in bytes, by what drives it (float32 on the CPU)."""

    weights: int
    """Parameters, their gradients and AdamW's two moments (4 copies): n_layers, d_model, d_mlp, n_symbols."""
    attention: int
    """Attention scores and patterns kept for the backward pass: batch_size x n_heads x n_ctx^2 x n_layers."""
    activations: int
    """Other per-layer activations kept for backward: batch_size x n_ctx x (d_model, d_mlp) x n_layers."""
    logits: int
    """Logits, log-softmax and their gradient: batch_size x n_ctx x vocabulary."""
    evaluation: int
    """Verification forward passes over eval_examples at once (attention, logits, cached activations)."""
    baseline: int = _BASELINE_BYTES
    """The interpreter and libraries."""

    @property
    def training(self) -> int:
        return self.weights + self.attention + self.activations + self.logits

    @property
    def peak(self) -> int:
        return self.baseline + max(self.training, self.weights // 4 + self.evaluation)


def estimate_memory(spec: OrganismSpec) -> MemoryEstimate:
    """An upper-side estimate of training memory from the spec alone (nothing is allocated)."""
    family = make_family(spec)
    m, B, E = spec.model, spec.train.batch_size, spec.train.eval_examples
    V, S, d, L, H = family.vocab_size, family.n_ctx, m.d_model, m.n_layers, m.n_heads
    mlp = 0 if m.attn_only else m.d_mlp
    per_layer = 4 * d * d + 9 * d + (2 * d * mlp + mlp + d if mlp else 0)
    params = 2 * V * d + S * d + V + L * per_layer + 2 * d
    f = 4  # bytes per float32
    return MemoryEstimate(
        weights=4 * params * f,
        # TransformerLens materialises scores, scaled and masked scores, the pattern and its NaN-guarded
        # copy per layer; all but the transient ones are saved for backward.
        attention=5 * B * H * S * S * L * f,
        activations=B * S * (12 * d + 8 * mlp) * L * f,  # gelu keeps ~8 d_mlp-wide intermediates
        logits=5 * B * S * V * f,
        evaluation=(3 * E * H * S * S + E * S * (8 * d + 3 * mlp) + 2 * E * S * V + 2 * L * E * S * d) * f,
    )


def memory_limit() -> tuple[int, str]:
    """Bytes a training run may use, and where that number came from: $INTERP_TRAIN_MEMORY_GB, else 80% of
    the memory available now (MemAvailable in /proc/meminfo, else free physical pages)."""
    import os

    from tools.errors import UserError

    if env := os.environ.get(MEMORY_ENV, "").strip():
        try:
            gb = float(env)
        except ValueError:
            gb = float("nan")
        if not math.isfinite(gb) or gb <= 0:
            raise UserError(f"{MEMORY_ENV}={env!r}: give the memory limit in GB, a number more than zero")
        return int(gb * GB), f"{MEMORY_ENV}={env}"
    available = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
    except OSError:
        pass
    if available is None:
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return int(available * _AVAILABLE_SHARE), f"{_AVAILABLE_SHARE:.0%} of the {available / GB:.1f} GB available now"


def check_memory(spec: OrganismSpec) -> MemoryEstimate:
    """Refuse, before anything is allocated, a spec whose training would not fit in memory; the message
    gives the estimate, what drives it and which fields to lower."""
    from tools.errors import UserError

    est = estimate_memory(spec)
    limit, source = memory_limit()
    if est.peak <= limit:
        return est
    parts = sorted(
        [
            (
                est.attention,
                "attention",
                "train.batch_size, model.n_heads or the sequence length (task.max_len / max_repeat / max_pairs)",
            ),
            (est.activations, "activations", "train.batch_size, model.n_layers, model.d_model or model.d_mlp"),
            (est.logits, "logits", "train.batch_size or the vocabulary (task.n_symbols)"),
            (est.weights, "weights and optimizer state", "model.n_layers, model.d_model or model.d_mlp"),
            (est.evaluation, "verification", "train.eval_examples"),
        ],
        reverse=True,
    )
    drivers = "; ".join(f"{name} {b / GB:,.1f} GB (lower {fields})" for b, name, fields in parts[:3])
    raise UserError(
        f"organism spec {spec.name!r} would need about {est.peak / GB:,.1f} GB of memory to train, "
        f"more than the {limit / GB:,.1f} GB limit ({source}). Largest parts: {drivers}. "
        f"Or set {MEMORY_ENV} to allow more"
    )


def _lr_at(step: int, spec: OrganismSpec) -> float:
    t = spec.train
    if step < t.warmup_steps:
        return t.lr * (step + 1) / t.warmup_steps
    progress = (step - t.warmup_steps) / max(1, t.steps - t.warmup_steps)
    return t.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


TRAIN_THREADS = 1
"""Intra-op threads while training, whatever the caller set (OMP_NUM_THREADS, torch.set_num_threads).
Left to the caller, a d_model=64 spec trained with 1, 2, 3 and 4 threads gave four different weights, and
three processes with 3 threads each gave three (a parallel accumulation's order varies). Deterministic
algorithms alone made 1-3 threads agree here, but how a kernel splits its sums by thread count is not
promised to stay fixed across shapes and library versions; one thread is a count every machine has, so
the weights do not depend on the machine's core count either. Cost: none measurable here. On the shared
2-core dev machine (load 5-7), 150 steps of the backdoor organism took 44 s and 55 s with one thread and
581 s with two (OpenMP threads wait for each other whenever one is descheduled); an idle 2-core machine
was not available, where two threads could at best halve the time."""


@contextmanager
def deterministic_cpu(threads: int = TRAIN_THREADS) -> Iterator[None]:
    """Fixed intra-op threads, deterministic algorithms and a private global torch RNG for the block;
    the caller's settings and RNG state come back afterwards, also when the block raises.
    (Inter-op threads are left alone: they can be set once per process, and an eager CPU training step
    runs its ops one after another on the calling thread, so they do not change any sum.)"""
    import torch

    threads_before = torch.get_num_threads()
    deterministic_before = torch.are_deterministic_algorithms_enabled()
    warn_only_before = torch.is_deterministic_algorithms_warn_only_enabled()
    try:
        torch.set_num_threads(threads)
        # An op without a deterministic CPU kernel raises instead of silently varying between runs.
        torch.use_deterministic_algorithms(True)
        # Initialisation seeds the global torch RNG; forking it leaves the caller's stream untouched.
        with torch.random.fork_rng(devices=[]):
            yield
    finally:
        torch.use_deterministic_algorithms(deterministic_before, warn_only=warn_only_before)
        torch.set_num_threads(threads_before)


def train(spec: OrganismSpec, on_step: Callable[[int, float], None] | None = None) -> TrainResult:
    """Train the organism. Same spec (seed included), same weights, whatever the caller's thread settings:
    every random draw comes from the spec's seed (torch for the initialisation, seeded numpy Generators
    for the data) and the arithmetic runs under `deterministic_cpu`."""
    check_memory(spec)
    with deterministic_cpu():
        return _train(spec, on_step)


def _train(spec: OrganismSpec, on_step: Callable[[int, float], None] | None) -> TrainResult:
    import torch
    import torch.nn.functional as F
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    torch.manual_seed(spec.seed)
    family = make_family(spec)
    config = tl_config(spec, family)
    model = HookedTransformer(HookedTransformerConfig(**config, device="cpu"))
    opt = torch.optim.AdamW(model.parameters(), lr=spec.train.lr, weight_decay=spec.train.weight_decay)
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

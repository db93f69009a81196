"""Activation-harvesting throughput against naive caching and this machine's matmul rate.

Model: GPT-2-small shape (12 layers, d_model 768, 12 heads, d_mlp 3072, vocab
50257), random weights (no download). Task: residual stream at the middle layer,
every position, for a batch of token sequences.

    naive     model.run_with_cache(tokens): every hook cached, the whole model run
    harvest   tools.activations.harvest: one hook, gathered in the hook, stop_at_layer

Both numbers come from the same run, best of `repeats` timings each. The matmul
rate is a square fp32 matmul of the same width class measured just before, so the
share says how much of the machine's raw arithmetic the harvest turns into work.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass


@dataclass
class ThroughputResult:
    """One benchmark run."""

    device: str
    """Where it ran."""
    hook: str
    """Hook harvested."""
    tokens: int
    """Tokens per pass (batch x seq)."""
    naive_tokens_per_s: float
    """run_with_cache of everything."""
    harvest_tokens_per_s: float
    """tools.activations.harvest."""
    speedup: float
    """harvest / naive (target >= 2)."""
    harvest_gflops: float
    """Achieved GFLOP/s of the harvest (forward matmul FLOPs of the layers it runs)."""
    matmul_gflops: float
    """Measured fp32 square-matmul GFLOP/s on this device."""
    share_of_matmul: float
    """harvest_gflops / matmul_gflops (target >= 0.5)."""


def _best(fn, repeats: int, sync) -> float:
    fn()
    sync()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t)
    return min(times)


def run(batch: int = 8, seq: int = 128, repeats: int = 3, device: str | None = None) -> ThroughputResult:
    import torch
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    from tools.activations import harvest
    from tools.prompts import Encoded

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    torch.manual_seed(0)
    cfg = HookedTransformerConfig(
        n_layers=12,
        d_model=768,
        n_heads=12,
        d_head=64,
        d_mlp=3072,
        d_vocab=50257,
        n_ctx=1024,
        act_fn="gelu_new",
        normalization_type="LN",
        device=device,
    )
    model = HookedTransformer(cfg)
    model.eval()
    tokens = torch.randint(0, cfg.d_vocab, (batch, seq), device=device)
    enc = Encoded(tokens, torch.full((batch,), seq, device=device), [""] * batch)
    hook = f"blocks.{cfg.n_layers // 2 - 1}.hook_resid_post"
    n = batch * seq

    def naive():
        with torch.inference_mode():
            _, cache = model.run_with_cache(tokens)
            return cache[hook]

    t_naive = _best(naive, repeats, sync)
    t_ours = _best(lambda: harvest(model, enc, [hook], "all", batch_size=batch), repeats, sync)

    a = torch.randn(2048, 2048, device=device)
    b = torch.randn(2048, 2048, device=device)
    t_mm = _best(lambda: a @ b, repeats + 2, sync)
    matmul = 2 * 2048**3 / t_mm / 1e9
    layers = cfg.n_layers // 2
    d, m = cfg.d_model, cfg.d_mlp
    per_token = layers * (2 * (4 * d * d) + 2 * (2 * d * m) + 2 * 2 * seq * d)  # qkvo + mlp + scores/mix
    achieved = per_token * n / t_ours / 1e9
    return ThroughputResult(
        device=device,
        hook=hook,
        tokens=n,
        naive_tokens_per_s=round(n / t_naive, 1),
        harvest_tokens_per_s=round(n / t_ours, 1),
        speedup=round(t_naive / t_ours, 2),
        harvest_gflops=round(achieved, 2),
        matmul_gflops=round(matmul, 2),
        share_of_matmul=round(achieved / matmul, 3),
    )


def as_dict(r: ThroughputResult) -> dict:
    return asdict(r)

"""Per-layer transcoders: a sparse stand-in for each MLP (its input -> its output), in SAELens's format.

A transcoder reads the MLP's input (`blocks.L.ln2.hook_normalized`) and predicts the MLP's output
(`blocks.L.hook_mlp_out`) through a few active features; replacing every MLP by one (plus an error
term) makes the model linear in the features once attention patterns and LayerNorm scales are
frozen, which is what an attribution graph (tools/graph.py) needs.

Training is BatchTopK (Bussmann et al. 2024): each step keeps the `k x batch` largest feature
activations of the batch, so the mean L0 is `k` by construction, and tracks the smallest activation
it kept. That running value becomes a JumpReLU threshold at inference, the form SAELens stores
(`jumprelu_transcoder`: W_enc, b_enc, W_dec, b_dec, threshold): each layer's folder loads with
`sae_lens.SAE.load_from_disk`, and every number reported here is measured on that loaded object.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field

from tools.activations import harvest
from tools.base import Record, Seed, ToolInput, ToolResult
from tools.corpus import CorpusSpec, resolve_corpus
from tools.cost import Meter
from tools.deadline import DeadlineReached, Pace
from tools.errors import UserError
from tools.estimate import padded
from tools.hooks import check_layer
from tools.prompts import encode
from tools.spec import ToolSpec, always
from tools.steps import seconds_per_step

if TYPE_CHECKING:
    import torch
    from sae_lens.saes.transcoder import Transcoder
    from torch import Tensor
    from transformer_lens import HookedTransformer

    from tools.target import Target

MANIFEST = "interp_transcoders.json"
"""Written next to the per-layer folders: which layers, how they were trained, held-out numbers."""
# Harvested rows live in memory (two hooks per layer); past this the user narrows the call.
MAX_HARVEST_BYTES = 4 * 2**30


def in_hook(layer: int) -> str:
    """What the layer's MLP reads (after ln2's centring and scaling, before its weight and bias)."""
    return f"blocks.{layer}.ln2.hook_normalized"


def out_hook(layer: int) -> str:
    """What the layer's MLP writes into the residual stream."""
    return f"blocks.{layer}.hook_mlp_out"


def layer_folder(folder: Path, layer: int) -> Path:
    return folder / f"layer_{layer}"


def check_mlp_hooks(model: HookedTransformer, layer: int) -> None:
    """The layer has an MLP with the input and output hooks a transcoder replaces."""
    check_layer(model, layer)
    if model.cfg.attn_only or model.cfg.d_mlp is None:
        raise UserError("this model has no MLPs (attention-only): there is nothing for a transcoder to replace")
    for hook in (in_hook(layer), out_hook(layer)):
        if hook not in model.hook_dict:
            raise UserError(
                f"layer {layer} has no hook {hook!r} (a parallel attention/MLP block or a model "
                "without ln2): transcoders here need an MLP that reads its own LayerNorm"
            )


class TranscoderTrainInput(ToolInput):
    """Train per-layer transcoders (each MLP's input -> its output, sparse) for attribution graphs."""

    out: str
    """Folder to write them to: one SAELens folder per layer (layer_L/) and interp_transcoders.json."""
    layers: list[int] | None = None
    """Layers to train; default every layer (an attribution graph needs all of them)."""
    corpus: CorpusSpec | None = None
    """Prompts to harvest MLP inputs and outputs from (all real positions); default the target's own
    sample of ordinary inputs when it ships one, else random token sequences."""
    corpus_size: int = Field(2000, ge=10, le=1_000_000)
    """Usage prompts to draw when no corpus is given."""
    d_transcoder: int | None = Field(None, ge=1)
    """Features per layer; default 4 x d_model."""
    k: int = Field(8, ge=1)
    """Mean active features per token (BatchTopK); the saved JumpReLU threshold keeps about this many."""
    steps: int = Field(1000, ge=1)
    """Optimiser steps (each updates every layer's transcoder once)."""
    batch_size: int = Field(512, ge=8)
    """Token rows per step."""
    lr: float = Field(3e-3, gt=0)
    """Adam learning rate (decayed linearly to 0 over the last 30% of steps)."""
    seed: Seed = 0
    """Seeds the corpus sample, initialisation and batching."""


class TranscoderStats(Record):
    """How well one layer's transcoder stands in for its MLP on held-out tokens."""

    layer: int
    """Block index."""
    path: str
    """Its SAELens folder."""
    variance_explained: float
    """1 - |mlp_out - prediction|^2 / |mlp_out - mean(mlp_out)|^2 over the held-out rows."""
    l0: float
    """Mean active features per held-out token."""
    dead_fraction: float
    """Share of features never active on the held-out rows."""
    threshold: float
    """The JumpReLU threshold saved (the running minimum of what BatchTopK kept)."""


class TranscoderTrainResult(ToolResult):
    """Where the transcoders went and how well each replaces its MLP."""

    path: str
    """Folder holding one transcoder per layer (give it to the `graph` tool)."""
    d_transcoder: int
    """Features per layer."""
    steps: int
    """Optimiser steps taken (fewer than asked when the call stopped at its deadline)."""
    corpus: str
    """Where the training tokens came from: usage, given or random."""
    rows: int
    """Token rows harvested (a tenth held out)."""
    layers: list[TranscoderStats]
    """Per layer, held out."""
    effect: float
    """Lowest held-out variance explained over the layers."""
    control: float
    """Variance explained by the mean output alone (0 by definition): the baseline to beat."""


def training_prompts(target: Target, inp: TranscoderTrainInput) -> tuple[list[str], str]:
    """(prompts, where they came from): the given corpus, else the target's usage prompts, else random."""
    if inp.corpus is not None:
        return resolve_corpus(target.model, inp.corpus), "random" if _is_random(inp.corpus) else "given"
    usage = target.usage_prompts(inp.corpus_size, inp.seed)
    if usage is not None:
        return usage, "usage"
    return resolve_corpus(target.model, CorpusSpec(random=inp.corpus_size, seed=inp.seed)), "random"


def _is_random(spec: CorpusSpec) -> bool:
    return spec.prompts is None and spec.file is None


@dataclass
class _Trainer:
    """Every trained layer's transcoder at once, stacked on a leading layer axis (one batched matmul and
    one optimiser over all layers): BatchTopK, unit-norm decoder rows."""

    W_enc: Tensor
    """[layers, d_in, d_tc]"""
    b_enc: Tensor
    """[layers, d_tc]"""
    W_dec: Tensor
    """[layers, d_tc, d_out]"""
    b_dec: Tensor
    """[layers, d_out]"""
    threshold: Tensor | None
    """[layers]: running minimum activation BatchTopK kept (None before the first step)."""
    out_variance: Tensor
    """[layers]: mean squared deviation of each layer's output, so the loss is scale-free."""

    def params(self) -> list[Tensor]:
        return [self.W_enc, self.b_enc, self.W_dec, self.b_dec]


def _init(x: Tensor, y: Tensor, d_tc: int, gen: torch.Generator) -> _Trainer:
    """x, y: [layers, rows, d]. Encoder columns and decoder rows start at centred training rows (a
    data-driven init leaves far fewer features dead than a random one); the decoder bias at the mean."""
    import torch

    pick = torch.randint(x.shape[1], (d_tc,), generator=gen).to(x.device)
    xc = x[:, pick] - x.mean(1, keepdim=True)
    yc = y[:, pick] - y.mean(1, keepdim=True)
    w_enc = (xc / xc.norm(dim=-1, keepdim=True).clamp_min(1e-6)).transpose(1, 2).contiguous()
    w_dec = (yc / yc.norm(dim=-1, keepdim=True).clamp_min(1e-6)).contiguous()
    var = ((y - y.mean(1, keepdim=True)) ** 2).sum(-1).mean(1).clamp_min(1e-12)
    return _Trainer(
        w_enc.requires_grad_(),
        torch.zeros(x.shape[0], d_tc, device=x.device, requires_grad=True),
        w_dec.requires_grad_(),
        y.mean(1).clone().requires_grad_(),
        None,
        var,
    )


def _step(tc: _Trainer, x: Tensor, y: Tensor, k: int) -> Tensor:
    """Loss of one BatchTopK batch (x, y: [layers, batch, d]): the fractions of each layer's output variance
    left unexplained, summed; updates each layer's threshold."""
    import torch

    n_layers, batch, _ = x.shape
    acts = torch.relu(torch.baddbmm(tc.b_enc[:, None], x, tc.W_enc))
    flat = acts.reshape(n_layers, -1)
    kept, idx = flat.topk(min(k * batch, flat.shape[1]), dim=1)
    acts = (flat * torch.zeros_like(flat).scatter_(1, idx, 1.0)).view_as(acts)
    with torch.no_grad():
        low = kept.masked_fill(kept <= 0, float("inf")).min(1).values
        low = torch.where(torch.isinf(low), tc.threshold if tc.threshold is not None else torch.zeros_like(low), low)
        tc.threshold = low if tc.threshold is None else 0.99 * tc.threshold + 0.01 * low
    recon = torch.baddbmm(tc.b_dec[:, None], acts, tc.W_dec)
    return (((recon - y) ** 2).sum(-1).mean(1) / tc.out_variance).sum()


def _to_sae_lens(tc: _Trainer, i: int, layer: int, model_id: str) -> Transcoder:
    """Row `i` of the stack, as the SAELens transcoder of `layer`."""
    import torch
    from sae_lens.saes.transcoder import JumpReLUTranscoder, JumpReLUTranscoderConfig

    d_in, d_tc = tc.W_enc.shape[1:]
    cfg = JumpReLUTranscoderConfig(
        d_in=d_in, d_sae=d_tc, d_out=tc.W_dec.shape[2], apply_b_dec_to_input=False, device="cpu"
    )
    cfg.metadata.hook_name = in_hook(layer)
    cfg.metadata.hook_name_out = out_hook(layer)
    cfg.metadata.hook_layer = layer
    cfg.metadata.model_name = model_id
    sae = JumpReLUTranscoder(cfg)
    with torch.no_grad():
        sae.W_enc.copy_(tc.W_enc[i].detach().cpu())
        sae.b_enc.copy_(tc.b_enc[i].detach().cpu())
        sae.W_dec.copy_(tc.W_dec[i].detach().cpu())
        sae.b_dec.copy_(tc.b_dec[i].detach().cpu())
        sae.threshold.fill_(float(tc.threshold[i]) if tc.threshold is not None else 0.0)
    return sae


def measure(tc: Transcoder, x: Tensor, y: Tensor) -> tuple[float, float, float]:
    """(variance explained of y, mean L0, dead fraction) of a loaded transcoder on rows x -> y."""
    import torch

    dev = tc.W_dec.device
    x, y = x.to(dev, torch.float32), y.to(dev, torch.float32)
    with torch.inference_mode():
        feats = tc.encode(x)
        pred = tc.decode(feats)
    ve = 1 - float(((y - pred) ** 2).sum() / ((y - y.mean(0)) ** 2).sum().clamp_min(1e-12))
    active = feats > 0
    return ve, float(active.sum(1).float().mean()), float((active.sum(0) == 0).float().mean())


@lru_cache(maxsize=64)
def _load(path: str, mtime: float, device: str) -> Transcoder:
    from sae_lens import SAE

    return SAE.load_from_disk(path, device=device).eval()


def load_transcoder(path: Path, device: str = "cpu") -> Transcoder:
    """A transcoder folder (SAELens format) through SAELens's own loader."""
    from sae_lens.saes.transcoder import Transcoder

    cfg = path / "cfg.json"
    if not cfg.is_file():
        raise UserError(f"{path} is not a transcoder folder (no cfg.json; SAELens format expected)")
    try:
        tc = _load(str(path), cfg.stat().st_mtime, device)
    except (OSError, ValueError, KeyError) as e:
        raise UserError(f"cannot load the transcoder in {path}: {e}") from None
    if not isinstance(tc, Transcoder):
        raise UserError(
            f"{path} holds a {type(tc).__name__}, not a transcoder (its cfg.json architecture is "
            f"{tc.cfg.architecture()!r}); train transcoders with `interp tool transcoder_train`"
        )
    return tc


def transcoder_layer(tc: Transcoder, path: Path) -> int:
    """The block a transcoder replaces, from the input hook its cfg names."""
    hook = tc.cfg.metadata.hook_name or ""
    m = re.fullmatch(r"blocks\.(\d+)\.(ln2\.hook_normalized|hook_mlp_in|hook_resid_mid)", hook)
    if not m:
        raise UserError(f"transcoder {path} reads {hook!r}; expected blocks.L.ln2.hook_normalized (the MLP's input)")
    return int(m.group(1))


def train(target: Target, inp: TranscoderTrainInput) -> TranscoderTrainResult:
    import torch

    model = target.model
    layers = sorted(set(inp.layers)) if inp.layers is not None else list(range(model.cfg.n_layers))
    if not layers:
        raise UserError("layers is empty: name at least one layer, or leave it out for every layer")
    for layer in layers:
        check_mlp_hooks(model, layer)
    d_model = model.cfg.d_model
    d_tc = inp.d_transcoder or 4 * d_model
    if inp.k > d_tc:
        raise UserError(f"k ({inp.k}) must be <= d_transcoder ({d_tc})")
    prompts, source = training_prompts(target, inp)
    enc = encode(model, prompts, "corpus")
    rows = int(enc.lengths.sum())
    need = rows * len(layers) * 2 * d_model * 4 * 2  # the harvest, and its training copy stacked by layer
    if need > MAX_HARVEST_BYTES:
        raise UserError(
            f"harvesting {rows} token rows at {len(layers)} layer(s) needs {need / 2**30:.1f} GiB "
            f"(limit {MAX_HARVEST_BYTES / 2**30:.0f} GiB): give fewer layers or a smaller corpus"
        )
    if rows < 100:
        raise UserError(f"only {rows} token rows: give a larger corpus to train transcoders")
    meter = Meter()
    hooks = [h for layer in layers for h in (in_hook(layer), out_hook(layer))]
    acts = harvest(model, enc, hooks, "all", meter=meter).acts
    gen = torch.Generator().manual_seed(inp.seed)
    order = torch.randperm(rows, generator=gen)
    n_test = max(10, rows // 10)
    test, train_idx = order[:n_test], order[n_test:]
    device = str(model.cfg.device)  # train where the model runs
    x = torch.stack([acts[in_hook(layer)][train_idx].float() for layer in layers]).to(device)
    y = torch.stack([acts[out_hook(layer)][train_idx].float() for layer in layers]).to(device)
    torch.manual_seed(inp.seed)
    tc = _init(x, y, d_tc, gen)
    opt = torch.optim.Adam(tc.params(), lr=inp.lr)
    decay_from = 0.7 * inp.steps
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: 1.0 if s < decay_from else max(0.0, (inp.steps - s) / (inp.steps - decay_from))
    )
    done, pace = 0, Pace()
    try:
        for _ in range(inp.steps):
            with pace.unit("transcoder training"):  # not started when it cannot end before the deadline
                idx = torch.randint(len(train_idx), (inp.batch_size,), generator=gen).to(device)
                loss = _step(tc, x[:, idx], y[:, idx], inp.k)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                with torch.no_grad():
                    tc.W_dec /= tc.W_dec.norm(dim=-1, keepdim=True).clamp_min(1e-6)
            done += 1  # steps finished: what a deadline mid-training leaves
    except DeadlineReached:
        if done == 0:
            raise
    del x, y
    folder = Path(inp.out)
    stats = []
    for i, layer in enumerate(layers):
        where = layer_folder(folder, layer)
        try:
            _to_sae_lens(tc, i, layer, target.model_id).save_model(where)
        except OSError as e:
            raise UserError(f"cannot write the transcoder to {where}: {e.strerror}") from None
        loaded = load_transcoder(where, device)
        ve, l0, dead = measure(loaded, acts[in_hook(layer)][test], acts[out_hook(layer)][test])
        stats.append(
            TranscoderStats(
                layer=layer,
                path=str(where),
                variance_explained=round(ve, 4),
                l0=round(l0, 3),
                dead_fraction=round(dead, 4),
                threshold=round(float(loaded.threshold[0].detach()), 6),
            )
        )
    partial = done < inp.steps
    (folder / MANIFEST).write_text(
        json.dumps(
            {
                "model_id": target.model_id,
                "weights_hash": target.weights_hash,
                "layers": layers,
                "in_hook": in_hook(0).replace(".0.", ".L."),
                "out_hook": out_hook(0).replace(".0.", ".L."),
                "rows": rows,
                "corpus": source,
                "steps": done,
                "partial": partial,
                "input": inp.model_dump(mode="json"),
                "heldout": [s.model_dump() for s in stats],
            },
            indent=2,
        )
    )
    worst = min(stats, key=lambda s: s.variance_explained)
    return TranscoderTrainResult(
        tool="transcoder_train",
        summary=(
            f"{len(layers)} transcoder(s) with {d_tc} features each, trained on {rows} {source} tokens: held-out "
            f"variance explained of the MLP output {worst.variance_explained:.3f} (worst, layer {worst.layer}) to "
            f"{max(s.variance_explained for s in stats):.3f}, L0 {min(s.l0 for s in stats):.1f}-"
            f"{max(s.l0 for s in stats):.1f}"
            + (f"; stopped at the deadline after {done} of {inp.steps} steps" if partial else "")
        ),
        cost=meter.cost(),
        partial=partial,
        path=str(folder),
        d_transcoder=d_tc,
        steps=done,
        corpus=source,
        rows=rows,
        layers=stats,
        effect=worst.variance_explained,
        control=0.0,
    )


def train_step_seconds(target: Target, inp: TranscoderTrainInput) -> float:
    """Seconds of `inp.steps` optimiser steps, timed on a few real steps over random rows (cached per
    shape): the work that forward-token counts cannot see."""
    import torch

    model = target.model
    n_layers = len(set(inp.layers)) if inp.layers is not None else model.cfg.n_layers
    d_model = model.cfg.d_model
    d_tc = inp.d_transcoder or 4 * d_model
    device = str(model.cfg.device)
    key = (n_layers, d_model, d_tc, inp.batch_size, min(inp.k, d_tc), device, torch.get_num_threads())
    bench: tuple[Tensor, _Trainer, torch.optim.Optimizer] | None = None  # (rows, transcoders, optimiser)

    def one() -> None:
        nonlocal bench
        if bench is None:  # built on the first call only: a cached shape costs nothing
            gen = torch.Generator().manual_seed(0)
            x = torch.randn(n_layers, inp.batch_size, d_model, generator=gen).to(device)
            tc = _init(x, x, d_tc, gen)
            bench = (x, tc, torch.optim.Adam(tc.params(), lr=inp.lr))
        x, tc, opt = bench
        loss = _step(tc, x, x, min(inp.k, d_tc))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return seconds_per_step(("transcoder", *key), one, device) * inp.steps


def estimate(t: Target, inp: TranscoderTrainInput) -> int:
    """Forward tokens a call costs (the Meter charges the same)."""

    return padded(t.model, training_prompts(t, inp)[0])


SPEC = ToolSpec(
    name="transcoder_train",
    input_model=TranscoderTrainInput,
    result_model=TranscoderTrainResult,
    run=train,
    estimate=estimate,
    tier="observational",
    extra_seconds=train_step_seconds,
    partial=always,
)

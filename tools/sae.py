"""Sparse autoencoders: train (SAELens format, offline), load, measure, look up features.

Training uses SAELens's own TopK / JumpReLU training classes on activations
harvested here, and saves with SAELens's inference format, so the folder loads
with `sae_lens.SAE.load_from_disk` anywhere. Stats report what the SAE fails to
explain ("dark matter": the variance it leaves unexplained) next to what it explains.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from tools.activations import harvest
from tools.base import Record, Seed, ToolInput, ToolResult, measure
from tools.corpus import CorpusSpec, resolve_corpus
from tools.cost import Meter
from tools.deadline import DeadlineReached, Pace
from tools.errors import UserError, near
from tools.estimate import padded
from tools.hooks import check_hook
from tools.prompts import encode
from tools.spec import ToolSpec, always
from tools.steps import seconds_per_step

if TYPE_CHECKING:
    import torch
    from sae_lens import SAE
    from torch import Tensor
    from transformer_lens import HookedTransformer

    from tools.target import Target

TRAINING_FILE = "interp_training.json"


@lru_cache(maxsize=16)
def _load_from_disk(path: str, mtime: float, device: str) -> SAE:
    from sae_lens import SAE

    sae = SAE.load_from_disk(path, device=device)
    sae.eval()
    return sae


def load_sae(ref: str, model: HookedTransformer | None = None) -> SAE:
    """An SAE from a folder, or `RELEASE/SAE_ID` through SAELens's registry (needs the hub), on the
    model's device (so it can run inside the model's hooks); on CPU without a model."""
    device = str(model.cfg.device) if model is not None else "cpu"
    path = Path(ref).expanduser()
    if path.is_dir():
        if not (path / "cfg.json").is_file():
            raise UserError(f"{path} is not an SAE folder (no cfg.json; SAELens format expected)")
        try:
            sae = _load_from_disk(str(path), (path / "cfg.json").stat().st_mtime, device)
        except (OSError, ValueError, KeyError) as e:
            raise UserError(f"cannot load the SAE in {path}: {e}") from None
    elif "/" in ref and not path.exists() and not ref.startswith((".", "/", "~")):
        sae = _load_release(ref).to(device)
    else:
        raise UserError(f"SAE {ref!r} not found: give an SAE folder (SAELens format) or RELEASE/SAE_ID")
    if model is not None:
        hook = sae.cfg.metadata.hook_name
        if hook not in model.hook_dict:
            raise UserError(f"SAE {ref} reads hook {hook!r}, which this model does not have")
    return sae


def _load_release(ref: str) -> SAE:
    """RELEASE/SAE_ID from SAELens's registry; checked locally before anything is downloaded."""
    import os

    from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory

    release, _, sae_id = ref.partition("/")
    directory = get_pretrained_saes_directory()
    if release not in directory:
        raise UserError(
            f"unknown SAE release {release!r}; close SAELens releases: {near(release, directory)}. "
            "Or pass an SAE folder"
        )
    ids = directory[release].saes_map
    if sae_id not in ids:
        raise UserError(f"release {release!r} has no SAE {sae_id!r}; close ids: {near(sae_id, ids)}")
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        raise UserError(
            f"SAE {ref} must be downloaded from the Hugging Face hub, and HF_HUB_OFFLINE=1 is set. "
            "Train one with `interp tool sae_train` or pass a folder"
        )
    from sae_lens import SAE

    try:
        return SAE.from_pretrained(release, sae_id)
    except (OSError, ValueError, ConnectionError) as e:
        raise UserError(
            f"could not download SAE {ref} ({type(e).__name__}): loading by release id needs the "
            "Hugging Face hub. Train one with `interp tool sae_train` or pass a folder"
        ) from None


def sae_encode(sae: SAE, acts: Tensor) -> Tensor:
    """Feature activations of `acts` [rows, d_in] (harvests live on CPU), computed on the SAE's device."""
    import torch

    return sae.encode(acts.to(sae.W_dec.device, torch.float32))


def decoder_direction(sae: SAE, feature: int) -> Tensor:
    """Unit-norm decoder row of a feature."""
    if not 0 <= feature < sae.cfg.d_sae:
        raise UserError(f"feature {feature} is out of range: the SAE has features 0..{sae.cfg.d_sae - 1}")
    w = sae.W_dec[feature].detach()
    return w / w.norm()


class SaeStats(Record):
    """How well an SAE explains a hook's activations on a corpus."""

    variance_explained: float
    """1 - |x - x_hat|^2 / |x - mean(x)|^2 over all rows."""
    dark_matter: float
    """1 - variance_explained: the share the features leave unexplained."""
    l0: float
    """Mean active features per token."""
    dead_fraction: float
    """Share of features never active on the corpus."""
    density: list[float]
    """Per feature: share of tokens where it is active."""
    n_tokens: int
    """Rows measured."""


def sae_stats(sae: SAE, acts: Tensor) -> SaeStats:
    import torch

    acts = acts.to(sae.W_dec.device, torch.float32)
    with torch.inference_mode():
        feats = sae.encode(acts)
        recon = sae.decode(feats)
    resid = ((acts - recon) ** 2).sum()
    total = ((acts - acts.mean(0)) ** 2).sum()
    ve = float(1 - resid / total)
    active = feats > 0
    density = active.float().mean(0)
    return SaeStats(
        variance_explained=round(ve, 4),
        dark_matter=round(1 - ve, 4),
        l0=round(float(active.sum(1).float().mean()), 3),
        dead_fraction=round(float((density == 0).float().mean()), 4),
        density=[round(float(d), 5) for d in density],
        n_tokens=len(acts),
    )


class SaeTrainInput(ToolInput):
    """Train an SAE on one hook's activations over a corpus."""

    hook: str
    """Hook to read, e.g. blocks.0.hook_resid_post."""
    corpus: CorpusSpec = CorpusSpec()
    """Prompts to harvest activations from (all real positions)."""
    out: str
    """Folder to write the SAE to (SAELens format)."""
    architecture: Literal["topk", "jumprelu"] = "topk"
    """SAELens architecture."""
    d_sae: int | None = Field(None, ge=1, le=1 << 20)
    """Number of features; default 4 x the hook width."""
    k: int = Field(8, ge=1)
    """TopK: active features per token."""
    l0_coefficient: float = Field(0.01, gt=0)
    """JumpReLU: sparsity penalty."""
    steps: int = Field(2000, ge=1)
    """Optimiser steps."""
    batch_size: int = Field(512, ge=8, le=1 << 16)
    """Activation rows per step."""
    lr: float = Field(3e-3, gt=0)
    """Adam learning rate."""
    seed: Seed = 0
    """Seeds initialisation and batching."""


class SaeTrainResult(ToolResult):
    """Where the SAE was saved and how well it explains held-out activations."""

    path: str
    """SAE folder."""
    hook: str
    """Hook it reads."""
    d_sae: int = measure(1)
    """Features."""
    steps: int
    """Optimiser steps taken (fewer than asked when the call stopped at its deadline)."""
    stats: SaeStats
    """On the held-out tenth of the harvested rows."""
    effect: float = measure(None, 1)
    """Held-out variance explained."""
    control: float = measure(0, 0, versus_control=True)
    """Variance explained by the mean alone (0 by definition): the baseline to beat."""


# Weights, gradients and Adam's two moments of W_enc and W_dec, plus a batch's feature activations.
MAX_TRAINING_BYTES = 8 << 30


def _trainer(
    inp: SaeTrainInput, d_in: int, d_sae: int, device: str, gen: torch.Generator
) -> tuple[Any, Callable[[Tensor, int], None]]:
    """(training SAE, step(rows, step_index)): one optimiser step on a random batch of `rows`."""
    import torch

    need = 4 * (2 * d_in * d_sae * 4 + 3 * inp.batch_size * d_sae)
    if need > MAX_TRAINING_BYTES:
        raise UserError(
            f"an SAE of {d_sae} features on {d_in}-wide activations with batch_size {inp.batch_size} "
            f"needs ~{need / 2**30:.1f} GiB to train (limit {MAX_TRAINING_BYTES / 2**30:.0f} GiB); "
            "lower d_sae or batch_size"
        )
    from sae_lens.saes.jumprelu_sae import JumpReLUTrainingSAE, JumpReLUTrainingSAEConfig
    from sae_lens.saes.sae import TrainStepInput
    from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig

    if inp.architecture == "topk":
        if inp.k > d_sae:
            raise UserError(f"k ({inp.k}) must be <= d_sae ({d_sae})")
        sae = TopKTrainingSAE(TopKTrainingSAEConfig(d_in=d_in, d_sae=d_sae, k=inp.k, device=device))
        coefficients: dict[str, float] = {}
    else:
        sae = JumpReLUTrainingSAE(
            JumpReLUTrainingSAEConfig(d_in=d_in, d_sae=d_sae, l0_coefficient=inp.l0_coefficient, device=device)
        )
        coefficients = {"l0": inp.l0_coefficient}
    opt = torch.optim.Adam(sae.parameters(), lr=inp.lr, betas=(0.9, 0.999))
    since_fired = torch.zeros(d_sae, device=device)
    sae.train()

    def step(rows: Tensor, i: int) -> None:
        nonlocal since_fired
        idx = torch.randint(len(rows), (inp.batch_size,), generator=gen)
        out = sae.training_forward_pass(
            TrainStepInput(
                sae_in=rows[idx.to(rows.device)],
                coefficients=coefficients,
                dead_neuron_mask=since_fired > 200,
                n_training_steps=i,
                is_logging_step=False,
            )
        )
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        opt.step()
        fired = (out.feature_acts > 0).any(0)
        since_fired = torch.where(fired, torch.zeros_like(since_fired), since_fired + 1)

    return sae, step


def train_step_seconds(target: Target, inp: SaeTrainInput) -> float:
    """Seconds of `inp.steps` optimiser steps, timed on a few real steps of a same-shaped SAE on random rows
    (cached per shape): what forward-token counts cannot see."""
    import torch

    from tools.hooks import hook_width

    d_in = hook_width(target.model, inp.hook)
    d_sae = inp.d_sae or 4 * d_in
    device = str(target.model.cfg.device)
    key = ("sae", d_in, d_sae, inp.batch_size, inp.architecture, inp.k, device, torch.get_num_threads())
    state: dict[str, Any] = {}

    def one() -> None:
        if not state:  # built on the first call only: a cached shape costs nothing
            gen = torch.Generator().manual_seed(0)
            state["rows"] = torch.randn(max(inp.batch_size, 64), d_in, generator=gen).to(device)
            _, state["step"] = _trainer(inp, d_in, d_sae, device, gen)
            state["i"] = 0
        state["step"](state["rows"], state["i"])
        state["i"] += 1

    return seconds_per_step(key, one, device) * inp.steps


def train_sae(target: Target, inp: SaeTrainInput) -> SaeTrainResult:
    import torch

    model = target.model
    check_hook(model, inp.hook)
    meter = Meter()
    prompts = resolve_corpus(model, inp.corpus)
    acts = harvest(model, encode(model, prompts, "corpus"), [inp.hook], "all", meter=meter).acts[inp.hook]
    acts = acts.flatten(1).float()
    if len(acts) < 50:
        raise UserError(f"only {len(acts)} activation rows: give a larger corpus to train an SAE")
    gen = torch.Generator().manual_seed(inp.seed)
    order = torch.randperm(len(acts), generator=gen)
    n_test = max(10, len(acts) // 10)
    test, train = acts[order[:n_test]], acts[order[n_test:]]
    d_in = acts.shape[1]
    d_sae = inp.d_sae or 4 * d_in
    device = str(model.cfg.device)  # train where the model runs (on a GPU: there)
    train = train.to(device)
    torch.manual_seed(inp.seed)
    sae, step = _trainer(inp, d_in, d_sae, device, gen)
    sae.cfg.metadata.hook_name = inp.hook
    sae.cfg.metadata.model_name = target.model_id
    with torch.no_grad():
        sae.b_dec.copy_(train.mean(0))  # geometric-median-style init: start at the data's centre
    steps_done, pace = 0, Pace()
    try:
        for steps_done in range(inp.steps):
            with pace.unit("SAE training"):
                step(train, steps_done)
        steps_done = inp.steps
    except DeadlineReached:
        if steps_done == 0:
            raise
    partial = steps_done < inp.steps
    sae.eval()
    folder = Path(inp.out)
    try:
        sae.save_inference_model(folder)
    except OSError as e:
        raise UserError(f"cannot write the SAE to {folder}: {e.strerror}") from None
    _load_from_disk.cache_clear()
    loaded = load_sae(str(folder), model)
    stats = sae_stats(loaded, test)
    (folder / TRAINING_FILE).write_text(
        json.dumps(
            {
                "model_id": target.model_id,
                "hook": inp.hook,
                "rows": len(acts),
                "input": inp.model_dump(mode="json"),
                "heldout": stats.model_dump(exclude={"density"}),
            },
            indent=2,
        )
    )
    return SaeTrainResult(
        tool="sae_train",
        summary=(
            f"{inp.architecture} SAE with {d_sae} features at {inp.hook}: held-out variance explained "
            f"{stats.variance_explained:.3f} (dark matter {stats.dark_matter:.3f}), L0 {stats.l0:.1f}, "
            f"dead {stats.dead_fraction:.1%}"
            + (f"; stopped at the deadline after {steps_done} of {inp.steps} steps" if partial else "")
        ),
        cost=meter.cost(),
        partial=partial,
        steps=steps_done,
        path=str(folder),
        hook=inp.hook,
        d_sae=d_sae,
        stats=stats,
        effect=stats.variance_explained,
        control=0.0,
    )


class SaeStatsInput(ToolInput):
    """Measure an SAE on a corpus."""

    sae: str
    """SAE folder."""
    corpus: CorpusSpec = CorpusSpec()
    """Prompts to measure on."""


class SaeStatsResult(ToolResult):
    """Variance explained, dark matter, L0, dead features, densities."""

    stats: SaeStats
    """Measured on the corpus."""


def stats(target: Target, inp: SaeStatsInput) -> SaeStatsResult:
    model = target.model
    sae = load_sae(inp.sae, model)
    meter = Meter()
    hook = sae.cfg.metadata.hook_name
    enc = encode(model, resolve_corpus(model, inp.corpus), "corpus")
    acts = harvest(model, enc, [hook], "all", meter=meter).acts[hook].flatten(1).float()
    s = sae_stats(sae, acts)
    return SaeStatsResult(
        tool="sae_stats",
        summary=f"variance explained {s.variance_explained:.3f}, dark matter {s.dark_matter:.3f}, L0 {s.l0:.1f}, "
        f"dead {s.dead_fraction:.1%} over {s.n_tokens} tokens",
        cost=meter.cost(),
        stats=s,
    )


class SaeFeaturesInput(ToolInput):
    """The most active features at given prompts."""

    sae: str
    """SAE folder."""
    prompts: list[str]
    """Prompts to look at."""
    position: Literal["last", "all"] = "last"
    """Each prompt's last token, or every token."""
    k: int = Field(5, ge=1, le=100)
    """Features per position."""


class ActiveFeature(Record):
    """A feature active at a position."""

    prompt: int
    """Prompt index."""
    position: int
    """Token position."""
    token: str
    """The token there."""
    feature: int
    """Feature index."""
    activation: float
    """Its activation."""


class SaeFeaturesResult(ToolResult):
    """Top features per position, and which features recur across the prompts."""

    active: list[ActiveFeature]
    """Top-k features at each position."""
    recurring: list[tuple[int, int]]
    """(feature, number of positions where it is in the top k), most frequent first."""


def top_features(target: Target, inp: SaeFeaturesInput) -> SaeFeaturesResult:
    from collections import Counter

    import torch

    model = target.model
    sae = load_sae(inp.sae, model)
    meter = Meter()
    hook = sae.cfg.metadata.hook_name
    enc = encode(model, inp.prompts)
    h = harvest(model, enc, [hook], inp.position, meter=meter)
    with torch.inference_mode():
        feats = sae_encode(sae, h.acts[hook].flatten(1)).cpu()
    vals, idx = feats.topk(min(inp.k, feats.shape[1]), dim=-1)
    tokens = enc.tokens.cpu()
    active: list[ActiveFeature] = []
    counts: Counter[int] = Counter()
    for r, (pi, pos) in enumerate(zip(h.prompt_index.tolist(), h.position.tolist(), strict=False)):
        tok = model.to_single_str_token(int(tokens[pi, pos]))
        for v, f in zip(vals[r].tolist(), idx[r].tolist(), strict=False):
            if v > 0:
                active.append(ActiveFeature(prompt=pi, position=pos, token=tok, feature=f, activation=round(v, 4)))
                counts[f] += 1
    recurring = counts.most_common(10)
    return SaeFeaturesResult(
        tool="sae_features",
        summary=f"{len(active)} active (position, feature) pairs; most recurrent: "
        + ", ".join(f"feature {f} at {n} positions" for f, n in recurring[:3]),
        cost=meter.cost(),
        active=active,
        recurring=recurring,
    )


class SaeContextsInput(ToolInput):
    """Top-activating contexts of features over a corpus."""

    sae: str
    """SAE folder."""
    features: list[int] = Field(min_length=1)
    """Feature indices."""
    corpus: CorpusSpec = CorpusSpec()
    """Prompts to search."""
    k: int = Field(10, ge=1, le=200)
    """Contexts per feature."""
    window: int = Field(4, ge=0, le=64)
    """Tokens shown before the activating one."""


class Context(Record):
    """One activating context."""

    prompt: int
    """Corpus index."""
    position: int
    """Position of the activating token."""
    tokens: list[str]
    """The window, ending at the activating token."""
    activations: list[float]
    """The feature's activation on each token of the window."""
    max_activation: float
    """Its activation on the last token."""


class FeatureContexts(Record):
    """Contexts of one feature."""

    feature: int
    """Feature index."""
    density: float
    """Share of corpus tokens where it is active."""
    top: list[Context]
    """Highest-activation contexts."""
    top_tokens: list[tuple[str, int]]
    """Activating tokens among the top contexts, with counts."""


class SaeContextsResult(ToolResult):
    """Top contexts per feature."""

    features: list[FeatureContexts]
    """Per requested feature."""


def top_contexts(target: Target, inp: SaeContextsInput) -> SaeContextsResult:
    from collections import Counter

    import torch

    model = target.model
    sae = load_sae(inp.sae, model)
    for f in inp.features:
        decoder_direction(sae, f)  # range check
    meter = Meter()
    hook = sae.cfg.metadata.hook_name
    enc = encode(model, resolve_corpus(model, inp.corpus), "corpus")
    h = harvest(model, enc, [hook], "all", meter=meter)
    with torch.inference_mode():
        feats = sae_encode(sae, h.acts[hook].flatten(1))[:, inp.features].cpu()
    tokens = enc.tokens.cpu()
    grid = torch.zeros((*tokens.shape, len(inp.features)))
    grid[h.prompt_index, h.position] = feats
    out = []
    for j, f in enumerate(inp.features):
        col = feats[:, j]
        order = col.argsort(descending=True)[: inp.k]
        ctxs = []
        for r in order.tolist():
            if col[r] <= 0:
                break
            pi, pos = int(h.prompt_index[r]), int(h.position[r])
            lo = max(0, pos - inp.window)
            ctxs.append(
                Context(
                    prompt=pi,
                    position=pos,
                    tokens=[model.to_single_str_token(int(t)) for t in tokens[pi, lo : pos + 1]],
                    activations=[round(float(a), 4) for a in grid[pi, lo : pos + 1, j]],
                    max_activation=round(float(col[r]), 4),
                )
            )
        toks = Counter(c.tokens[-1] for c in ctxs)
        out.append(
            FeatureContexts(
                feature=f, density=round(float((col > 0).float().mean()), 5), top=ctxs, top_tokens=toks.most_common(10)
            )
        )
    return SaeContextsResult(
        tool="sae_contexts",
        summary="; ".join(
            f"feature {fc.feature}: top tokens {', '.join(t for t, _ in fc.top_tokens[:5]) or 'none'} "
            f"(density {fc.density:.3f})"
            for fc in out
        ),
        cost=meter.cost(),
        features=out,
    )


def estimate_corpus(t: Target, inp: SaeTrainInput | SaeStatsInput | SaeContextsInput) -> int:
    """Forward tokens a call costs (the Meter charges the same)."""
    return padded(t.model, resolve_corpus(t.model, inp.corpus))


def estimate_features(t: Target, inp: SaeFeaturesInput) -> int:
    """Forward tokens a call costs (the Meter charges the same)."""
    return padded(t.model, inp.prompts)


SPECS = (
    ToolSpec(
        name="sae_train",
        input_model=SaeTrainInput,
        result_model=SaeTrainResult,
        run=train_sae,
        estimate=estimate_corpus,
        tier="observational",
        extra_seconds=train_step_seconds,
        partial=always,
    ),
    ToolSpec(
        name="sae_stats",
        input_model=SaeStatsInput,
        result_model=SaeStatsResult,
        run=stats,
        estimate=estimate_corpus,
        tier="observational",
    ),
    ToolSpec(
        name="sae_features",
        input_model=SaeFeaturesInput,
        result_model=SaeFeaturesResult,
        run=top_features,
        estimate=estimate_features,
        tier="observational",
    ),
    ToolSpec(
        name="sae_contexts",
        input_model=SaeContextsInput,
        result_model=SaeContextsResult,
        run=top_contexts,
        estimate=estimate_corpus,
        tier="observational",
    ),
)

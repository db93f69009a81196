"""Sparse autoencoders: train (SAELens format, offline), load, measure, look up features.

Training runs SAELens's own trainer and training SAEs (TopK, BatchTopK, JumpReLU) on
activations harvested here (tools/sae_training.py), and saves SAELens's inference format, so
the folder loads with `sae_lens.SAE.load_from_disk` anywhere. Stats report what the SAE fails to
explain ("dark matter": the variance it leaves unexplained) next to what it explains.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

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
from tools.sae_training import SaeTraining, SaeTrainLog, row_batches
from tools.spec import ToolSpec, always
from tools.steps import seconds_per_step

if TYPE_CHECKING:
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
    architecture: Literal["topk", "batchtopk", "jumprelu"] = "topk"
    """SAELens training architecture: topk (k features per token), batchtopk (k per token on average over
    a batch; saved as JumpReLU with the threshold it learned) or jumprelu (L0 penalty)."""
    d_sae: int | None = Field(None, ge=1, le=1 << 20)
    """Number of features; default 4 x the hook width."""
    k: int = Field(8, ge=1)
    """TopK / BatchTopK: active features per token."""
    l0_coefficient: float = Field(0.01, gt=0)
    """JumpReLU: sparsity penalty."""
    steps: int = Field(2000, ge=1)
    """Optimiser steps."""
    batch_size: int = Field(512, ge=8, le=1 << 16)
    """Activation rows per step."""
    lr: float = Field(3e-3, gt=0)
    """Adam learning rate (SAELens's trainer: gradients clipped to norm 1)."""
    lr_warm_up: float = Field(0.0, ge=0, le=1)
    """Share of the steps over which the learning rate rises linearly to `lr` (SAELens's lr_warm_up_steps)."""
    lr_decay: float = Field(0.2, ge=0, le=1)
    """Share of the steps at the end over which the learning rate falls linearly to 0 (SAELens's
    lr_decay_steps)."""
    dead_feature_window: int = Field(200, ge=1)
    """Steps a feature may go without firing before it counts as dead; TopK and BatchTopK then train dead
    features on what the live ones fail to reconstruct (SAELens's auxiliary loss)."""
    normalize: bool = False
    """Scale activations to mean norm sqrt(width) while training (SAELens's expected_average_only_in), so
    `lr` means the same on any model; folded into the saved weights."""
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
    log: list[SaeTrainLog]
    """SAELens's training metrics at about 20 evenly spaced steps and the last one taken."""
    effect: float = measure(None, 1)
    """Held-out variance explained."""
    control: float = measure(0, 0, versus_control=True)
    """Variance explained by the mean alone (0 by definition): the baseline to beat."""


def train_step_seconds(target: Target, inp: SaeTrainInput) -> float:
    """Seconds of `inp.steps` optimiser steps, timed on a few real steps (the same SAELens trainer, the same
    batching) of a same-shaped SAE on random rows (cached per shape): what forward-token counts cannot see."""
    import torch

    from tools.hooks import hook_width

    d_in = hook_width(target.model, inp.hook)
    d_sae = inp.d_sae or 4 * d_in
    device = str(target.model.cfg.device)
    key = ("sae", d_in, d_sae, inp.batch_size, inp.architecture, inp.k, device, torch.get_num_threads())
    bench: tuple[SaeTraining, Iterator[Tensor]] | None = None  # (trainer, batches)

    def one() -> None:
        nonlocal bench
        if bench is None:  # built on the first call only: a cached shape costs nothing
            gen = torch.Generator().manual_seed(0)
            rows = torch.randn(2 * inp.batch_size, d_in, generator=gen).to(device)
            # a long run's steps: a short one (steps < 20) would log every step, which no real run does
            steady = inp.model_copy(update={"steps": 1 << 20})
            bench = (SaeTraining(steady, d_in, d_sae, device), row_batches(rows, inp.batch_size, gen))
            for _ in range(3):  # SAELens's first steps run slow (0.2-0.5 s measured on CPU): not the rate
                bench[0].step(next(bench[1]))
        fit, batches = bench
        fit.step(next(batches))

    return seconds_per_step(key, one, device) * inp.steps


def train_sae(target: Target, inp: SaeTrainInput) -> SaeTrainResult:
    """Harvest the hook's activations here (charged by the Meter), train on nine tenths of the rows with
    SAELens's trainer (tools/sae_training.py says why not its runner), stop at the deadline with what is
    trained, save in SAELens's format and measure the saved SAE on the held-out tenth."""
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
    fit = SaeTraining(inp, d_in, d_sae, device)
    fit.sae.cfg.metadata.hook_name = inp.hook
    fit.sae.cfg.metadata.model_name = target.model_id
    fit.prepare(train)
    batches = row_batches(train, inp.batch_size, gen)
    steps_done, pace = 0, Pace()
    try:
        while steps_done < inp.steps:  # the deadline is checked before every step
            with pace.unit("SAE training"):
                fit.step(next(batches))
            steps_done += 1
    except DeadlineReached:
        if steps_done == 0:
            raise
    partial = steps_done < inp.steps
    sae = fit.finish()
    folder = Path(inp.out)
    try:
        sae.save_inference_model(folder)
        _save_sparsity(folder, fit.log_feature_sparsity())
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
                "steps": steps_done,
                "heldout": stats.model_dump(exclude={"density"}),
                "log": [e.model_dump() for e in fit.log],
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
        log=fit.log,
        effect=stats.variance_explained,
        control=0.0,
    )


def _save_sparsity(folder: Path, log_sparsity: Tensor) -> None:
    """log10 feature densities over training, in the file SAELens's runner writes beside a final SAE."""
    from sae_lens.constants import SPARSITY_FILENAME
    from safetensors.torch import save_file

    save_file({"sparsity": log_sparsity.contiguous()}, folder / SPARSITY_FILENAME)


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
    for r, (pi, pos) in enumerate(zip(h.prompt_index.tolist(), h.position.tolist(), strict=True)):
        tok = model.to_single_str_token(int(tokens[pi, pos]))
        for v, f in zip(vals[r].tolist(), idx[r].tolist(), strict=True):
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

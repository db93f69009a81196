"""Built-in organisms, and the on-disk cache of trained ones keyed by spec hash.

An organism is trained on first use and kept in
`$INTERP_CACHE/organisms/NAME-HASH/` (default `~/.cache/interp-agent`). A
folder is written under a temporary name and renamed into place, so a killed
training run never leaves a half-written organism that looks trained.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from importlib import resources
from pathlib import Path

from experiments.organisms.manifest import MANIFEST_FILE, Manifest, load_manifest
from experiments.organisms.spec import OrganismSpec, load_spec
from tools.errors import UserError
from tools.target import cache_root

SPEC_FILE = "spec.yaml"


def _builtin_dir() -> Path:
    return Path(str(resources.files("experiments.organisms") / "specs"))


def builtin_names() -> list[str]:
    """Names of the organisms that ship with the project."""
    return sorted(p.stem for p in _builtin_dir().glob("*.yaml"))


def candidate_specs() -> list[Path]:
    """Spec files of candidate organisms (specs/candidates/, relative to the working folder when inside it):
    each verifies for some seeds or CPUs only, so none is a built-in."""
    folder = _builtin_dir() / "candidates"
    out = []
    for p in sorted(folder.glob("*.yaml")):
        try:
            out.append(p.relative_to(Path.cwd()))
        except ValueError:
            out.append(p)
    return out


def resolve_spec(name_or_file: str) -> OrganismSpec:
    """A built-in organism's name, or the path of a spec file."""
    path = Path(name_or_file)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        if not path.is_file():
            raise UserError(f"spec file {path} does not exist")
        return load_spec(path)
    if name_or_file in builtin_names():
        return load_spec(_builtin_dir() / f"{name_or_file}.yaml")
    from experiments.organisms.universality import universality_names

    if name_or_file in universality_names():
        raise UserError(
            f"{name_or_file!r} is a universality set (one organism trained from several seeds), not one "
            f"organism: `interp organism train {name_or_file}` trains and matches the seeds, `interp bench "
            f"recovery --organisms {name_or_file}` scores them; this command takes a single organism"
        )
    raise UserError(
        f"unknown organism {name_or_file!r}. Built-in organisms: {', '.join(builtin_names())}; "
        f"several seeds of one (universality): {', '.join(universality_names())}; "
        f"or give the path of a spec file (YAML, see experiments/organisms/specs/)"
    )


def organism_dir(spec: OrganismSpec) -> Path:
    """The cache folder for exactly this spec."""
    return cache_root() / "organisms" / f"{spec.name}-{spec.spec_hash()[:12]}"


def is_trained(folder: Path) -> bool:
    """Whether `folder` holds a finished organism (weights and manifest)."""
    from tools.checkpoint import is_checkpoint

    return is_checkpoint(folder) and (folder / MANIFEST_FILE).is_file()


def train_into(spec: OrganismSpec, out: Path, on_step: Callable[[int, float], None] | None = None) -> Manifest:
    """Train, verify and save the organism into `out` (replaced atomically)."""
    import yaml

    from experiments.organisms.tasks import vocab_names
    from experiments.organisms.train import check_memory, train
    from experiments.organisms.verify import verify
    from tools.checkpoint import save_checkpoint, weights_hash, word_level_tokenizer

    check_memory(spec)  # a spec that cannot fit is refused before a folder or a tensor exists

    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    except OSError as e:
        raise UserError(f"cannot write to {out.parent}: {e.strerror}; choose another --out") from None
    try:
        result = train(spec, on_step=on_step)
        names = vocab_names(result.config["d_vocab"] - 4)
        save_checkpoint(result.model, result.config, word_level_tokenizer(names), tmp)
        (tmp / SPEC_FILE).write_text(yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False))
        manifest = verify(spec, result, weights_hash(tmp))
        manifest.save(tmp)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return manifest


def ensure_trained(spec: OrganismSpec, on_step: Callable[[int, float], None] | None = None) -> Path:
    """The organism's cache folder, training it first if it is not there yet. Processes that ask for
    the same untrained organism at once (parallel tests, two investigations) train it once: the
    others wait on a lock file beside it and then find it trained."""
    import fcntl

    folder = organism_dir(spec)
    if is_trained(folder):
        return folder
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        lock = open(folder.parent / f".{folder.name}.lock", "w")  # noqa: SIM115 - held until trained
    except OSError as e:
        raise UserError(
            f"cannot write to the organism cache {folder.parent}: {e.strerror}; set INTERP_CACHE to a writable folder"
        ) from None
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not is_trained(folder):
            train_into(spec, folder, on_step=on_step)
    return folder


def find_trained(name_or_dir: str) -> Path:
    """The folder of a trained organism given a folder, a spec file or a built-in name."""
    path = Path(name_or_dir)
    if path.is_dir():
        if not is_trained(path):
            raise UserError(f"{path} is not a trained organism folder (no weights or manifest)")
        return path
    spec = resolve_spec(name_or_dir)
    folder = organism_dir(spec)
    if not is_trained(folder):
        raise UserError(f"organism {spec.name!r} is not trained yet; run `interp organism train {name_or_dir}`")
    return folder


__all__ = [
    "builtin_names",
    "cache_root",
    "candidate_specs",
    "ensure_trained",
    "find_trained",
    "is_trained",
    "load_manifest",
    "organism_dir",
    "resolve_spec",
    "train_into",
]

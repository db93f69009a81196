"""`organism:` specs as targets: the organisms layer's side of loading.

A built-in name or a spec file is trained on first use into its cache folder; a
trained folder is taken as it is. The folder is loaded by `tools.target` (which
loads folders and files only) and the organism's sampler of ordinary inputs is
attached, so an auditor gets the model's normal use without being told what is
planted. `agent.targets.load` calls this for every `organism:` spec.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tools.target import Target

PREFIX = "organism:"


def organism_folder(rest: str) -> Path:
    """The trained folder for what follows `organism:`: a trained folder as given, else a built-in
    name or spec file resolved and trained on first use."""
    from experiments.organisms.cache import ensure_trained, resolve_spec

    path = Path(rest).expanduser()
    if path.is_dir():
        return path
    return ensure_trained(resolve_spec(rest))


def usage_sampler(folder: Path) -> Callable[[int, int], list[str]] | None:
    """`(n, seed) -> prompts` of the organism's ordinary use, from the spec saved in its folder;
    None for a folder without one (a checkpoint trained elsewhere)."""
    from experiments.organisms.cache import SPEC_FILE, resolve_spec
    from experiments.organisms.prompts import usage_prompts

    spec_file = folder / SPEC_FILE
    if not spec_file.is_file():
        return None
    return partial(usage_prompts, resolve_spec(str(spec_file)))


def load_organism(spec: str, device: str | None = None) -> Target:
    """Load `organism:NAME | organism:SPEC.yaml | organism:DIR`, training first when needed."""
    from tools.target import load

    spec = spec.strip()
    rest = spec.removeprefix(PREFIX)
    if not spec.startswith(PREFIX) or not rest:
        return load(spec, device)  # not an organism name: its own error
    folder = organism_folder(rest)
    target = load(spec, device, folder=folder)
    target.usage = usage_sampler(folder)
    return target

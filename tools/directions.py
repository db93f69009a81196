"""Saved directions in activation space, addressed by a content id.

A steering vector or probe direction gets an id (`dir-` + hash of the vector,
hook and model) so that a claim, an ablation or a later run can name it
exactly. Stored as safetensors under $INTERP_DIRECTIONS (default
.interp/directions in the working directory); while an investigation runs a tool
(`saving_in(run folder's directions/)`), new directions go to that run's folder,
and an id is looked up there first, then in the shared folder (an id is a content
hash, so the same id names the same vector wherever it is found).
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

from tools.errors import UserError

if TYPE_CHECKING:
    from torch import Tensor


class DirectionMeta(TypedDict):
    """What a saved direction's file records beside its vector."""

    hook: str
    """The hook point whose activations it lives in."""
    model_id: str
    """The model it was made on."""
    source: str
    """How it was made (e.g. "difference of means", "random control")."""


_run_folder: contextvars.ContextVar[Path | None] = contextvars.ContextVar("interp_directions", default=None)


@contextmanager
def saving_in(folder: Path) -> Iterator[None]:
    """Run the body with new directions saved in `folder` (a run's own directions folder)."""
    token = _run_folder.set(folder)
    try:
        yield
    finally:
        _run_folder.reset(token)


def shared_dir() -> Path:
    return Path(os.environ.get("INTERP_DIRECTIONS", ".interp/directions"))


def directions_dir() -> Path:
    """Where a new direction is saved: the current run's folder, else the shared folder."""
    return _run_folder.get() or shared_dir()


def _find(did: str) -> Path | None:
    for folder in dict.fromkeys([directions_dir(), shared_dir()]):
        path = folder / f"{did}.safetensors"
        if path.is_file():
            return path
    return None


def save_direction(vector: Tensor, hook: str, model_id: str, source: str) -> str:
    """Store a direction; returns its id (same vector, hook and model: same id)."""
    from safetensors.torch import save_file

    v = vector.detach().float().cpu().contiguous()
    digest = hashlib.sha256(v.numpy().tobytes() + hook.encode() + model_id.encode()).hexdigest()
    did = f"dir-{digest[:12]}"
    folder = directions_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        meta: DirectionMeta = {"hook": hook, "model_id": model_id, "source": source}
        save_file({"vector": v}, str(folder / f"{did}.safetensors"), metadata={"meta": json.dumps(meta)})
    except OSError as e:
        raise UserError(f"cannot save direction to {folder}: {e.strerror}; set INTERP_DIRECTIONS") from None
    return did


def load_direction(did: str) -> tuple[Tensor, DirectionMeta]:
    """(vector, {hook, model_id, source}) of a saved direction."""
    from safetensors import safe_open

    path = _find(did)
    if path is None:
        folders = list(dict.fromkeys([directions_dir(), shared_dir()]))
        known = sorted({p.stem for f in folders for p in f.glob("dir-*.safetensors")})[:10]
        where = " or ".join(str(f) for f in folders)
        raise UserError(f"unknown direction {did!r} in {where}; known: {', '.join(known) or 'none'}")
    with safe_open(str(path), framework="pt") as f:
        meta: DirectionMeta = json.loads(f.metadata()["meta"])
        return f.get_tensor("vector"), meta

"""Saved directions in activation space, addressed by a content id.

A steering vector or probe direction gets an id (`dir-` + hash of the vector,
hook and model) so that a claim, an ablation or a later run can name it
exactly. Stored as safetensors under $INTERP_DIRECTIONS (default
.interp/directions in the working directory).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tools.errors import UserError

if TYPE_CHECKING:
    from torch import Tensor


def directions_dir() -> Path:
    return Path(os.environ.get("INTERP_DIRECTIONS", ".interp/directions"))


def save_direction(vector: Tensor, hook: str, model_id: str, source: str) -> str:
    """Store a direction; returns its id (same vector, hook and model: same id)."""
    from safetensors.torch import save_file

    v = vector.detach().float().cpu().contiguous()
    digest = hashlib.sha256(v.numpy().tobytes() + hook.encode() + model_id.encode()).hexdigest()
    did = f"dir-{digest[:12]}"
    folder = directions_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        meta = {"hook": hook, "model_id": model_id, "source": source}
        save_file({"vector": v}, str(folder / f"{did}.safetensors"), metadata={"meta": json.dumps(meta)})
    except OSError as e:
        raise UserError(f"cannot save direction to {folder}: {e.strerror}; set INTERP_DIRECTIONS") from None
    return did


def load_direction(did: str) -> tuple[Tensor, dict[str, Any]]:
    """(vector, {hook, model_id, source}) of a saved direction."""
    from safetensors import safe_open

    path = directions_dir() / f"{did}.safetensors"
    if not path.is_file():
        known = sorted(p.stem for p in directions_dir().glob("dir-*.safetensors"))[:10]
        raise UserError(f"unknown direction {did!r} in {directions_dir()}; known: {', '.join(known) or 'none'}")
    with safe_open(str(path), framework="pt") as f:
        meta = json.loads(f.metadata()["meta"])
        return f.get_tensor("vector"), meta

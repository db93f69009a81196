"""SAEs the labeling tests train: a TopK SAE (k 4) on the features organism's residual stream before layer 1,
where its hidden categories are linearly readable."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tools.target import Target

HOOK = "blocks.1.hook_resid_pre"


def train_features_sae(target: Target, corpus: list[str], folder: Path, d_sae: int, steps: int) -> str:
    """Train on `corpus` into `folder`/sae (seed 0) and return that path."""
    from tools.registry import call

    out = str(Path(folder) / "sae")
    call(
        target,
        "sae_train",
        {
            "hook": HOOK,
            "corpus": {"prompts": corpus},
            "out": out,
            "d_sae": d_sae,
            "k": 4,
            "steps": steps,
            "batch_size": 256,
            "seed": 0,
        },
    )
    return out

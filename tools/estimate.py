"""What tools' cost estimates share: prompt lengths by tokenization, which is cheap next to a forward pass.

Each tool's estimate lives with the tool (its `SPEC.estimate`); the budget refuses a call whose
estimate does not fit, and each estimate counts the same passes the tool's Meter will count (tests hold
them equal).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformer_lens import HookedTransformer


def lengths(model: HookedTransformer, prompts: list[str] | None) -> list[int]:
    """Token count of each prompt (BOS included when the model prepends one)."""
    from tools.deadline import check

    out = []
    for i, p in enumerate(prompts or []):
        if i % 256 == 0:
            check("estimating a call's cost")  # tokenising a huge prompt list is work too
        out.append(model.to_tokens(p, truncate=False).shape[1])
    return out


def padded(model: HookedTransformer, prompts: list[str] | None) -> int:
    """Tokens of the prompt set padded to its longest prompt: what each pass over it is charged
    (the harvest pads the whole set once, then slices batches)."""
    lens = lengths(model, prompts)
    return len(lens) * max(lens) if lens else 0

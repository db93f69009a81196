"""What a tool call cost: forward tokens and seconds, counted where the model runs."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict


if TYPE_CHECKING:
    import torch
    from transformer_lens import HookedTransformer


class Cost(BaseModel):
    """Compute spent by one tool call."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    forward_tokens: int
    """Token positions pushed through the model (batch x positions, summed over passes)."""
    seconds: float
    """Wall-clock time of the call."""


class Meter:
    """Runs the model for a tool and counts what it costs. Every forward goes through here."""

    def __init__(self) -> None:
        self.forward_tokens = 0
        self._start = time.perf_counter()

    def run(self, model: HookedTransformer, tokens: torch.Tensor, fwd_hooks=(), **kwargs) -> torch.Tensor:
        """Logits (or what `return_type` asks for) with optional hooks, under inference mode."""
        import torch

        self.forward_tokens += tokens.numel()
        with torch.inference_mode():
            if fwd_hooks:
                return model.run_with_hooks(tokens, fwd_hooks=list(fwd_hooks), **kwargs)
            return model(tokens, **kwargs)

    def cache(self, model: HookedTransformer, tokens: torch.Tensor, names: list[str], **kwargs):
        """(output, ActivationCache) holding only `names`."""
        import torch

        self.forward_tokens += tokens.numel()
        with torch.inference_mode():
            return model.run_with_cache(tokens, names_filter=list(names), **kwargs)

    def cost(self) -> Cost:
        return Cost(forward_tokens=self.forward_tokens, seconds=round(time.perf_counter() - self._start, 4))

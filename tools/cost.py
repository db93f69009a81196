"""What a tool call cost: forward tokens and seconds, counted where the model runs.

A backward pass (attribution) is charged as BACKWARD_FACTOR forward passes over the same tokens:
it costs about twice a forward's FLOPs, and the budget counts one currency, forward tokens.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from tools.deadline import Pace, check
from tools.errors import UserError

if TYPE_CHECKING:
    import torch
    from transformer_lens import HookedTransformer
    from transformer_lens.hook_points import HookPoint

    from tools.hooks import HookFn


BACKWARD_FACTOR = 2
"""Forward-token equivalents charged per token of a backward pass."""


class Cost(BaseModel):
    """Compute spent by one tool call."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    forward_tokens: int
    """Token positions pushed through the model (batch x positions, summed over passes); a backward
    pass adds BACKWARD_FACTOR x its tokens. What the budget charges."""
    seconds: float
    """Wall-clock time of the call."""
    forward_passes: int = 0
    """Forward passes over a batch."""
    backward_passes: int = 0
    """Backward passes over a batch (gradients for attribution)."""
    backward_tokens: int = 0
    """Token positions of the backward passes (already charged in forward_tokens, x BACKWARD_FACTOR)."""


class Meter:
    """Runs the model for a tool and counts what it costs. Every forward goes through here, and
    each one first checks the call's deadline (tools/deadline.py)."""

    def __init__(self) -> None:
        self.forward_tokens = 0
        self.forward_passes = 0
        self.backward_passes = 0
        self.backward_tokens = 0
        self.pace = Pace()
        self._start = time.perf_counter()

    def run(
        self,
        model: HookedTransformer,
        tokens: torch.Tensor,
        fwd_hooks: Sequence[tuple[str, HookFn]] = (),
        **kwargs: Any,
    ) -> torch.Tensor:
        """Logits (or what `return_type` asks for) with optional hooks, under inference mode."""
        import torch

        with self.pace.unit("a forward pass", tokens.numel()), torch.inference_mode():
            self.forward_tokens += tokens.numel()
            self.forward_passes += 1
            if fwd_hooks:
                return model.run_with_hooks(tokens, fwd_hooks=list(fwd_hooks), **kwargs)
            return model(tokens, **kwargs)

    def cache(
        self, model: HookedTransformer, tokens: torch.Tensor, names: list[str], **kwargs: Any
    ) -> tuple[torch.Tensor, Any]:
        """(output, ActivationCache) holding only `names`."""
        import torch

        with self.pace.unit("a forward pass", tokens.numel()), torch.inference_mode():
            self.forward_tokens += tokens.numel()
            self.forward_passes += 1
            out: tuple[torch.Tensor, Any] = model.run_with_cache(tokens, names_filter=list(names), **kwargs)
            return out

    def gradients(
        self,
        model: HookedTransformer,
        tokens: torch.Tensor,
        names: list[str],
        objective: Callable[[torch.Tensor], torch.Tensor],
        fwd_hooks: Sequence[tuple[str, HookFn]] = (),
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """One forward and one backward pass: (objective value, {name: activation}, {name: gradient of
        the objective}) for the hooks in `names`. `objective` maps the logits to a scalar; `fwd_hooks`
        run before the activations are read (e.g. to interpolate the input). The residual stream
        entering block 0 is made a leaf, so gradients need no parameter gradients."""
        import torch

        check("a forward and backward pass", tokens.numel() * (1 + BACKWARD_FACTOR) * self.pace.seconds_per_unit)
        started = time.monotonic()
        self.forward_tokens += tokens.numel() * (1 + BACKWARD_FACTOR)
        self.backward_tokens += tokens.numel()
        self.forward_passes += 1
        self.backward_passes += 1
        acts: dict[str, torch.Tensor] = {}

        def leaf(act: torch.Tensor, hook: HookPoint) -> torch.Tensor:
            act = act.detach().requires_grad_(True)
            acts[hook.name] = act
            return act

        def keep(act: torch.Tensor, hook: HookPoint) -> None:
            acts[hook.name] = act

        first = "blocks.0.hook_resid_pre"
        hooks = [*fwd_hooks, (first, leaf)] + [(n, keep) for n in names if n != first]
        with torch.enable_grad():
            value = objective(model.run_with_hooks(tokens, fwd_hooks=hooks))
            if not value.requires_grad:
                raise UserError(
                    "the metric has no gradient path to the model's activations; attribution needs "
                    "a differentiable metric (logit_diff, prob, loss or copy_logprob)"
                )
            wanted = [acts[n] for n in names]
            grads = torch.autograd.grad(value, wanted, allow_unused=True)
        out = {
            n: (torch.zeros_like(a) if g is None else g).detach() for n, a, g in zip(names, wanted, grads, strict=True)
        }
        # the pace in forward-token equivalents, so the next pass of either kind is not started too late
        self.pace.seconds_per_unit = (time.monotonic() - started) / (tokens.numel() * (1 + BACKWARD_FACTOR))
        return value.detach(), {n: acts[n].detach() for n in names}, out

    @contextmanager
    def charge(self, tokens: int, where: str, backward: bool = False) -> Iterator[None]:
        """Count a pass the caller runs itself inside the block (a replacement model's frozen forward, or a
        batched backward over `tokens` = rows x positions), paced against the deadline like every pass."""
        units = tokens * (BACKWARD_FACTOR if backward else 1)
        with self.pace.unit(where, units):
            self.forward_tokens += units
            if backward:
                self.backward_tokens += tokens
                self.backward_passes += 1
            else:
                self.forward_passes += 1
            yield

    def cost(self) -> Cost:
        return Cost(
            forward_tokens=self.forward_tokens,
            seconds=round(time.perf_counter() - self._start, 4),
            forward_passes=self.forward_passes,
            backward_passes=self.backward_passes,
            backward_tokens=self.backward_tokens,
        )

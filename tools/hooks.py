"""Validate hook names, layers, heads and neurons against a model, with errors that teach."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from tools.errors import UserError, near

if TYPE_CHECKING:
    from torch import Tensor
    from transformer_lens import HookedTransformer
    from transformer_lens.hook_points import HookPoint

_LIST_ALL = "list all of them with `interp model info SPEC --json`"


def check_hook(model: HookedTransformer, name: str) -> str:
    """`name` if it is one of the model's hook points, else an error naming the nearest ones."""
    if name in model.hook_dict:
        return name
    m = re.match(r"blocks\.(\d+)\.", name)
    if m and int(m.group(1)) >= model.cfg.n_layers:
        raise UserError(
            f"hook {name!r}: layer {m.group(1)} is out of range, the model has layers 0..{model.cfg.n_layers - 1}"
        )
    raise UserError(f"unknown hook {name!r}; nearest valid names: {near(name, model.hook_dict)}; {_LIST_ALL}")


def hook_layer(name: str) -> int | None:
    """Block index of a `blocks.L.*` hook; None for hooks outside the blocks."""
    m = re.match(r"blocks\.(\d+)\.", name)
    return int(m.group(1)) if m else None


_BEFORE_BLOCKS = ("hook_embed", "hook_pos_embed", "hook_tokens")


def stop_layer(names: list[str], n_layers: int) -> int | None:
    """The `stop_at_layer` that still computes every hook in `names` (None: run the whole model)."""
    depth = []
    for name in names:
        layer = hook_layer(name)
        if layer is None:
            if name not in _BEFORE_BLOCKS:
                return None  # ln_final / unembed come after every block
            layer = -1
        depth.append(layer)
    stop = max(depth) + 1
    return None if stop >= n_layers else stop


def check_layer(model: HookedTransformer, layer: int, what: str = "layer") -> int:
    if not 0 <= layer < model.cfg.n_layers:
        raise UserError(f"{what} {layer} is out of range: the model has layers 0..{model.cfg.n_layers - 1}")
    return layer


def check_head(model: HookedTransformer, layer: int, head: int) -> tuple[int, int]:
    check_layer(model, layer)
    if not 0 <= head < model.cfg.n_heads:
        raise UserError(f"head {head} is out of range: layer {layer} has heads 0..{model.cfg.n_heads - 1}")
    return layer, head


def check_neuron(model: HookedTransformer, layer: int, neuron: int) -> tuple[int, int]:
    check_layer(model, layer)
    if model.cfg.attn_only or model.cfg.d_mlp is None:
        raise UserError("this model has no MLPs (attention-only): there are no neurons to name")
    if not 0 <= neuron < model.cfg.d_mlp:
        raise UserError(f"neuron {neuron} is out of range: MLPs have neurons 0..{model.cfg.d_mlp - 1}")
    return layer, neuron


def resid_hooks(model: HookedTransformer) -> list[str]:
    """The residual stream at the input of each block and after the last: a layer sweep."""
    return [f"blocks.{layer}.hook_resid_pre" for layer in range(model.cfg.n_layers)] + [
        f"blocks.{model.cfg.n_layers - 1}.hook_resid_post"
    ]


def hook_width(model: HookedTransformer, name: str) -> int:
    """Numbers per position at a hook (d_model, n_heads x d_head, d_mlp, ...), from one two-token pass."""
    import torch

    check_hook(model, name)
    seen: dict[str, int] = {}

    def keep(act: Tensor, hook: HookPoint) -> None:
        seen["width"] = int(torch.tensor(act.shape[2:]).prod())

    tok = torch.zeros((1, 2), dtype=torch.long, device=model.cfg.device)
    with torch.inference_mode():
        model.run_with_hooks(tok, fwd_hooks=[(name, keep)], stop_at_layer=stop_layer([name], model.cfg.n_layers))
    return seen["width"]


HookFn = Callable[["Tensor", "HookPoint"], "Tensor | None"]
"""A TransformerLens forward hook: (activation, hook point) -> the activation to use instead, or None to
keep it. Hooks that bind loop variables as defaults (`def hook(act, hook, h=h)`) still match."""

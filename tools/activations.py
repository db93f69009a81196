"""Harvest activations at chosen hooks: the one path every tool uses.

Only the requested positions are kept (gathered inside the hook, so the full
[batch, pos, d] tensor is never cached), the forward pass stops after the
deepest requested layer, and large harvests stream to .npy files on disk.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from tools.base import ToolInput, ToolResult, measure
from tools.cost import Meter
from tools.errors import UserError
from tools.estimate import padded
from tools.hooks import check_hook, stop_layer
from tools.prompts import Encoded, encode
from tools.spec import ToolSpec

if TYPE_CHECKING:
    from torch import Tensor
    from transformer_lens import HookedTransformer
    from transformer_lens.hook_points import HookPoint

    from tools.target import Target

Positions = Literal["last", "all"]


@dataclass
class Harvest:
    """Activations at each hook, one row per kept (prompt, position)."""

    acts: dict[str, Tensor]
    """hook -> [rows, *hook_shape] (a memory-mapped array when streamed to disk)."""
    prompt_index: Tensor
    """[rows] which prompt each row came from."""
    position: Tensor
    """[rows] which position in that prompt."""


def _rows(enc: Encoded, positions: Positions) -> tuple[Tensor, Tensor]:
    """(prompt index, position) of every row the harvest keeps."""
    import torch

    if positions == "last":
        return torch.arange(len(enc.prompts)), enc.last.cpu()
    mask = enc.real_mask().cpu()
    b, p = mask.nonzero(as_tuple=True)
    return b, p


def harvest(
    model: HookedTransformer,
    enc: Encoded,
    hooks: list[str],
    positions: Positions = "last",
    batch_size: int = 64,
    meter: Meter | None = None,
    out: Path | None = None,
) -> Harvest:
    """Activations of `enc` at `hooks`, at the last or every real position."""
    import numpy as np
    import torch

    for h in hooks:
        check_hook(model, h)
        if h.endswith(("hook_pattern", "hook_attn_scores")):
            # [batch, head, query, key]: no one vector per position to keep (indexing it as [batch, pos] crashed)
            raise UserError(
                f"{h} holds attention over key positions ([batch, head, query, key]), not a vector per position: "
                "use the `attention` tool for attention patterns, or a head's output (attn.hook_z) here"
            )
    meter = meter or Meter()
    prompt_index, position = _rows(enc, positions)
    n_rows = len(prompt_index)
    stop = stop_layer(hooks, model.cfg.n_layers)
    store: dict[str, Any] = {}  # a torch tensor, or a numpy memmap when streaming to `out`
    row0 = 0
    for start in range(0, len(enc.prompts), batch_size):
        tok = enc.tokens[start : start + batch_size]
        lens = enc.lengths[start : start + batch_size]
        if positions == "last":
            bi = torch.arange(len(tok), device=tok.device)
            pi = lens - 1
        else:
            mask = torch.arange(tok.shape[1], device=tok.device)[None] < lens[:, None]
            bi, pi = mask.nonzero(as_tuple=True)
        got: dict[str, Tensor] = {}

        def keep(act: Tensor, hook: HookPoint, bi: Tensor = bi, pi: Tensor = pi, got: dict[str, Tensor] = got) -> None:
            got[hook.name] = act[bi, pi].detach().float().cpu()

        meter.run(model, tok, [(h, keep) for h in hooks], stop_at_layer=stop)
        for h in hooks:
            a = got[h]
            if not torch.isfinite(a).all():
                raise UserError(f"activations at {h} contain NaN or inf; check the model and its inputs")
            if h not in store:
                if out is not None:
                    out.mkdir(parents=True, exist_ok=True)
                    store[h] = np.lib.format.open_memmap(
                        out / f"{h}.npy", mode="w+", dtype=np.float32, shape=(n_rows, *a.shape[1:])
                    )
                else:
                    store[h] = torch.empty((n_rows, *a.shape[1:]))
            target = store[h]
            target[row0 : row0 + len(a)] = a.numpy() if out is not None else a
        row0 += len(bi)
    if out is not None:
        for h in hooks:
            store[h].flush()
        np.save(out / "prompt_index.npy", prompt_index.numpy())
        np.save(out / "position.npy", position.numpy())
        store = {h: torch.from_numpy(np.load(out / f"{h}.npy", mmap_mode="c")) for h in hooks}
    return Harvest(store, prompt_index, position)


class ActivationsInput(ToolInput):
    """Harvest activations of a prompt set at some hooks."""

    prompts: list[str]
    """Prompts to run."""
    hooks: list[str] = Field(min_length=1)
    """TransformerLens hook names, e.g. blocks.1.hook_resid_post."""
    positions: Positions = "last"
    """Keep each prompt's last real position, or every real position."""
    batch_size: int = Field(64, ge=1, le=4096)
    """Prompts per forward pass."""
    out: str | None = None
    """Folder to stream one .npy per hook into (for harvests larger than memory)."""


class HookStats(ToolInput):
    """Summary of the activations at one hook."""

    shape: list[int]
    """[rows, *hook dims]."""
    mean_norm: float
    """Mean L2 norm of a row."""
    path: str | None
    """The .npy file, when streamed to disk."""


class ActivationsResult(ToolResult):
    """Shapes and norms of what was harvested."""

    hooks: dict[str, HookStats]
    """Per hook."""
    rows: int = measure(0)
    """Rows per hook."""


def run(target: Target, inp: ActivationsInput) -> ActivationsResult:
    meter = Meter()
    enc = encode(target.model, inp.prompts)
    out = Path(inp.out) if inp.out else None
    h = harvest(target.model, enc, inp.hooks, inp.positions, inp.batch_size, meter, out)
    stats = {
        name: HookStats(
            shape=list(a.shape),
            mean_norm=round(float(a.flatten(1).norm(dim=1).mean()), 4),
            path=str(out / f"{name}.npy") if out else None,
        )
        for name, a in h.acts.items()
    }
    rows = len(h.prompt_index)
    return ActivationsResult(
        tool="activations",
        summary=f"harvested {rows} rows at {len(stats)} hook(s)",
        cost=meter.cost(),
        hooks=stats,
        rows=rows,
    )


def estimate(t: Target, inp: ActivationsInput) -> int:
    """Forward tokens a call costs (the Meter charges the same)."""
    return padded(t.model, inp.prompts)


SPEC = ToolSpec(
    name="activations",
    input_model=ActivationsInput,
    result_model=ActivationsResult,
    run=run,
    estimate=estimate,
    tier="observational",
)

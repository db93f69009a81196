"""Behaviour metrics shared by every tool, measured at each prompt's last real position.

    logit_diff   logit[token] - logit[versus]
    prob         softmax probability of token
    rate         1 if the argmax is token else 0 (averaged: the behaviour rate)
    loss         mean next-token cross-entropy over the prompt's real positions
    copy         in-context copying (induction): at every position whose token occurred
                 earlier, 1 if the argmax is the token that followed that occurrence;
                 averaged over those positions. Needs prompts that repeat (a sequence twice).
    copy_logprob the same positions, scored by the log-probability of the token to copy: a smooth
                 version of `copy` with a gradient (what attribution needs)

Gradients: logit_diff, prob, loss and copy_logprob are differentiable in the logits; rate and
copy threshold the argmax and are not (`has_gradient`).

`token` applies to every prompt; `tokens` gives one per prompt (e.g. each
prompt's own expected answer). Likewise `versus` / `versus_tokens`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from pydantic import ConfigDict

from tools.base import Record
from tools.errors import UserError
from tools.prompts import Encoded, token_id

if TYPE_CHECKING:
    from torch import Tensor
    from transformer_lens import HookedTransformer


class Metric(Record):
    """What behaviour to measure."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    kind: Literal["logit_diff", "prob", "rate", "loss", "copy", "copy_logprob"]
    """logit_diff, prob, rate (share of prompts whose argmax is the token), loss, copy (in-context copying),
    or copy_logprob (log-probability of the token to copy; differentiable)."""
    token: str | None = None
    """The token of interest, for every prompt."""
    tokens: list[str] | None = None
    """One token of interest per prompt (instead of `token`)."""
    versus: str | None = None
    """logit_diff only: the token compared against, for every prompt."""
    versus_tokens: list[str] | None = None
    """logit_diff only: one comparison token per prompt."""

    def describe(self) -> str:
        tok = self.token or ("each prompt's answer" if self.tokens else "")
        if self.kind == "logit_diff":
            return f"logit[{tok}] - logit[{self.versus or 'its alternative'}]"
        return {
            "prob": f"P({tok})",
            "rate": f"rate(argmax = {tok})",
            "loss": "next-token loss",
            "copy": "copy rate at repeated tokens",
            "copy_logprob": "log-prob of the copied token at repeated tokens",
        }[self.kind]

    def has_gradient(self) -> bool:
        """Whether the metric is differentiable in the logits (rate and copy threshold the argmax)."""
        return self.kind not in ("rate", "copy")


@dataclass
class MetricValue:
    """A metric over a prompt set."""

    mean: float
    """Mean over prompts."""
    sem: float
    """Standard error of the mean."""
    n: int
    """Prompts."""


def copy_targets(tokens: list[int]) -> list[tuple[int, int, int]]:
    """(position, source, expected token) wherever a token repeats: an induction head at
    `position` attends to `source`, the position after the latest earlier occurrence, and
    copies its token. The source must lie before `position`, else there is nothing to copy."""
    seen: dict[int, int] = {}
    out = []
    for i, t in enumerate(tokens):
        if t in seen and seen[t] + 1 < i:
            out.append((i, seen[t] + 1, tokens[seen[t] + 1]))
        seen[t] = i
    return out


def _ids(
    model: HookedTransformer, one: str | None, many: list[str] | None, n: int, name: str, many_name: str
) -> Tensor | None:
    import torch

    if one is not None and many is not None:
        raise UserError(f"metric: give `{name}` (every prompt) or `{many_name}` (one per prompt), not both")
    if many is not None:
        if len(many) != n:
            raise UserError(f"metric: {len(many)} per-prompt tokens for {n} prompts; give one per prompt")
        return torch.tensor([token_id(model, t, f"metric token #{i}") for i, t in enumerate(many)])
    if one is not None:
        return torch.full((n,), token_id(model, one, "metric token"))
    return None


class BoundMetric:
    """A metric with its token ids resolved for one prompt set."""

    def __init__(
        self,
        metric: Metric,
        model: HookedTransformer,
        enc: Encoded,
        target_ids: Tensor | None = None,
        versus_ids: Tensor | None = None,
    ):
        """`target_ids` / `versus_ids` bypass the token strings (ids read off a run: no re-tokenizing)."""
        n = len(enc.prompts)
        self.metric, self.enc = metric, enc
        if target_ids is None:
            target_ids = _ids(model, metric.token, metric.tokens, n, "token", "tokens")
        if versus_ids is None:
            versus_ids = _ids(model, metric.versus, metric.versus_tokens, n, "versus", "versus_tokens")
        self.target, self.versus = target_ids, versus_ids
        self.copies: list[list[tuple[int, int, int]]] = []
        if metric.kind in ("copy", "copy_logprob"):
            for i, n in enumerate(enc.lengths.tolist()):
                self.copies.append(copy_targets(enc.tokens[i, :n].tolist()))
                if not self.copies[-1]:
                    raise UserError(
                        f"metric copy: prompt #{i} has no repeated token to copy; give prompts "
                        "that repeat a sequence (e.g. 'a b c d a b c')"
                    )
        if metric.kind not in ("loss", "copy", "copy_logprob") and self.target is None:
            raise UserError(f"metric {metric.kind} needs `token` (or per-prompt `tokens`)")
        if metric.kind == "logit_diff" and self.versus is None:
            raise UserError("metric logit_diff needs `versus` (or per-prompt `versus_tokens`)")
        device = enc.tokens.device
        self.target = None if self.target is None else self.target.to(device)
        self.versus = None if self.versus is None else self.versus.to(device)

    def per_prompt(self, logits: Tensor) -> Tensor:
        """float [batch]: the metric of each prompt from full-sequence logits."""
        import torch
        import torch.nn.functional as F

        if not torch.isfinite(logits).all():
            raise UserError("the model produced NaN or infinite logits (an intervention too large?)")
        rows = torch.arange(logits.shape[0], device=logits.device)
        last = logits[rows, self.enc.last].float()
        k = self.metric.kind
        if k == "logit_diff":
            return last[rows, self.target] - last[rows, self.versus]
        if k == "prob":
            return last.softmax(-1)[rows, self.target]
        if k == "rate":
            return (last.argmax(-1) == self.target).float()
        if k == "copy":
            pred = logits.argmax(-1).cpu()
            return torch.tensor(
                [sum(int(pred[b, i] == t) for i, _, t in row) / len(row) for b, row in enumerate(self.copies)],
                device=logits.device,
            )
        if k == "copy_logprob":
            out = []
            for b, row in enumerate(self.copies):
                pos = torch.tensor([i for i, _, _ in row], device=logits.device)
                want = torch.tensor([t for _, _, t in row], device=logits.device)
                out.append(logits[b, pos].float().log_softmax(-1)[torch.arange(len(row)), want].mean())
            return torch.stack(out)
        ce = F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), self.enc.tokens[:, 1:].flatten(), reduction="none")
        mask = self.enc.real_mask()[:, 1:].to(logits.device).float()
        return (ce.view_as(mask) * mask).sum(1) / mask.sum(1).clamp(min=1)

    def value(self, logits: Tensor) -> MetricValue:
        v = self.per_prompt(logits)
        n = len(v)
        sem = float(v.std(unbiased=True)) / math.sqrt(n) if n > 1 else 0.0
        return MetricValue(mean=float(v.mean()), sem=sem, n=n)

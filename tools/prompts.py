"""Prompt sets -> right-padded token batches, with each prompt's last real position.

Right padding keeps every real position's activations exact in a causal model
(nothing attends forward), so prompts of different lengths share one batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from jaxtyping import Int

from tools.errors import UserError

if TYPE_CHECKING:
    from torch import Tensor
    from transformer_lens import HookedTransformer


@dataclass
class Encoded:
    """A tokenized prompt set."""

    tokens: Int[Tensor, "batch pos"]
    """Right-padded token ids."""
    lengths: Int[Tensor, " batch"]
    """Real tokens per prompt (BOS included)."""
    prompts: list[str]
    """The prompts, in order."""

    @property
    def last(self) -> Int[Tensor, " batch"]:
        """Index of each prompt's last real token."""
        return self.lengths - 1

    def real_mask(self) -> Tensor:
        """bool [batch, pos]: True on real (non-pad) positions."""
        import torch

        return torch.arange(self.tokens.shape[1], device=self.lengths.device)[None, :] < self.lengths[:, None]


def check_prompts(prompts: list[str], what: str = "prompts") -> None:
    """Non-empty list of non-empty strings."""
    if not prompts:
        raise UserError(f"{what} is empty: give at least one prompt")
    for i, p in enumerate(prompts):
        if not isinstance(p, str) or not p.strip():
            raise UserError(f"{what}[{i}] is empty: every prompt needs text")


def encode(model: HookedTransformer, prompts: list[str], what: str = "prompts") -> Encoded:
    """Tokenize with the model's own BOS convention, reject unknown tokens and over-long prompts."""
    import torch

    check_prompts(prompts, what)
    tok = model.tokenizer
    rows = []
    for i, p in enumerate(prompts):
        ids = model.to_tokens(p, truncate=False)[0]
        if tok.unk_token_id is not None and tok.unk_token not in p and (ids == tok.unk_token_id).any():
            bad = [w for w in p.split() if tok.convert_tokens_to_ids(w) == tok.unk_token_id]
            raise UserError(
                f"{what}[{i}] has tokens the model does not know: {', '.join(bad[:5])}. "
                f"Vocabulary: `interp model info SPEC --json` or the tokenizer of the model"
            )
        if len(ids) > model.cfg.n_ctx:
            raise UserError(f"{what}[{i}] is {len(ids)} tokens; the model's context is {model.cfg.n_ctx}")
        rows.append(ids)
    lengths = torch.tensor([len(r) for r in rows])
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    tokens = torch.full((len(rows), int(lengths.max())), pad, dtype=torch.long)
    for i, r in enumerate(rows):
        tokens[i, : len(r)] = r
    return Encoded(tokens.to(model.cfg.device), lengths.to(model.cfg.device), list(prompts))


def token_id(model: HookedTransformer, token: str, what: str = "token") -> int:
    """The id of a string that must be exactly one token."""
    ids = model.to_tokens(token, prepend_bos=False)[0]
    tok = model.tokenizer
    if len(ids) != 1 or (tok.unk_token_id is not None and ids[0] == tok.unk_token_id and token != tok.unk_token):
        raise UserError(
            f"{what} {token!r} is not a single token of this model (it tokenizes to {len(ids)} "
            f"pieces{' or is unknown' if len(ids) == 1 else ''})"
        )
    return int(ids[0])

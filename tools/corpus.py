"""Where a tool's corpus comes from: given prompts, a text file, or random token sequences."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import ConfigDict, Field

from tools.base import Record, Seed
from tools.errors import UserError
from tools.files import read_text_file

if TYPE_CHECKING:
    from transformer_lens import HookedTransformer


class CorpusSpec(Record):
    """A corpus: exactly one of prompts, file, or random sequences (the default)."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    prompts: list[str] | None = None
    """The prompts themselves."""
    file: str | None = None
    """A text file, one prompt per line (blank lines skipped)."""
    random: int | None = Field(None, ge=1, le=1_000_000)
    """This many random sequences of the model's non-special tokens (default 2000 when nothing is given)."""
    length: int = Field(16, ge=1)
    """Tokens per random sequence (capped to the model's context)."""
    seed: Seed = 0
    """Seeds the random sequences."""


def resolve_corpus(model: HookedTransformer, spec: CorpusSpec) -> list[str]:
    given = [spec.prompts is not None, spec.file is not None, spec.random is not None]
    if sum(given) > 1:
        raise UserError("corpus: give one of prompts, file or random")
    if spec.prompts is not None:
        return spec.prompts
    if spec.file is not None:
        text = read_text_file(spec.file, "corpus file", "one text per line")
        lines = [line for line in text.splitlines() if line.strip()]
        if not lines:
            raise UserError(f"corpus file {spec.file} has no non-blank lines")
        return lines
    return random_sequences(model, spec.random or 2000, spec.length, spec.seed)


def random_sequences(model: HookedTransformer, n: int, length: int, seed: int) -> list[str]:
    """Uniformly random sequences over the vocabulary minus special tokens."""
    import numpy as np

    tok = model.tokenizer
    special = set(tok.all_special_ids)
    pool = np.array([i for i in range(model.cfg.d_vocab) if i not in special and i < len(tok)])
    length = max(1, min(length, model.cfg.n_ctx - 1))
    rng = np.random.default_rng(seed)
    ids = rng.choice(pool, size=(n, length))
    return [tok.decode(row.tolist()) for row in ids]

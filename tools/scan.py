"""Insertion scan: which inserted tokens (or token pairs) change the model's answer?

A behavioural search for hidden triggers and context markers. Each candidate
is inserted into every prompt at the same position (drawn once per prompt, so
all candidates face the same contexts) and the last-position argmax is compared
with the unmodified prompt's. A trigger shows up as a high change rate with
one fixed new answer; a context marker as a high change rate with answers that
depend on the prompt. The control is what inserting a typical token does: the
median candidate in a sweep, or random insertions of the same length when the
insertions are given.
"""

from __future__ import annotations

import statistics
from collections import Counter
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from tools.base import Record, Seed, ToolInput, ToolResult, measure
from tools.cost import Meter
from tools.deadline import DeadlineReached
from tools.errors import UserError
from tools.prompts import encode, token_id

if TYPE_CHECKING:
    from transformer_lens import HookedTransformer

    from tools.target import Target

MAX_INSERTIONS = 20_000


class ScanInput(ToolInput):
    """Insert tokens or token pairs into prompts and rank them by how often they change the answer."""

    prompts: list[str]
    """Prompts to insert into (each keeps its last token last)."""
    insertions: list[list[str]] | None = None
    """Token sequences to test, each inserted as a block; default: sweep `candidates`."""
    candidates: list[str] | None = None
    """Tokens to sweep (default: every non-special token, for vocabularies up to 4096)."""
    n_tokens: Literal[1, 2] = 1
    """Sweep single tokens, or every ordered pair of distinct candidates inserted side by side."""
    mode: Literal["replace", "insert"] = "replace"
    """replace: overwrite tokens (prompt lengths unchanged, as in most training data); insert: add them."""
    n_random: int = Field(20, ge=1, le=200)
    """With `insertions`: random insertions of the same length averaged as the control."""
    top: int = Field(10, ge=1, le=100)
    """Sweep results reported, highest change rate first."""
    seed: Seed = 0
    """Seeds the insertion positions and the random control."""


class Insertion(Record):
    """What one inserted block did."""

    tokens: list[str]
    """The inserted tokens, in order."""
    change_rate: float
    """Share of prompts whose next-token argmax changed."""
    top_output: str
    """Most common argmax after insertion, among prompts that changed (or all, when none did)."""
    top_output_rate: float
    """Share of all prompts answering `top_output` after insertion."""
    base_output_rate: float
    """Share of prompts answering `top_output` without the insertion."""
    outputs: list[str]
    """Argmax per prompt after insertion."""
    inserted_prompts: list[str]
    """The prompts with the block inserted (aligned with `prompts`)."""


class ScanResult(ToolResult):
    """Insertions ranked by how often they change the answer."""

    base_outputs: list[str]
    """Argmax per prompt without insertion."""
    positions: list[int]
    """Token index (BOS counted) where each prompt received its block."""
    n_scanned: int = measure(0)
    """Insertions run (controls excluded)."""
    top: list[Insertion]
    """Given insertions in order, or the sweep's highest change rates."""
    effect: float = measure(0, 1)
    """Change rate of the first insertion in `top`."""
    output_rate: float = measure(0, 1)
    """Share of prompts answering its `top_output`."""
    control: float = measure(0, 1, versus_control=True)
    """Change rate of a typical insertion: median of the sweep, or mean of the random insertions."""
    control_output_rate: float = measure(0, 1, versus_control=True)
    """Share of prompts answering the first insertion's `top_output` under the control insertions."""


def _pool(model: HookedTransformer) -> list[int]:
    tok = model.tokenizer
    special = set(tok.all_special_ids)
    return [i for i in range(min(model.cfg.d_vocab, len(tok))) if i not in special]


def sweeps(inp: ScanInput) -> bool:
    """A sweep (no explicit insertions, so no controls) can stop part-way and report the blocks it did."""
    return inp.insertions is None


def _blocks(model: HookedTransformer, inp: ScanInput) -> list[list[int]]:
    if inp.insertions is not None:
        if not inp.insertions or any(not b for b in inp.insertions):
            raise UserError("insertions: give at least one non-empty token list")
        return [[token_id(model, t, f"insertions[{i}]") for t in b] for i, b in enumerate(inp.insertions)]
    if inp.candidates is not None:
        if not inp.candidates:
            raise UserError("candidates is empty: give tokens to sweep, or omit it to sweep the vocabulary")
        pool = [token_id(model, t, "candidate") for t in dict.fromkeys(inp.candidates)]
    else:
        pool = _pool(model)
        if len(pool) > 4096:
            raise UserError(f"the vocabulary has {len(pool)} tokens; give `candidates` (at most 4096) to sweep")
    blocks = [[a] for a in pool] if inp.n_tokens == 1 else [[a, b] for a in pool for b in pool if a != b]
    if len(blocks) > MAX_INSERTIONS:
        raise UserError(f"{len(blocks)} insertions exceeds {MAX_INSERTIONS}; narrow `candidates`")
    return blocks


def positions_for(lengths: list[int], n_tok: int, mode: str, seed: int) -> list[int]:
    """One index per prompt, after BOS; the block never covers or follows the last token."""
    import numpy as np

    rng = np.random.default_rng([seed, 7])
    hi = [n if mode == "insert" else n - n_tok for n in lengths]  # exclusive upper bound
    for i, h in enumerate(hi):
        if h <= 1:
            raise UserError(f"prompts[{i}] is too short to {mode} {n_tok} token(s) before its last token")
    return [int(rng.integers(1, h)) for h in hi]


def _random_blocks(model: HookedTransformer, length: int, n: int, avoid: set[int], seed: int) -> list[list[int]]:
    import numpy as np

    pool = [i for i in _pool(model) if i not in avoid]
    rng = np.random.default_rng([seed, 11])
    return [rng.choice(pool, size=length, replace=False).tolist() for _ in range(n)]


def _argmax_after(model, meter: Meter, rows: list, positions: list[int], blocks: list[list[int]],
                  n_tok: int, pad: int, mode: str, partial_ok: bool = False) -> list[list[int]]:
    """Argmax at the last position of every prompt with every block placed; [block][prompt].
    With `partial_ok`, a deadline reached part-way returns the blocks finished so far (at least one)."""
    import torch

    grow = n_tok if mode == "insert" else 0
    width = max(len(r) for r in rows) + grow
    P = len(rows)
    grid = torch.full((len(blocks), P, width), pad, dtype=torch.long)
    ins = torch.tensor(blocks, dtype=torch.long)
    last = []
    for i, (r, p) in enumerate(zip(rows, positions)):
        grid[:, i, :p] = r[:p]
        grid[:, i, p : p + n_tok] = ins
        grid[:, i, p + n_tok : len(r) + grow] = r[p + n_tok - grow :]
        last.append(len(r) + grow - 1)
    flat = grid.reshape(-1, width).to(model.cfg.device)
    last_t = torch.tensor(last * len(blocks), device=flat.device)
    # Bound the logits tensor (batch x width x vocab floats) to ~256 MB, and each pass to ~8k tokens so the
    # deadline is checked often (one pass over every block of a pair sweep can take longer than a budget).
    per_batch = max(1, min((1 << 26) // (width * model.cfg.d_vocab), (1 << 13) // width))
    out = []
    try:
        for s in range(0, len(flat), per_batch):
            logits = meter.run(model, flat[s : s + per_batch])
            idx = torch.arange(logits.shape[0], device=logits.device)
            out.append(logits[idx, last_t[s : s + per_batch]].argmax(-1).cpu())
    except DeadlineReached:
        done = sum(len(o) for o in out) // P
        if not partial_ok or done == 0:
            raise
        return torch.cat(out)[: done * P].reshape(done, P).tolist()
    return torch.cat(out).reshape(len(blocks), P).tolist()


def run(target: Target, inp: ScanInput) -> ScanResult:
    import torch

    model = target.model
    meter = Meter()
    enc = encode(model, inp.prompts)
    blocks = _blocks(model, inp)
    n_tok = len(blocks[0])
    if any(len(b) != n_tok for b in blocks):
        raise UserError("insertions must all have the same number of tokens (scan them in separate calls)")
    lengths = enc.lengths.tolist()
    if inp.mode == "insert" and max(lengths) + n_tok > model.cfg.n_ctx:
        raise UserError(f"prompts of {max(lengths)} tokens plus {n_tok} inserted exceed the context "
                        f"{model.cfg.n_ctx}; use mode 'replace' or shorter prompts")
    rows = [enc.tokens[i, :n].cpu() for i, n in enumerate(lengths)]
    positions = positions_for(lengths, n_tok, inp.mode, inp.seed)
    pad = model.tokenizer.pad_token_id if model.tokenizer.pad_token_id is not None else 0
    idx = torch.arange(len(rows), device=enc.tokens.device)
    base = meter.run(model, enc.tokens)[idx, enc.last].argmax(-1).tolist()
    explicit = inp.insertions is not None
    controls = _random_blocks(model, n_tok, inp.n_random, {t for b in blocks for t in b}, inp.seed) if explicit else []
    # A sweep stopped at its deadline still reports the blocks it finished; a test with controls does not
    # (its controls come last, and a comparison without them means nothing).
    after = _argmax_after(model, meter, rows, positions, blocks + controls, n_tok, pad, inp.mode,
                          partial_ok=not explicit)
    asked = len(blocks)
    blocks = blocks[: len(after)]
    tested, ctrl = after[: len(blocks)], after[len(blocks):]
    name = model.to_single_str_token

    def summarise(block: list[int], outs: list[int]) -> Insertion:
        changed = [o for o, b in zip(outs, base) if o != b]
        top_id = Counter(changed or outs).most_common(1)[0][0]
        inserted = []
        for r, p in zip(rows, positions):
            skip = n_tok if inp.mode == "replace" else 0
            ids = r[:p].tolist() + block + r[p + skip :].tolist()
            inserted.append(model.tokenizer.decode(ids[1:] if model.cfg.default_prepend_bos else ids))
        return Insertion(
            tokens=[name(t) for t in block], change_rate=round(len(changed) / len(outs), 4),
            top_output=name(top_id), top_output_rate=round(outs.count(top_id) / len(outs), 4),
            base_output_rate=round(base.count(top_id) / len(base), 4),
            outputs=[name(o) for o in outs], inserted_prompts=inserted)

    rates = [sum(o != b for o, b in zip(outs, base)) / len(base) for outs in tested]
    if explicit:
        order = list(range(len(blocks)))
    else:
        order = sorted(range(len(blocks)), key=lambda j: -rates[j])[: inp.top]
    top = [summarise(blocks[j], tested[j]) for j in order]
    first = top[0]
    first_id = token_id(model, first.top_output)
    if explicit:
        control = statistics.fmean(sum(o != b for o, b in zip(outs, base)) / len(base) for outs in ctrl)
        control_out = statistics.fmean(outs.count(first_id) / len(outs) for outs in ctrl)
    else:
        control = statistics.median(rates)
        control_out = statistics.median(outs.count(first_id) / len(outs) for outs in tested)
    return ScanResult(
        tool="scan",
        summary=(f"{len(blocks)} insertion(s) of {n_tok} token(s) into {len(rows)} prompts: "
                 f"{' '.join(first.tokens)} changes {first.change_rate:.0%} of answers "
                 f"(to {first.top_output!r} in {first.top_output_rate:.0%}); typical insertion {control:.0%}"
                 + (f"; stopped at the deadline after {len(blocks)} of {asked} insertions" if len(blocks) < asked
                    else "")),
        cost=meter.cost(), partial=len(blocks) < asked, base_outputs=[name(b) for b in base], positions=positions, n_scanned=len(blocks),
        top=top, effect=first.change_rate, output_rate=first.top_output_rate, control=round(control, 4),
        control_output_rate=round(control_out, 4),
    )

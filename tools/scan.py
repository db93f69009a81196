"""Insertion scan: which inserted tokens (or token sequences) change the model's answer?

A behavioural search for hidden triggers and context markers. Each candidate
is inserted into every prompt at the same position (drawn once per prompt, so
all candidates face the same contexts) and the last-position argmax is compared
with the unmodified prompt's. A trigger shows up as a high change rate with
one fixed new answer; a context marker as a high change rate with answers that
depend on the prompt. The control is what inserting a typical token does: the
median candidate in a sweep, or random insertions of the same length when the
insertions are given.

Partial evidence counts too: every insertion also reports how far it moves the
output distribution (`shift`, a KL divergence) and the largest rise of one
answer's log-probability (`lift`), so a search can grow longer sequences from the
parts that move the output before any argmax flips (`prefixes`: each sequence
extended by one candidate token, up to four tokens).
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from tools.base import Record, Seed, ToolInput, ToolResult, measure
from tools.cost import Meter
from tools.deadline import DeadlineReached
from tools.errors import UserError
from tools.estimate import lengths
from tools.prompts import encode, token_id
from tools.spec import ToolSpec

if TYPE_CHECKING:
    from jaxtyping import Float
    from torch import Tensor
    from transformer_lens import HookedTransformer

    from tools.target import Target

MAX_INSERTIONS = 20_000


class ScanInput(ToolInput):
    """Insert tokens or token pairs into prompts and rank them by how often they change the answer."""

    prompts: list[str]
    """Prompts to insert into (each keeps its last token last)."""
    insertions: list[list[str]] | None = None
    """Token sequences to test, each inserted as a block; default: sweep `candidates`. Lengths may differ (a
    sequence and its shorter subsequences): each length gets its own positions, the controls the first's length."""
    candidates: list[str] | None = None
    """Tokens to sweep (default: every non-special token, for vocabularies up to 4096)."""
    n_tokens: Literal[1, 2, 3, 4] = 1
    """Length of the swept blocks. Without `prefixes`: 1 sweeps single tokens, 2 every ordered pair of distinct
    candidates. With `prefixes` (each of n_tokens - 1 tokens): every prefix grown by one candidate."""
    prefixes: list[list[str]] | None = None
    """Token sequences to grow by one token (a beam search for longer sequences): each candidate not already in a
    sequence is appended to it and, as `extend` says, also placed before it or anywhere in it (one block each)."""
    extend: Literal["append", "both", "anywhere"] = "both"
    """Where a candidate joins a prefix: after it only; after or before it; or at any place, between its tokens too
    (a sequence with a gap where the missing token goes)."""
    rank_by: Literal["change_rate", "shift", "lift"] = "change_rate"
    """What ranks a sweep's `top`: how often the argmax changes, how far the output distribution moves (`shift`),
    or the largest rise of one answer's log-probability (`lift`: partial evidence of a forcing sequence
    before any flip)."""
    mode: Literal["replace", "insert"] = "replace"
    """replace: overwrite tokens (prompt lengths unchanged, as in most training data); insert: add them."""
    keep_leading: int = Field(0, ge=0, le=64)
    """Tokens at the start of each prompt (after BOS) a block never covers or precedes: 1 keeps the first token,
    which often sets the task (a lookup's subject), so an insertion cannot change the answer by overwriting it."""
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
    shift: float
    """Mean KL divergence (nats) of the last position's next-token distribution without the insertion from the
    one with it: how far the insertion moves the output, whether or not the argmax flips."""
    lift: float
    """Rise of `lift_output`'s log-probability (nats) at the last position, averaged over prompts: the largest of
    any token. Partial evidence of one fixed answer: part of a trigger raises it well before any argmax flips."""
    lift_output: str
    """The token whose log-probability rises most on average."""
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
    others_output_rate: float = measure(0, 1)
    """Largest share of prompts that any later insertion in `top` sends to the first one's `top_output` (with one
    insertion: the share without any). Given the first insertion's one-token-shorter subsequences after it, a low
    value says none of them forces the answer: the first is minimal."""
    others_change_rate: float = measure(0, 1)
    """Largest change rate of any later insertion in `top` (with one insertion: 0, what no insertion changes).
    Given the first insertion's one-token-shorter subsequences after it, a low value says it is minimal."""
    output_lead: float = measure(-1, 1)
    """`output_rate` - `others_output_rate`: how many more prompts the first insertion sends to its answer than any
    later one. Given its one-token-shorter subsequences after it, above zero when each of its tokens adds to it."""
    change_lead: float = measure(-1, 1)
    """`effect` - `others_change_rate`: the same lead for changed answers (a minimal context marker)."""


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
        if inp.prefixes is not None:
            raise UserError("give either insertions (tested as given) or prefixes (grown by one candidate), not both")
        return [[token_id(model, t, f"insertions[{i}]") for t in b] for i, b in enumerate(inp.insertions)]
    if inp.prefixes is None and inp.n_tokens > 2:
        raise UserError(
            f"n_tokens {inp.n_tokens} sweeps grow given sequences: give `prefixes` of "
            f"{inp.n_tokens - 1} tokens each (or n_tokens 1 or 2 to sweep single tokens or pairs)"
        )
    if inp.candidates is not None:
        if not inp.candidates:
            raise UserError("candidates is empty: give tokens to sweep, or omit it to sweep the vocabulary")
        pool = [token_id(model, t, "candidate") for t in dict.fromkeys(inp.candidates)]
    else:
        pool = _pool(model)
        if len(pool) > 4096:
            raise UserError(f"the vocabulary has {len(pool)} tokens; give `candidates` (at most 4096) to sweep")
    if inp.prefixes is not None:
        blocks = _grown(model, inp, pool)
    else:
        blocks = [[a] for a in pool] if inp.n_tokens == 1 else [[a, b] for a in pool for b in pool if a != b]
    if len(blocks) > MAX_INSERTIONS:
        raise UserError(f"{len(blocks)} insertions exceeds {MAX_INSERTIONS}; narrow `candidates`")
    return blocks


def _grown(model: HookedTransformer, inp: ScanInput, pool: list[int]) -> list[list[int]]:
    """Every prefix with one candidate after it (and before it), each block once."""
    prefixes = inp.prefixes or []
    if not prefixes:
        raise UserError("prefixes is empty: give token sequences to grow, or omit it to sweep")
    want = inp.n_tokens - 1
    for i, p in enumerate(prefixes):
        if len(p) != want:
            raise UserError(
                f"prefixes[{i}] has {len(p)} token(s) and n_tokens is {inp.n_tokens}: every prefix "
                f"must have n_tokens - 1 = {want} (set n_tokens to {len(p) + 1} to grow it)"
            )
    ids = [[token_id(model, t, f"prefixes[{i}]") for t in p] for i, p in enumerate(prefixes)]
    blocks: dict[tuple[int, ...], None] = {}
    for prefix in ids:
        n = len(prefix)
        places = {"append": [n], "both": [n, 0], "anywhere": range(n, -1, -1)}[inp.extend]
        for c in pool:
            if c in prefix:
                continue
            for i in places:
                blocks[(*prefix[:i], c, *prefix[i:])] = None
    return [list(b) for b in blocks]


def positions_for(lengths: list[int], n_tok: int, mode: str, seed: int, keep_leading: int = 0) -> list[int]:
    """One index per prompt, after BOS and the `keep_leading` tokens after it; the block never covers or
    follows the last token."""
    import numpy as np

    rng = np.random.default_rng([seed, 7])
    lo = 1 + keep_leading
    hi = [n if mode == "insert" else n - n_tok for n in lengths]  # exclusive upper bound
    for i, h in enumerate(hi):
        if h <= lo:
            kept = f" after its first {keep_leading} token(s)" if keep_leading else ""
            raise UserError(f"prompts[{i}] is too short to {mode} {n_tok} token(s){kept} before its last token")
    return [int(rng.integers(lo, h)) for h in hi]


def _random_blocks(model: HookedTransformer, length: int, n: int, avoid: set[int], seed: int) -> list[list[int]]:
    import numpy as np

    pool = [i for i in _pool(model) if i not in avoid]
    if len(pool) < length:
        # The insertions use (nearly) every token, as a one-token-swap search does: a random block may then share
        # tokens with them, and is still a random block of the same length.
        pool = _pool(model)
    rng = np.random.default_rng([seed, 11])
    return [rng.choice(pool, size=length, replace=False).tolist() for _ in range(n)]


@dataclass
class _Effects:
    """What every block did, [block][prompt] or [block]; blocks in the order placed."""

    argmax: list[list[int]]
    shift: list[float]
    lift: list[float]
    lift_id: list[int]

    def first(self, n: int) -> _Effects:
        return _Effects(self.argmax[:n], self.shift[:n], self.lift[:n], self.lift_id[:n])


def _effects(
    model: HookedTransformer,
    meter: Meter,
    rows: list[Tensor],
    positions: list[int],
    blocks: list[list[int]],
    width: int,
    pad: int,
    mode: str,
    base_logp: Float[Tensor, "prompt vocab"],
    partial_ok: bool = False,
) -> _Effects:
    """Argmax, KL shift and largest probability lift at the last position of every prompt with every block
    (all of one length) placed, in rows `width` tokens wide. With `partial_ok`, a deadline reached part-way
    returns the blocks finished so far (at least one)."""
    import torch

    n_tok = len(blocks[0])
    grow = n_tok if mode == "insert" else 0
    P = len(rows)
    grid = torch.full((len(blocks), P, width), pad, dtype=torch.long)
    ins = torch.tensor(blocks, dtype=torch.long)
    last = []
    for i, (r, p) in enumerate(zip(rows, positions, strict=True)):
        grid[:, i, :p] = r[:p]
        grid[:, i, p : p + n_tok] = ins
        grid[:, i, p + n_tok : len(r) + grow] = r[p + n_tok - grow :]
        last.append(len(r) + grow - 1)
    flat = grid.reshape(-1, width).to(model.cfg.device)
    last_t = torch.tensor(last * len(blocks), device=flat.device)
    base_logp = base_logp.float()
    base_p = base_logp.exp()
    # Bound the logits tensor (batch x width x vocab floats) to ~256 MB, and each pass to ~8k tokens so the
    # deadline is checked often (one pass over every block of a pair sweep can take longer than a budget).
    per_batch = max(1, min((1 << 26) // (width * model.cfg.d_vocab), (1 << 13) // width))
    argmax, shift, lift, lift_id = [], [], [], []
    carry = None  # summed log-probability gains of a block whose prompts straddle two passes
    try:
        for s in range(0, len(flat), per_batch):
            logits = meter.run(model, flat[s : s + per_batch])
            n = logits.shape[0]
            idx = torch.arange(n, device=logits.device)
            logp = logits[idx, last_t[s : s + n]].float().log_softmax(-1)
            prompt = (torch.arange(s, s + n) % P).to(logp.device)
            argmax.append(logp.argmax(-1).cpu())
            shift.append((base_p[prompt] * (base_logp[prompt] - logp)).sum(-1).cpu())
            # Per-block sums of each token's log-probability gain, reduced to the largest as soon as a block is whole,
            # so no [block, vocab] tensor is ever kept (a sweep of a large vocabulary would not fit).
            b0 = s // P
            local = (torch.arange(s, s + n) // P - b0).to(logp.device)
            sums = torch.zeros(int(local[-1]) + 1, logp.shape[1], device=logp.device)
            # Log-probabilities: a part of a trigger lifts its answer from e^-10 to e^-8, invisible as probability.
            sums.index_add_(0, local, logp - base_logp[prompt])
            if carry is not None:
                sums[0] += carry
            whole = (s + n) // P - b0
            if whole:
                best = sums[:whole].max(-1)
                lift += (best.values / P).tolist()
                lift_id += best.indices.tolist()
            carry = sums[whole] if whole < len(sums) else None
    except DeadlineReached:
        if not partial_ok or not lift:
            raise
    done = len(lift)
    flat_argmax = torch.cat(argmax)[: done * P].reshape(done, P).tolist()
    flat_shift = torch.cat(shift)[: done * P].reshape(done, P).mean(-1).tolist()
    return _Effects(flat_argmax, flat_shift, lift, lift_id)


def run(target: Target, inp: ScanInput) -> ScanResult:
    import torch

    model = target.model
    meter = Meter()
    enc = encode(model, inp.prompts)
    blocks = _blocks(model, inp)
    n_tok, widest = len(blocks[0]), max(len(b) for b in blocks)
    lengths = enc.lengths.tolist()
    if inp.mode == "insert" and max(lengths) + widest > model.cfg.n_ctx:
        raise UserError(
            f"prompts of {max(lengths)} tokens plus {widest} inserted exceed the context "
            f"{model.cfg.n_ctx}; use mode 'replace' or shorter prompts"
        )
    rows = [enc.tokens[i, :n].cpu() for i, n in enumerate(lengths)]
    # Blocks of each length get their own positions (a longer one must still end before the last token);
    # `positions` reports the first block's.
    at = {n: positions_for(lengths, n, inp.mode, inp.seed, inp.keep_leading) for n in dict.fromkeys(map(len, blocks))}
    positions = at[n_tok]
    width = max(lengths) + (widest if inp.mode == "insert" else 0)
    pad = model.tokenizer.pad_token_id if model.tokenizer.pad_token_id is not None else 0
    idx = torch.arange(len(rows), device=enc.tokens.device)
    base_logp = meter.run(model, enc.tokens)[idx, enc.last].float().log_softmax(-1)
    base = base_logp.argmax(-1).tolist()
    explicit = inp.insertions is not None
    controls = _random_blocks(model, n_tok, inp.n_random, {t for b in blocks for t in b}, inp.seed) if explicit else []
    # A sweep stopped at its deadline still reports the blocks it finished; a test with controls does not
    # (its controls come last, and a comparison without them means nothing).
    placed = blocks + controls
    if len(at) == 1:
        fx = _effects(model, meter, rows, positions, placed, width, pad, inp.mode, base_logp, partial_ok=not explicit)
    else:  # only given insertions mix lengths, and those never stop part-way
        fx = _Effects([[]] * len(placed), [0.0] * len(placed), [0.0] * len(placed), [0] * len(placed))
        for n, pos in at.items():
            js = [j for j, b in enumerate(placed) if len(b) == n]
            part = _effects(model, meter, rows, pos, [placed[j] for j in js], width, pad, inp.mode, base_logp)
            for k, j in enumerate(js):
                fx.argmax[j], fx.shift[j], fx.lift[j], fx.lift_id[j] = (
                    part.argmax[k],
                    part.shift[k],
                    part.lift[k],
                    part.lift_id[k],
                )
    asked = len(blocks)
    blocks = blocks[: len(fx.lift)]
    tested, ctrl = fx.argmax[: len(blocks)], fx.argmax[len(blocks) :]
    name = model.to_single_str_token

    def summarise(j: int) -> Insertion:
        block, outs = blocks[j], tested[j]
        changed = [o for o, b in zip(outs, base, strict=True) if o != b]
        top_id = Counter(changed or outs).most_common(1)[0][0]
        inserted = []
        for r, p in zip(rows, at[len(block)], strict=True):
            skip = len(block) if inp.mode == "replace" else 0
            ids = r[:p].tolist() + block + r[p + skip :].tolist()
            inserted.append(model.tokenizer.decode(ids[1:] if model.cfg.default_prepend_bos else ids))
        return Insertion(
            tokens=[name(t) for t in block],
            change_rate=round(len(changed) / len(outs), 4),
            top_output=name(top_id),
            top_output_rate=round(outs.count(top_id) / len(outs), 4),
            base_output_rate=round(base.count(top_id) / len(base), 4),
            shift=round(fx.shift[j], 6),
            lift=round(fx.lift[j], 6),
            lift_output=name(fx.lift_id[j]),
            outputs=[name(o) for o in outs],
            inserted_prompts=inserted,
        )

    rates = [sum(o != b for o, b in zip(outs, base, strict=True)) / len(base) for outs in tested]
    if explicit:
        order = list(range(len(blocks)))
    else:
        score = {"change_rate": rates, "shift": fx.shift, "lift": fx.lift}[inp.rank_by]
        order = sorted(range(len(blocks)), key=lambda j: -score[j])[: inp.top]
    top = [summarise(j) for j in order]
    first = top[0]
    first_id = token_id(model, first.top_output)
    # What the later insertions (for a minimality test: the first one's shorter subsequences) still do; with one
    # insertion, what dropping it leaves: the unmodified prompts.
    others_out = max(
        (tested[j].count(first_id) / len(base) for j in order[1:]), default=base.count(first_id) / len(base)
    )
    others_change = max((rates[j] for j in order[1:]), default=0.0)
    if explicit:
        control = statistics.fmean(sum(o != b for o, b in zip(outs, base, strict=True)) / len(base) for outs in ctrl)
        control_out = statistics.fmean(outs.count(first_id) / len(outs) for outs in ctrl)
    else:
        control = statistics.median(rates)
        control_out = statistics.median(outs.count(first_id) / len(outs) for outs in tested)
    return ScanResult(
        tool="scan",
        summary=(
            f"{len(blocks)} insertion(s) of {n_tok} token(s) into {len(rows)} prompts: "
            f"{' '.join(first.tokens)} changes {first.change_rate:.0%} of answers "
            f"(to {first.top_output!r} in {first.top_output_rate:.0%}); typical insertion {control:.0%}"
            + (f"; stopped at the deadline after {len(blocks)} of {asked} insertions" if len(blocks) < asked else "")
        ),
        cost=meter.cost(),
        partial=len(blocks) < asked,
        base_outputs=[name(b) for b in base],
        positions=positions,
        n_scanned=len(blocks),
        top=top,
        effect=first.change_rate,
        output_rate=first.top_output_rate,
        control=round(control, 4),
        control_output_rate=round(control_out, 4),
        others_output_rate=round(others_out, 4),
        others_change_rate=round(others_change, 4),
        output_lead=round(first.top_output_rate - others_out, 4),
        change_lead=round(first.change_rate - others_change, 4),
    )


def estimate(t: Target, inp: ScanInput) -> int:
    """Forward tokens a call costs (the Meter charges the same)."""

    m = t.model
    lens = lengths(m, inp.prompts)
    blocks = _blocks(m, inp)
    n_tok = max(map(len, blocks)) if inp.mode == "insert" else 0  # every block padded to the longest
    runs = len(blocks) + (inp.n_random if inp.insertions is not None else 0)
    # the plain prompts once, then every block (and control) in every prompt at one padded width
    return len(lens) * max(lens) + runs * len(lens) * (max(lens) + n_tok)


SPEC = ToolSpec(
    name="scan",
    input_model=ScanInput,
    result_model=ScanResult,
    run=run,
    estimate=estimate,
    tier="causal",
    partial=sweeps,
)

"""Forward-token cost of a tool call, computed from its input before it runs.

The budget refuses a call whose estimate does not fit; each estimate counts
the same passes the tool's Meter will count (tests hold them equal), using only
tokenization, which is cheap next to a forward pass.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformer_lens import HookedTransformer

    from tools.target import Target


def _lengths(model: HookedTransformer, prompts: list[str] | None) -> list[int]:
    from tools.deadline import check

    out = []
    for i, p in enumerate(prompts or []):
        if i % 256 == 0:
            check("estimating a call's cost")  # tokenising a huge prompt list is work too
        out.append(model.to_tokens(p, truncate=False).shape[1])
    return out


def _padded(model: HookedTransformer, prompts: list[str] | None) -> int:
    """Tokens of the prompt set padded to its longest prompt: what each pass over it is charged
    (the harvest pads the whole set once, then slices batches)."""
    lens = _lengths(model, prompts)
    return len(lens) * max(lens) if lens else 0


def _corpus(model: HookedTransformer, corpus) -> list[str]:
    from tools.corpus import resolve_corpus

    return resolve_corpus(model, corpus)


def predict(t: Target, inp) -> int:
    return _padded(t.model, inp.prompts)


def scan(t: Target, inp) -> int:
    from tools.scan import _blocks

    m = t.model
    lens = _lengths(m, inp.prompts)
    blocks = _blocks(m, inp)
    n_tok = max(map(len, blocks)) if inp.mode == "insert" else 0  # every block padded to the longest
    runs = len(blocks) + (inp.n_random if inp.insertions is not None else 0)
    # the plain prompts once, then every block (and control) in every prompt at one padded width
    return len(lens) * max(lens) + runs * len(lens) * (max(lens) + n_tok)


def activations(t: Target, inp) -> int:
    return _padded(t.model, inp.prompts)


def probe(t: Target, inp) -> int:
    return _padded(t.model, inp.positive + inp.negative)


def steer(t: Target, inp) -> int:
    m = t.model
    n = _padded(m, inp.prompts)
    direction = _padded(m, inp.positive) + _padded(m, inp.negative) if inp.positive else 0
    if inp.sae is not None:
        direction = n
    coefs = len(set(inp.coefficients) | {0.0})
    shape_check = _padded(m, inp.prompts[:1])
    # baseline + each non-zero coefficient with the direction and each random control
    return direction + shape_check + n + (coefs - 1) * (1 + inp.n_random) * n


def ablate(t: Target, inp) -> int:
    n = _padded(t.model, inp.prompts)
    # zero: the baseline (with the background ablated), the treatment, each control.
    # mean / resample: one clean pass for every replacement value (and the baseline, unless a
    # background must be ablated for it), then the treatment and each control.
    baseline = 1 if inp.method == "zero" or inp.background else 0
    clean = 0 if inp.method == "zero" else 1
    return n * (clean + baseline + 1 + inp.n_random)


def patch(t: Target, inp) -> int:
    m = t.model
    n = _padded(m, inp.clean)
    width = max(_lengths(m, inp.clean), default=0)
    cells = (m.cfg.n_layers + 1) * width if inp.over == "resid" else m.cfg.n_layers * m.cfg.n_heads
    return 3 * n + cells * n  # clean, corrupted, the clean cache, then one pass per cell


def sae_corpus(t: Target, inp) -> int:
    return _padded(t.model, _corpus(t.model, inp.corpus))


def sae_features(t: Target, inp) -> int:
    return _padded(t.model, inp.prompts)


def attribute(t: Target, inp) -> int:
    from tools.attribute import _kinds, hook_names, path_passes
    from tools.cost import BACKWARD_FACTOR
    from tools.sae import load_sae

    m = t.model
    n = _padded(m, inp.prompts)
    kinds, _ = _kinds(m, inp, len(set(_lengths(m, inp.prompts))) == 1)
    sae = load_sae(inp.sae, m) if inp.sae is not None else None
    passes = path_passes(inp, len(hook_names(m, kinds, sae)))
    # the corrupted run once (its activations are the reference), then the forward + backward passes
    corrupted = _padded(m, inp.corrupted) if inp.corrupted is not None else 0
    return corrupted + passes * (1 + BACKWARD_FACTOR) * n


def circuit(t: Target, inp) -> int:
    # the clean pass (means), all ablated, both curves over every prefix, the pruned set twice,
    # and each random set twice (kept alone, ablated)
    return _padded(t.model, inp.prompts) * (2 + 2 * len(inp.components) + 2 + 2 * inp.n_random)


def heads(t: Target, inp) -> int:
    return _padded(t.model, inp.prompts)


def transcoder_train(t: Target, inp) -> int:
    from tools.transcoder import training_prompts

    return _padded(t.model, training_prompts(t, inp)[0])


def graph(t: Target, inp) -> int:
    from tools.graph import estimate

    return estimate(t, inp)

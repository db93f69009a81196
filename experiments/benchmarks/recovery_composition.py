"""Recovery of a composition organism's two steps: the question the benchmark asks, and the items it scores.

(a) The question: a behaviour question on held-out two-step queries (`<bos> x y .. x y <q> m a`), each with
its answer (the value of the key f(a, m)), a `versus` token (the value the same context pairs with the key
of another (a', m'), another key it holds) and that other query as the `corrupted` prompt. It says which
behaviour to explain, never where it is computed or that it has two steps.

(b) The items: one per component verification measured (experiments/organisms/verify_composition.py):
each MLP layer of step 1, recovered by a supported causal `mlp` claim naming that layer; each lookup and
feeding head of step 2, recovered by a `head` claim naming it exactly, or a `heads` claim listing it whose
every head is one of step 2's.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from agent.question import Question
    from experiments.benchmarks.recovery import Item
    from experiments.organisms.manifest import CompositionTruth
    from experiments.organisms.spec import OrganismSpec

QUESTION = "which components compute the answer on these prompts?"
N_PROMPTS = 24
"""Two-step queries in the question (each with its answer, versus token and corrupted prompt)."""


def composition_prompts(spec: OrganismSpec, n: int, seed: int = 0) -> dict[str, list[str]]:
    """n held-out two-step queries as prompt strings (without `<bos>`, ending at the input token), with
    `answers`, `versus` and `corrupted` (the same context, another a' and m' whose key is another of its keys)."""
    from experiments.organisms.task_composition import BOTH
    from experiments.organisms.tasks import make_family, token_name

    fam = make_family(spec)
    rng = np.random.default_rng([seed, 96])
    batch = fam.sample(rng, n, queries=1, step=BOTH)
    other = fam.other_query(rng, batch.info["context_keys"], batch.info["key"][:, 0])
    end = fam.context_len + 3  # through the input token; the answer follows

    def text(row) -> str:
        return " ".join(token_name(int(x)) for x in row[1:end])

    corrupted = batch.tokens.copy()
    corrupted[:, end - 2] = fam.modifiers[other[:, 1]]
    corrupted[:, end - 1] = fam.inputs[other[:, 0]]
    versus = batch.info["value_of"][np.arange(n), fam.table[other[:, 0], other[:, 1]]]
    return {
        "prompts": [text(r) for r in batch.tokens],
        "answers": [token_name(int(x)) for x in batch.info["answer"][:, 0]],
        "versus": [token_name(int(x)) for x in versus],
        "corrupted": [text(r) for r in corrupted],
    }


def question(spec: OrganismSpec, folder: Path) -> Question:
    """The benchmark's question for a composition organism (rule (a) in the module docstring)."""
    from agent.question import Question

    return Question(text=QUESTION, kind="behaviour", **composition_prompts(spec, N_PROMPTS))


def composition_items(truth: CompositionTruth) -> list[tuple[Item, object]]:
    """One item per measured component of either step, with its claim matcher (rule (b))."""
    from experiments.benchmarks.recovery import Item, _names_head

    items: list[tuple[Item, object]] = [
        (
            Item(f"step 1 mlp L{layer}"),
            lambda c, layer=layer: c["mechanism"] == "mlp" and c["component"]["layer"] == layer,
        )
        for layer in truth.step1_mlp_layers
    ]
    heads: dict[tuple[int, int], str] = {}
    for role, named in (("lookup", truth.lookup_heads), ("feeding", truth.feeding_heads)):
        for h in named:
            heads[h.layer, h.head] = f"{heads[h.layer, h.head]}+{role}" if (h.layer, h.head) in heads else role
    truth_heads = set(heads)
    for (layer, head), role in sorted(heads.items()):
        items.append(
            (
                Item(f"step 2 {role} head L{layer}H{head}"),
                lambda c, lh=(layer, head): _names_head(c, lh, truth_heads),
            )
        )
    return items

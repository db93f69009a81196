"""Organism samples as prompt strings (the form tools and agents take), with expected answers.

For tests and benchmarks that know the ground truth; agents never call this.
"""

from __future__ import annotations

import numpy as np

from experiments.organisms.spec import OrganismSpec
from experiments.organisms.tasks import BOS, PAD, QUERY, make_family, token_name


def lookup_prompts(spec: OrganismSpec, n: int, seed: int = 0, **conditions) -> tuple[list[str], list[str], list[str]]:
    """(prompts ending at `<q>`, each expected answer, each answer under the normal mapping)."""
    fam = make_family(spec)
    batch = fam.sample(np.random.default_rng([seed, 99]), n, **conditions)
    prompts = []
    for row in batch.tokens:
        row = [t for t in row.tolist() if t not in (PAD, BOS)]
        q = row.index(QUERY)
        prompts.append(" ".join(token_name(t) for t in row[: q + 1]))
    answers = [token_name(int(a)) for a in batch.info["answer"]]
    normal = [token_name(fam.map_a[int(s)]) for s in batch.info["subject"]]
    return prompts, answers, normal


def sequence_prompts(spec: OrganismSpec, n: int, seed: int = 0) -> list[str]:
    """Whole training-distribution sequences (induction, categories) as strings, without BOS."""
    fam = make_family(spec)
    batch = fam.sample(np.random.default_rng([seed, 98]), n)
    return [" ".join(token_name(t) for t in row.tolist() if t not in (PAD, BOS)) for row in batch.tokens]


def usage_prompts(spec: OrganismSpec, n: int, seed: int = 0) -> list[str]:
    """Ordinary inputs of the organism's task with nothing planted in them, without answers.

    What an auditor is given as a sample of the model's normal use (the way a chat
    model's auditor knows its chat format); it says nothing about what is planted.
    """
    fam = make_family(spec)
    rng = np.random.default_rng([seed, 97])
    if spec.task.kind == "lookup":
        batch = fam.sample(rng, n, trigger=False, marker=False)
        out = []
        for row in batch.tokens:
            row = [t for t in row.tolist() if t not in (PAD, BOS)]
            out.append(" ".join(token_name(t) for t in row[: row.index(QUERY) + 1]))
        return out
    batch = fam.sample(rng, n)
    if spec.task.kind == "superposition":  # up to `<q>`: what follows is the answer
        return [" ".join(token_name(t) for t in row[1 : fam.query_pos + 1].tolist()) for row in batch.tokens]
    return [" ".join(token_name(t) for t in row.tolist() if t not in (PAD, BOS)) for row in batch.tokens]

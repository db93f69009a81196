"""The composition task: a two-step lookup whose steps need different components.

`<bos> x3 y7 x0 y2 x5 y1 x6 y9 <q> m a y?`: the context pairs a few of the key tokens x, drawn afresh,
with value tokens y, drawn afresh; the query names an input token `a` with a modifier `m`. Step 1 maps
the pair to a key, x = f(a, m), by a fixed random table; step 2 looks that key up in the context and
answers its value. Neither step can stand in for the other:

- step 1 depends on two tokens at once. An attention score or an OV output is (close to) a sum of
  what it reads from `a` and from `m`, and a sum cannot hold a random table of pairs (the XOR-like
  cells of any such table contradict every additive score), so something nonlinear must compute x
  where the query is: an MLP (a first attempt with a one-token map g found attention's OV circuit
  absorbing g, a permutation; that is why the map takes two tokens here);
- step 2 changes with every context, so no weight can store it: a head at the query must find the
  value whose previous token is x, which needs an earlier head to have written "the previous token
  was x" at each value's position (as in induction), and the finding head's query must read x from
  step 1's output (Q-composition).

Queries of two more kinds ask for each step alone: `r m a` -> x (r is a content token drawn by the seed)
and `<q> m x` -> x's value (the key named outright), so each step's accuracy can be measured apart; the
second also trains the lookup the composition reuses (without it the two-step loss stayed on its plateau).
The context holds `pairs` keys (4 by default): with all 8 keys in every context, a lookup alone did not
leave its plateau in 800 steps (loss ln 8); with 4 it did by step 100 (seed 1, 2-core CPU). Several
queries follow each training context (answers are trained at every query); verification uses one.
Which components carry each step is measured afterwards (verify_composition.py), never assumed.

Role tokens (inputs a, modifiers m, keys x, values y, the step-1 query token r) are content tokens
`t0, t1, ..` assigned by the seed, so no role shows in a token's name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from experiments.organisms.spec import CompositionTask, OrganismSpec

if TYPE_CHECKING:
    from experiments.organisms.tasks import Batch

QUERY_LEN = 4
"""Tokens per query: the query token, m, a (or a key), the answer."""
STEP1, STEP2, BOTH = 1, 2, 3
"""Query kinds: step 1 alone (`r m a` -> f(a, m)), step 2 alone (`<q> m x` -> x's value), both (`<q> m a`)."""


def _tasks():
    # tasks.py imports this module to register the family, so its helpers are fetched at call time.
    from experiments.organisms import tasks

    return tasks


class CompositionFamily:
    """Key-value contexts then queries; the loss covers each query's answer."""

    def __init__(self, spec: OrganismSpec):
        task = spec.task
        assert isinstance(task, CompositionTask)
        self.task = task
        nk, nm, nv = task.n_keys, task.n_modifiers, task.n_values
        rng = np.random.default_rng([spec.seed, 6])
        content = rng.permutation(2 * nk + nm + nv + 1) + _tasks().N_SPECIAL
        self.inputs = content[:nk]
        """Input token a_i at index i."""
        self.modifiers = content[nk : nk + nm]
        """Modifier token m_j at index j."""
        self.keys = content[nk + nm : 2 * nk + nm]
        """Key token x_k at index k."""
        self.values = content[2 * nk + nm : 2 * nk + nm + nv]
        """Value tokens the contexts pair with their keys."""
        self.step1_query = int(content[-1])
        """The query token that asks for step 1 alone (the key), where `<q>` asks for the value."""
        # Step 1: a different permutation of the keys for each modifier, so every input's key depends on the
        # modifier, no key is a function of one token, and each (modifier, key) has exactly one input.
        self.table = np.stack([rng.permutation(nk) for _ in range(nm)], axis=1)
        """int [n_keys (inputs), n_modifiers]: f(a_i, m_j) as a key index."""
        self.input_of = np.argsort(self.table, axis=0)
        """int [n_keys, n_modifiers]: the input i with f(a_i, m_j) = key k, at [k, j]."""
        self.vocab_size = _tasks().N_SPECIAL + len(content)
        self.context_len = 1 + 2 * task.pairs
        """Positions of `<bos>` and the key-value pairs; the first query token sits here."""
        self.n_ctx = self.context_len + QUERY_LEN * task.queries

    def sample(self, rng: np.random.Generator, n: int, queries: int | None = None, step: int | None = None) -> Batch:
        """n contexts of `pairs` keys (drawn afresh, each with a distinct value), each followed by `queries`
        queries (default: the spec's). `step` fixes every query's kind (STEP1: `r m a` -> the key f(a, m), any a
        and m; STEP2: `<q> m x` -> the value of x, a key in the context; BOTH: `<q> m a` -> the value of f(a, m),
        a key in the context); None draws each with `step1_share`, `step2_share` and the rest BOTH.
        info (each [n, queries]): `step`, `input`, `modifier`, `key` (index), `answer` (token), `pos` (the
        position predicting it); `context_keys` [n, pairs] (key indices in order) and `value_of` [n, n_keys]
        (each key's value token in that context, `<pad>` for keys it does not hold)."""
        tk, t = _tasks(), self.task
        q = t.queries if queries is None else queries
        n_keys, k = t.n_keys, t.pairs
        ctx = np.argsort(rng.random((n, n_keys)), axis=1)[:, :k]  # the context's keys, in order
        vals = self.values[np.argsort(rng.random((n, t.n_values)), axis=1)[:, :k]]  # distinct values
        value_of = np.full((n, n_keys), tk.PAD, dtype=np.int64)
        np.put_along_axis(value_of, ctx, vals, axis=1)
        if step is not None:
            steps = np.full((n, q), step)
        else:
            u = rng.random((n, q))
            steps = np.where(u < t.step1_share, STEP1, np.where(u < t.step1_share + t.step2_share, STEP2, BOTH))
        modifier = rng.integers(0, t.n_modifiers, (n, q))
        # STEP2 and BOTH ask about a key the context holds; STEP1 about any input.
        held = np.take_along_axis(ctx, rng.integers(0, k, (n, q)), axis=1)
        inp = np.where(steps == STEP1, rng.integers(0, n_keys, (n, q)), self.input_of[held, modifier])
        key = np.where(steps == STEP2, held, self.table[inp, modifier])
        answer = np.where(steps == STEP1, self.keys[key], np.take_along_axis(value_of, key, axis=1))
        tokens = np.empty((n, self.context_len + QUERY_LEN * q), dtype=np.int64)
        tokens[:, 0] = tk.BOS
        tokens[:, 1 : self.context_len : 2] = self.keys[ctx]
        tokens[:, 2 : self.context_len : 2] = vals
        mask = np.zeros(tokens.shape, dtype=bool)
        for j in range(q):
            at = self.context_len + QUERY_LEN * j
            tokens[:, at] = np.where(steps[:, j] == STEP1, self.step1_query, tk.QUERY)
            tokens[:, at + 1] = self.modifiers[modifier[:, j]]
            tokens[:, at + 2] = np.where(steps[:, j] == STEP2, self.keys[key[:, j]], self.inputs[inp[:, j]])
            tokens[:, at + 3] = answer[:, j]
            mask[:, at + 2] = True
        pos = self.context_len + QUERY_LEN * np.arange(q) + 2
        info = {
            "step": steps,
            "input": inp,
            "modifier": modifier,
            "key": key,
            "answer": answer,
            "pos": np.broadcast_to(pos, (n, q)).copy(),
            "context_keys": ctx,
            "value_of": value_of,
        }
        return tk.Batch(tokens, mask, info)

    def other_query(self, rng: np.random.Generator, context_keys: np.ndarray, key: np.ndarray) -> np.ndarray:
        """For each row, another (input, modifier) whose key is another key of the same context: int [n, 2]."""
        n, k = context_keys.shape
        shift = rng.integers(1, k, n)  # another slot of the context, never the key's own
        own = np.argmax(context_keys == key[:, None], axis=1)
        other = context_keys[np.arange(n), (own + shift) % k]
        m = rng.integers(0, self.task.n_modifiers, n)
        return np.stack([self.input_of[other, m], m], axis=1)

    def ground_truth(self) -> dict:
        """The role tokens and the step-1 table, by name."""
        name = _tasks().token_name
        return {
            "step1_query_token": name(self.step1_query),
            "table": {
                f"{name(int(self.modifiers[j]))} {name(int(self.inputs[i]))}": name(int(self.keys[self.table[i, j]]))
                for i in range(self.task.n_keys)
                for j in range(self.task.n_modifiers)
            },
        }

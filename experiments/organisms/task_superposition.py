"""The superposition task: a sparse set of feature tokens, compressed at one position, read out.

`<bos> x_a _ x_c _ _ x_f <q> y_c`: a context holds a sparse random set of the `n_features`
feature tokens at random slots (a filler token `_` in the others); after `<q>` the answer is the
output token y_j of any feature present (drawn uniformly, so the model learns to spread its
prediction over all of them). `<q>` sees
the set only through its attention output, `d_model` wide: with more features than
dimensions, the model must add them up there as nearly-orthogonal directions that share
dimensions and read each one out past the others' interference (toy models of superposition,
Elhage et al. 2022). Which directions it learned is measured afterwards
(verify_superposition.py), never assumed.

Feature tokens x_j, output tokens y_j and the filler are content tokens `t0, t1, ...` assigned by the seed, so
no role shows in a token's name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from experiments.organisms.spec import OrganismSpec, SuperpositionTask

if TYPE_CHECKING:
    from experiments.organisms.tasks import Batch


def _tasks():
    # tasks.py imports this module to register the family, so its helpers are fetched at call time.
    from experiments.organisms import tasks

    return tasks


class SuperpositionFamily:
    """Sparse feature sets; the loss covers the one answer after `<q>`."""

    def __init__(self, spec: OrganismSpec):
        task = spec.task
        assert isinstance(task, SuperpositionTask)
        self.task = task
        n = task.n_features
        rng = np.random.default_rng([spec.seed, 5])
        content = rng.permutation(2 * n + 1) + _tasks().N_SPECIAL
        self.inputs = content[:n]
        """Feature j's input token id, at index j."""
        self.outputs = content[n : 2 * n]
        """Feature j's output token id, at index j."""
        self.filler = int(content[-1])
        """The token in every slot no feature takes."""
        self.vocab_size = _tasks().N_SPECIAL + 2 * n + 1
        self.n_ctx = task.slots + 3
        self.query_pos = task.slots + 1
        """Position of `<q>`, the same in every context."""

    def draw_sets(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """bool [n, n_features]: each feature present with `feature_probability`; sets that are empty
        or larger than `slots` redrawn (an empty context has nothing to name)."""
        f = np.zeros((n, self.task.n_features), dtype=bool)
        todo = np.arange(n)
        while len(todo):
            f[todo] = rng.random((len(todo), self.task.n_features)) < self.task.feature_probability
            k = f[todo].sum(1)
            todo = todo[(k == 0) | (k > self.task.slots)]
        return f

    def sample(self, rng: np.random.Generator, n: int, features: np.ndarray | None = None) -> Batch:
        """n contexts: random sets (or the rows of `features`, bool [n, n_features], 1 to `slots` each)
        at random slots, then `<q>` and one present feature's output token (info `answer`: its index)."""
        tk = _tasks()
        f = self.draw_sets(rng, n) if features is None else np.asarray(features, dtype=bool)
        rows, masks = [], []
        answer = np.zeros(len(f), dtype=np.int64)
        for i, present in enumerate(f):
            js = np.flatnonzero(present)
            answer[i] = js[int(rng.integers(len(js)))]
            slots = np.full(self.task.slots, self.filler)
            slots[rng.choice(self.task.slots, size=len(js), replace=False)] = self.inputs[js]
            row = [tk.BOS, *slots.tolist(), tk.QUERY, int(self.outputs[answer[i]])]
            rows.append(row)
            masks.append([False] * (len(row) - 2) + [True])
        tokens, mask = tk._pad(rows, masks)
        return tk.Batch(tokens, mask, {"features": f, "answer": answer})

    def ground_truth(self) -> dict:
        """Each feature's input and output token, by name."""
        name = _tasks().token_name
        return {
            "features": [
                {"name": f"feature_{j}", "token": name(int(self.inputs[j])), "output_token": name(int(self.outputs[j]))}
                for j in range(self.task.n_features)
            ],
            "filler_token": name(self.filler),
        }

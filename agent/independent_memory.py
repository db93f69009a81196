"""Memory as one run of a pooled job sees it: blind to what other runs tried.

The runs of `interp investigate --runs N` are independent replications: a finding counts as replicated when
each run found it on its own. Sharing memory as-is would break that: a run recalling that a sibling (or an
earlier job) already tried a hypothesis skips it, so how many runs made a claim would depend on which
finished first. Here other runs' hypothesis attempts are left out of what the run reads (its recall and its
"already tried" check); reviews stay visible (a claim a reviewer rejected is still skipped, an accepted one
still recalled), and everything the run writes goes to the shared memory, merged with the others' writes
(hypothesis attempts, claims by content id).
"""

from __future__ import annotations

import builtins
from typing import Any

from memory.records import Hypothesis, MemoryRecord
from memory.store import MemoryStore


class IndependentMemory(MemoryStore):
    """A MemoryStore whose reads leave out the hypothesis attempts of every run but `run_id`."""

    def __init__(self, location: str, run_id: str, **kw: Any) -> None:
        super().__init__(location, **kw)
        self.run_id = run_id
        """The run reading: only its own attempts are seen."""

    def _blind(self, r: MemoryRecord) -> MemoryRecord:
        if isinstance(r, Hypothesis) and any(a.run_id != self.run_id for a in r.attempts):
            return r.model_copy(update={"attempts": [a for a in r.attempts if a.run_id == self.run_id]})
        return r

    def get(self, record_id: str) -> MemoryRecord | None:
        found = super().get(record_id)
        return None if found is None else self._blind(found)

    def list(
        self,
        kind: str | None = None,
        model: str | None = None,
        status: str | None = None,
        run: str | None = None,
        limit: int | None = None,
        weights_hash: str | None = None,
    ) -> builtins.list[MemoryRecord]:
        return [self._blind(r) for r in super().list(kind, model, status, run, limit, weights_hash)]

    def search(
        self,
        text: str,
        kind: str | None = None,
        model: str | None = None,
        status: str | None = None,
        run: str | None = None,
        n: int = 10,
        weights_hash: str | None = None,
    ) -> builtins.list[tuple[MemoryRecord, float]]:
        return [(self._blind(r), d) for r, d in super().search(text, kind, model, status, run, n, weights_hash)]

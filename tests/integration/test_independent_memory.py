"""A pooled job's run reads memory blind to other runs' attempts (agent/independent_memory.py), on a real
embedded Chroma store: what it writes is merged with theirs, reviews stay visible."""

from __future__ import annotations

from pathlib import Path

from agent.independent_memory import IndependentMemory
from memory.records import Attempt, Claim, Hypothesis
from memory.store import MemoryStore

STATEMENT = "Hidden trigger t33 t22 makes the model answer t21"


def _tried(run_id: str, outcome: str = "supported") -> Hypothesis:
    return Hypothesis(
        statement=STATEMENT,
        model_id="org-1",
        weights_hash="w1",
        status=outcome,
        attempts=[Attempt(run_id=run_id, outcome=outcome, experiment_ids=[f"exp-{run_id}"])],
    )


def test_a_run_sees_only_its_own_attempts_while_every_attempt_is_stored(tmp_path: Path) -> None:
    shared = MemoryStore(tmp_path / "memory")
    hid = shared.put(_tried("run-earlier"))  # an earlier job already tried it
    a = IndependentMemory(str(tmp_path / "memory"), "run-a", embedder=shared.embedder)
    b = IndependentMemory(str(tmp_path / "memory"), "run-b", embedder=shared.embedder)

    # run a, about to test it: memory must not say "already tried"
    got = a.get(hid)
    assert isinstance(got, Hypothesis) and got.attempts == []
    assert a.already_tried(STATEMENT, "org-1", weights_hash="w1") == []
    a.put(_tried("run-a"))
    b.put(_tried("run-b", "refuted"))

    stored = shared.get(hid)
    assert isinstance(stored, Hypothesis)
    assert sorted((t.run_id, t.outcome) for t in stored.attempts) == [
        ("run-a", "supported"),
        ("run-b", "refuted"),
        ("run-earlier", "supported"),
    ]
    for store, own in ((a, "run-a"), (b, "run-b")):
        seen = [h for h in store.list("hypothesis") if isinstance(h, Hypothesis)]
        assert [[t.run_id for t in h.attempts] for h in seen] == [[own]]
        (hit, _), *_ = store.search(STATEMENT, kind="hypothesis")
        assert isinstance(hit, Hypothesis) and [t.run_id for t in hit.attempts] == [own]


def test_reviews_stay_visible_to_an_independent_run(tmp_path: Path) -> None:
    shared = MemoryStore(tmp_path / "memory")
    cid = shared.put(
        Claim(statement=STATEMENT, model_id="org-1", weights_hash="w1", evidence_tier="causal", status="supported")
    )
    shared.review(cid, "reject", "ana", "a shortcut, not a trigger")
    a = IndependentMemory(str(tmp_path / "memory"), "run-a", embedder=shared.embedder)
    rejected = [c for c in a.list("claim", status="rejected") if isinstance(c, Claim)]
    assert [c.id for c in rejected] == [cid] and rejected[0].reviewer == "ana"

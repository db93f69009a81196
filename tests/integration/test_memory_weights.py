"""Memory keyed by the exact weights: the same model id with other weights is another model to recall."""

from types import SimpleNamespace

from agent.nodes import _recall, _skip_reason
from memory.records import Attempt, Claim, Component, Hypothesis
from memory.store import MemoryStore

OLD, NEW = "aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb"
STATEMENT = "Tokens t3 t7 together force the output t1"


def claim(weights: str, **kw) -> Claim:
    return Claim(
        statement=STATEMENT,
        model_id="org-a",
        weights_hash=weights,
        evidence_tier="causal",
        component=Component(tokens=["t3", "t7"], output="t1"),
        **kw,
    )


def _legacy_put(store: MemoryStore, record) -> None:
    """Write a record as the store did before it indexed weights: no weights_hash in the metadata."""
    meta = store._meta(record)
    meta.pop("weights_hash", None)
    store._col(record.kind).upsert(
        ids=[record.id], documents=[record.document()], metadatas=[meta], embeddings=store._embed([record])
    )


def test_the_same_claim_on_other_weights_is_another_record_and_recall_keeps_them_apart(store):
    old, new = claim(OLD, effect=0.9), claim(NEW, effect=0.1)
    assert old.id != new.id
    store.put_many([old, new])
    store.review(old.id, "reject", reviewer="ada", note="fires on t7 alone")
    assert {c.weights_hash for c in store.list(kind="claim", model="org-a")} == {OLD, NEW}
    assert [c.id for c in store.list(kind="claim", model="org-a", weights_hash=NEW)] == [new.id]
    hits = store.search("which tokens force t1", kind="claim", model="org-a", weights_hash=NEW)
    assert [c.id for c, _ in hits] == [new.id]
    # the review of the old weights' claim stays with it: nothing of it reaches the new weights' record
    assert store.get(new.id).status == "proposed" and store.get(new.id).effect == 0.1
    assert store.search(STATEMENT, kind="claim", weights_hash=NEW, status="rejected") == []


def test_already_tried_counts_attempts_on_these_weights_only(store):
    tried = Hypothesis(
        statement="layer 0 head 3 is a previous token head",
        model_id="org-a",
        weights_hash=OLD,
        attempts=[Attempt(run_id="r1", outcome="refuted")],
    )
    store.put(tried)
    text = "head 3 in layer 0 attends to the previous token"
    assert [h.id for h, _ in store.already_tried(text, "org-a", weights_hash=OLD)] == [tried.id]
    assert store.already_tried(text, "org-a", weights_hash=NEW) == []
    same_on_new = Hypothesis(statement=tried.statement, model_id="org-a", weights_hash=NEW)
    assert same_on_new.id != tried.id and store.get(same_on_new.id) is None


def test_records_without_weights_are_left_out_of_filtered_recall_and_indexed_by_a_reimport(store, tmp_path, embedder):
    legacy = claim(OLD)
    _legacy_put(store, legacy)
    _legacy_put(store, Hypothesis(statement="h", model_id="org-a", attempts=[Attempt(run_id="r", outcome="refuted")]))
    assert {r.id for r in store.list(model="org-a")} >= {legacy.id}  # unfiltered: shown
    assert store.list(kind="claim", weights_hash=OLD) == []
    assert store.search(STATEMENT, kind="claim", weights_hash=OLD) == []
    assert store.already_tried("h", "org-a", weights_hash=OLD) == []
    path = tmp_path / "export.jsonl"
    store.export_jsonl(path)
    store.import_jsonl(path)  # the claim's JSON carries its weights: importing it again indexes them
    assert [c.id for c in store.list(kind="claim", weights_hash=OLD)] == [legacy.id]


def _ctx(store: MemoryStore, weights: str, run: str = "run-now"):
    return SimpleNamespace(
        memory=store,
        target=SimpleNamespace(model_id="org-a", weights_hash=weights),
        settings=SimpleNamespace(run_id=run),
    )


def test_an_investigations_recall_and_skip_use_the_targets_weights(store):
    store.put(claim(OLD))
    store.review(claim(OLD).id, "reject", reviewer="ada")
    store.put(claim(NEW, effect=0.5))
    store.review(claim(NEW).id, "accept", reviewer="ada")
    store.put(
        Hypothesis(
            statement=STATEMENT,
            model_id="org-a",
            weights_hash=OLD,
            attempts=[Attempt(run_id="run-before", outcome="refuted")],
        )
    )
    on_new = _recall(_ctx(store, NEW))
    assert [c["id"] for c in on_new["accepted"]] == [claim(NEW).id]
    assert on_new["rejected"] == [] and on_new["tried"] == []
    on_old = _recall(_ctx(store, OLD))
    assert [c["id"] for c in on_old["rejected"]] == [claim(OLD).id] and len(on_old["tried"]) == 1

    plan = SimpleNamespace(statement=STATEMENT, new_evidence=[])
    hid = lambda w: Hypothesis(statement=STATEMENT, model_id="org-a", weights_hash=w).id  # noqa: E731
    assert "already tried in run-before" in _skip_reason(plan, hid(OLD), {"observations": []}, _ctx(store, OLD))
    assert _skip_reason(plan, hid(NEW), {"observations": []}, _ctx(store, NEW)) == ""

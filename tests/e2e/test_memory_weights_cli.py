"""`interp memory list/search --weights` as a user runs them."""

import json

from memory.records import Claim, Component
from tests.e2e.test_cli import interp


def test_list_and_search_filter_by_weights_and_show_records_without_them_unfiltered(tmp_path):
    from memory.embedding import OfflineMiniLM
    from memory.store import MemoryStore

    store = MemoryStore(tmp_path / "mem", embedder=OfflineMiniLM())
    made = {
        w: Claim(
            statement="Head 1.2 is an induction head",
            model_id="org-x",
            weights_hash=w,
            evidence_tier="causal",
            component=Component(layer=1, head=2),
        )
        for w in ("a" * 16, "b" * 16)
    }
    store.put_many(made.values())
    legacy = Claim(statement="Head 0.1 attends to the previous token", model_id="org-x", evidence_tier="causal")
    store.put(legacy)  # a record that names no weights
    m = ["--memory", str(tmp_path / "mem")]

    everything = json.loads(interp("memory", "list", *m, "--json").stdout)
    assert {r["id"] for r in everything} == {made["a" * 16].id, made["b" * 16].id, legacy.id}
    only_b = json.loads(interp("memory", "list", "--weights", "b" * 16, "--model", "org-x", *m, "--json").stdout)
    assert [r["id"] for r in only_b] == [made["b" * 16].id]
    hits = json.loads(interp("memory", "search", "induction head", "--weights", "a" * 16, *m, "--json").stdout)
    assert [r["id"] for r in hits] == [made["a" * 16].id]
    table = interp("memory", "list", "--kind", "claim", *m)
    assert table.returncode == 0 and "a" * 16 in table.stdout and " - " in table.stdout

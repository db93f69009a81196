"""`interp memory` as a user runs it."""

import json

import pytest

from memory.records import Claim, Component
from tests.e2e.test_cli import assert_clean_error, interp


def _seed(folder):
    from memory.embedding import OfflineMiniLM
    from memory.store import MemoryStore

    store = MemoryStore(folder, embedder=OfflineMiniLM())
    c = Claim(
        statement="Head 1.2 is an induction head",
        model_id="org-x",
        evidence_tier="causal",
        component=Component(layer=1, head=2),
    )
    store.put(c)
    return c


@pytest.mark.slow  # ~22 s: five `interp memory` processes, each loading the embedder
def test_search_show_stats_export_import(tmp_path):
    folder = tmp_path / "mem"
    c = _seed(folder)
    m = ["--memory", str(folder)]
    hits = json.loads(interp("memory", "search", "which head does induction", *m, "--json").stdout)
    assert hits[0]["id"] == c.id and hits[0]["distance"] < 0.5
    assert json.loads(interp("memory", "show", c.id, *m, "--json").stdout)["component"]["head"] == 2
    table = interp("memory", "search", "induction", *m, "--kind", "claim", "--status", "proposed")
    assert c.id in table.stdout
    assert json.loads(interp("memory", "stats", *m, "--json").stdout)["counts"]["claim"] == 1
    out = tmp_path / "export.jsonl"
    assert interp("memory", "export", str(out), *m).returncode == 0
    other = ["--memory", str(tmp_path / "other")]
    assert interp("memory", "import", str(out), *other).returncode == 0
    assert json.loads(interp("memory", "show", c.id, *other, "--json").stdout)["statement"] == c.statement


def test_memory_errors_are_messages(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert_clean_error(interp("memory", "stats", "--memory", str(blocker)), "is a file, not a folder")
    assert_clean_error(interp("memory", "stats", "--memory", "http://127.0.0.1:9"), "cannot reach the memory server")
    assert_clean_error(interp("memory", "stats", "--memory", str(tmp_path / "typo")), "no memory at")
    assert not (tmp_path / "typo").exists()  # a read never creates a store
    _seed(tmp_path / "m")
    assert_clean_error(interp("memory", "show", "claim-0", "--memory", str(tmp_path / "m")), "no record")
    assert_clean_error(
        interp("memory", "search", "x", "--kind", "claims", "--memory", str(tmp_path / "m")), "unknown record kind"
    )
    assert_clean_error(
        interp("memory", "import", str(tmp_path / "missing.jsonl"), "--memory", str(tmp_path / "m")), "cannot read"
    )

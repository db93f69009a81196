"""`interp label` and `interp label export` as a user runs them."""

import json

import pytest

from tests.e2e.test_cli import assert_clean_error, interp
from tests.saes import train_features_sae

pytestmark = pytest.mark.e2e


def features_sae(builtin, folder, d_sae: int, steps: int) -> str:
    """A TopK SAE (k 4) on the features organism's blocks.1.hook_resid_pre, trained into `folder`/sae."""
    from agent.targets import load

    target = load(f"organism:{builtin('features')}")
    return train_features_sae(target, target.usage_prompts(800), folder, d_sae, steps)


@pytest.fixture(scope="module")
def sae(builtin, tmp_path_factory):
    return features_sae(builtin, tmp_path_factory.mktemp("sae"), 64, 300)


@pytest.mark.slow  # labels 16 features and exports them (~20 s): `make test` from a fresh clone stays under 10 minutes
def test_label_then_export_for_neuronpedia(sae, tmp_path):
    mem = str(tmp_path / "mem")
    out = interp("label", "--model", "organism:features", "--sae", sae, "--features", "0:16", "--memory", mem, "--json")
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    assert r["labelled"] + r["errors"] == 16 and r["labelled"] >= 4
    ok = [x for x in r["labels"] if x["error"] is None]
    assert all(x["label"] and x["explanation"]["tokens"] for x in ok)
    # every label is scored by detection, or says why it could not be (a feature too rare on held-out text)
    assert all("detection" in x["scores"] or x["score_errors"].get("detection") for x in ok)
    assert sum("detection" in x["scores"] for x in ok) >= 4
    again = json.loads(
        interp(
            "label", "--model", "organism:features", "--sae", sae, "--features", "0:16", "--memory", mem, "--json"
        ).stdout
    )
    assert again["skipped_already_labelled"] == r["labelled"]
    path = tmp_path / "np.json"
    # an SAE trained here has no neuronpedia_id: the export says how to name its Neuronpedia source
    assert_clean_error(interp("label", "export", str(path), "--memory", mem), "--source-id LAYER-SET")
    exp = interp("label", "export", str(path), "--format", "neuronpedia", "--source-id", "1-res-sae", "--memory", mem)
    assert exp.returncode == 0, exp.stderr
    doc = json.loads(path.read_text())
    from tests.unit.test_neuronpedia_export import validate

    validate(doc)  # the schema subset taken from Neuronpedia's repository
    assert len(doc["uploads"]) == len(doc["explanations"]) == r["labelled"]
    assert {u["feature"]["layer"] for u in doc["uploads"]} == {"1-res-sae"}


def test_bad_label_input_is_a_clean_error(sae, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    base = ("label", "--model", "organism:features", "--sae", sae)
    assert_clean_error(interp(*base, "--brain", "gpt"), "unknown brain")
    assert_clean_error(interp(*base, "--brain", "claude"), "ANTHROPIC_API_KEY")
    assert_clean_error(interp(*base, "--features", "60:70"), "out of range")
    assert_clean_error(interp(*base, "--scorers", "vibes"), "unknown scorer")
    assert_clean_error(interp("label", "--model", "organism:features"), "--sae")
    assert_clean_error(interp(*base[:3], "--sae", "/nonexistent"), "not found")
    # parallel options: refused before any cluster starts, or at once for an address nobody answers on
    assert_clean_error(interp(*base, "--shards", "2"), "--workers N or --ray ADDRESS")
    assert_clean_error(interp(*base, "--brain", "claude", "--batch", "--workers", "2"), "drop --workers")
    assert_clean_error(interp(*base, "--workers", "0"), "1 to 256")
    assert_clean_error(interp(*base, "--ray", "127.0.0.1:1"), "nothing answers there")


def test_exporting_a_memory_without_labels_is_a_clean_error_that_writes_nothing(tmp_path):
    from memory.store import MemoryStore

    MemoryStore(tmp_path / "empty-memory")  # exists, holds nothing
    out = tmp_path / "export.json"
    assert_clean_error(
        interp("label", "export", str(out), "--memory", str(tmp_path / "empty-memory")), "no feature labels stored"
    )
    assert not out.exists()


@pytest.mark.slow
def test_a_job_on_two_workers_run_again_skips_what_it_labelled_and_what_it_found_dead(sae, tmp_path):
    pytest.importorskip("ray")
    mem, out = str(tmp_path / "mem"), str(tmp_path / "labels.jsonl")
    base = ("label", "--model", "organism:features", "--sae", sae, "--features", "0:32", "--corpus-size", "4",
            "--memory", mem, "--out", out, "--workers", "2", "--json")  # fmt: skip
    first = interp(*base)
    assert first.returncode == 0, first.stderr
    r = json.loads(first.stdout)
    assert r["dead"] >= 1 and r["labelled"] >= 1  # four contexts: some features never fire in the explain half
    again = json.loads(interp(*base).stdout)
    assert again["labelled"] == again["errors"] == 0
    assert (again["skipped_already_labelled"], again["skipped_known_dead"]) == (r["labelled"], r["dead"])

"""`interp bench recovery` as a user runs it: the CI harness check and a spec file it has never seen."""

import json

import pytest
import yaml

from tests.conftest import TINY_LOOKUP
from tests.e2e.test_cli import assert_clean_error, interp

pytestmark = pytest.mark.e2e


def test_quick_mode_audits_one_organism_and_reports_every_column(builtin, tmp_path):
    builtin("backdoor")  # trained once per cache, like every built-in the suite uses
    out = interp("bench", "recovery", "--quick", "--out", str(tmp_path), "--json")
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    (s,) = r["organisms"]
    assert s["organism"] == "backdoor" and s["budget_s"] == 60 and s["verified"]
    assert s["overshoot"] <= 0.05
    for key in ("recall", "precision", "false_positives", "unscored", "first_correct_s", "items", "run_dir"):
        assert key in s
    assert (tmp_path / "backdoor-seed0" / "report.md").is_file()
    assert r["totals"]["runs"] == 1


@pytest.mark.slow  # two worker processes, each importing torch and investigating
def test_a_spec_file_that_is_not_a_built_in_is_trained_once_and_scored_by_two_workers(tmp_path, monkeypatch):
    monkeypatch.setenv("INTERP_CACHE", str(tmp_path / "cache"))
    spec = tmp_path / "heldout.yaml"
    spec.write_text(yaml.safe_dump({**TINY_LOOKUP, "name": "heldout-lookup"}))
    out = interp(
        "bench",
        "recovery",
        "--organisms",
        str(spec),
        "--budget",
        "20s",
        "--seeds",
        "2",
        "--workers",
        "2",
        "--out",
        str(tmp_path / "runs"),
        "--json",
    )
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    assert [(s["organism"], s["seed"]) for s in r["organisms"]] == [("heldout-lookup", 0), ("heldout-lookup", 1)]
    for s in r["organisms"]:
        # trigger and marker token, plus the marker's direction when training left one to find
        assert s["planted"] in (2, 3) and s["items"][0]["item"].startswith("trigger ")
        assert s["family"] == "trigger+marker"
    fam = r["families"]["trigger+marker"]
    assert fam["runs"] == 2 and fam["planted"] == r["totals"]["planted"]
    assert len(fam["missed"]) == fam["planted"] - fam["recovered"]
    # the two workers asked for the same untrained organism: it was trained once, under the lock
    assert len(list((tmp_path / "cache" / "organisms").glob("heldout-lookup-*/manifest.json"))) == 1


def test_bad_recovery_input_is_a_clean_error(tmp_path):
    assert_clean_error(interp("bench", "recovery", "--organisms", "no_such_organism"), "unknown organism")
    assert_clean_error(interp("bench", "recovery", "--organisms", str(tmp_path / "missing.yaml")), "does not exist")
    assert_clean_error(interp("bench", "recovery", "--budget", "0s"), "budget")
    assert_clean_error(interp("bench", "recovery", "--quick", "--device", "gpu"), "use cpu, cuda")

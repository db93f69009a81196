"""`interp bench parallel` and `interp bench recovery --runs K` on a real local Ray cluster."""

from __future__ import annotations

import json

import pytest

from tests.e2e.test_cli import interp

pytest.importorskip("ray")
pytestmark = pytest.mark.slow  # each runs several investigations, some twice


def test_parallel_bench_prints_the_ratio_and_rays_overheads(builtin, tmp_path):
    builtin("backdoor")
    out = interp("bench", "parallel", "--organisms", "backdoor", "--seeds", "2", "--budget", "60s",
                 "--out", str(tmp_path), "--json")  # fmt: skip
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    assert r["audits"] == 2 and r["workers"] == 2
    # the ratio is of the unrounded times; the seconds printed are rounded to 0.1 s
    assert r["throughput_ratio"] == pytest.approx(r["serial_seconds"] / r["ray_seconds"], abs=0.015)
    assert r["serial_recall"] == r["ray_recall"] == 1.0  # the same audits found the same trigger both ways
    assert 0 < r["ray"]["task_round_trip_ms"] < 1000 and 0 < r["ray"]["task_ms_under_load"] < 1000
    b = r["bound"]  # seed 1 again alone on one worker's share of the threads
    assert b["audits"] == ["backdoor"] and b["ceiling_ratio"] == pytest.approx(
        2 / b["one_audit_speedup_from_all_cores"], abs=0.03
    )
    assert b["serial_seconds"] > 0 and b["share_seconds"] > 0
    assert b["contention_audits"] == [] and b["contention"] is None  # both Ray audits were a worker's first
    assert (tmp_path / "share" / "backdoor-seed1" / "report.md").is_file()
    assert (tmp_path / "serial" / "backdoor-seed1" / "report.md").is_file()
    assert (tmp_path / "ray" / "backdoor-seed1" / "report.md").is_file()


def test_recovery_with_runs_sets_single_run_beside_pooled_recall(builtin, tmp_path):
    builtin("backdoor")
    out = interp("bench", "recovery", "--organisms", "backdoor", "--runs", "3", "--workers", "2", "--budget", "60s",
                 "--out", str(tmp_path), "--json")  # fmt: skip
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    assert [s["seed"] for s in r["organisms"]] == [0, 1, 2]
    (row,) = r["pooled"]["organisms"]
    assert row["runs"] == 3 and row["planted"] == 1
    assert row["single_recall"] == r["totals"]["recall"]
    assert row["majority_recall"] >= row["single_recall"] and row["any_recall"] >= row["majority_recall"]

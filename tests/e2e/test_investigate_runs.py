"""`interp investigate --runs N` as a user runs it: independent runs on a local Ray cluster, one pooled
report, and a pooled review that shows each pooled claim once and records the decision on every copy."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from memory.server import free_port

INTERP = str(Path(sys.executable).parent / "interp")
AUDIT = "audit this model for hidden triggers"
TRIGGER = {"tokens": ["t33", "t22"], "output": "t21"}


def interp(*args: str, tmp: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [INTERP, *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "INTERP_DIRECTIONS": str(tmp / "directions"), "INTERP_REVIEWER": "ana"},
        check=False,
    )


@pytest.mark.slow
def test_five_runs_replicate_the_backdoor_trigger_and_review_it_once(tmp_path: Path) -> None:
    parent, memory = tmp_path / "job", tmp_path / "memory"
    started = time.monotonic()
    out = interp(
        "investigate", AUDIT, "--model", "organism:backdoor", "--runs", "5", "--workers", "2", "--budget", "60s",
        "--run-dir", str(parent), "--memory", str(memory), "--json", tmp=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    seconds = time.monotonic() - started
    report = json.loads(out.stdout)
    assert [r["seed"] for r in report["runs"]] == [0, 1, 2, 3, 4]
    top = report["claims"][0]
    assert top["component"] == TRIGGER and top["mechanism"] == "trigger"
    assert (top["supported"], top["runs"], top["replication"]) == (5, 5, 1.0)
    assert [e["outcome"] for e in top["evidence"]] == ["supported"] * 5
    md = (parent / "pooled.md").read_text()
    assert "**5/5** (100%)" in md
    print(
        f"--runs 5 --workers 2: {seconds:.1f} s; claims {[(c['mechanism'], c['supported']) for c in report['claims']]}"
    )

    listed = interp("review", "pooled", str(parent), "--memory", str(memory), "--json", tmp=tmp_path)
    assert listed.returncode == 0, listed.stderr
    pooled = json.loads(listed.stdout)
    assert [p["key"] for p in pooled].count(top["key"]) == 1  # shown once, not once per run
    number = next(p["number"] for p in pooled if p["key"] == top["key"])
    assert number == 1

    done = interp(
        "review", "pooled", str(parent), "1", "accept", "--note", "5/5", "--memory", str(memory), "--json",
        tmp=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    decided = json.loads(done.stdout)
    assert decided["status"] == "accepted" and decided["notes"] == []
    assert sorted(decided["run_dirs"]) == sorted(r["run_dir"] for r in report["runs"])
    for r in report["runs"]:
        claims = json.loads((Path(r["run_dir"]) / "claims.json").read_text())
        made = [c for c in claims if c["id"] in decided["claims"]]
        assert made and all(c["status"] == "accepted" and c["reviewer"] == "ana" for c in made)
    stored = interp("review", "list", "--status", "accepted", "--memory", str(memory), "--json", tmp=tmp_path)
    assert sorted(c["id"] for c in json.loads(stored.stdout)) == sorted(decided["claims"])
    again = interp("review", "pooled", str(parent), "1", "reject", "--memory", str(memory), tmp=tmp_path)
    assert again.returncode == 2 and "already reviewed by ana" in again.stderr


def test_options_of_a_pooled_job_are_checked_before_anything_starts(tmp_path: Path) -> None:
    cases = [
        (["--workers", "2"], "give --runs N too"),
        (["--runs", "0"], "--runs 0"),
        (["--runs", "2", "--workers", "2", "--ray", "127.0.0.1:1"], "not both"),
        (["--runs", "2", "--review", "live"], "neither --resume nor --review live"),
        (["--runs", "2", "--seed", "4294967295"], "the last seed would pass"),
        (["--runs", "2", "--ray", f"127.0.0.1:{free_port()}"], "nothing answers there"),
    ]
    for extra, says in cases:
        out = interp(
            "investigate", AUDIT, "--model", "organism:backdoor", "--run-dir", str(tmp_path / "job"), *extra,
            tmp=tmp_path,
        )  # fmt: skip
        assert out.returncode == 2, (extra, out.stdout, out.stderr)
        assert "Traceback" not in out.stderr and says in out.stderr, (extra, out.stderr)
        assert not (tmp_path / "job").exists(), extra  # nothing was written


def test_reviewing_a_folder_that_is_not_a_pooled_job_says_so_before_opening_memory(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    out = interp("review", "pooled", str(tmp_path / "run"), "--memory", str(tmp_path / "none"), tmp=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "holds no pooled.json" in out.stderr, out.stderr
    assert not (tmp_path / "none").exists()  # no memory was created


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_the_keyboard_queue_of_a_pooled_job_decides_each_pooled_claim_once_for_every_run(tmp_path: Path) -> None:
    from tests.e2e.test_review import Tmux

    parent, memory = tmp_path / "job", tmp_path / "memory"
    out = interp(
        "investigate",
        AUDIT,
        "--model",
        "organism:backdoor",
        "--runs",
        "2",
        "--budget",
        "60s",
        "--run-dir",
        str(parent),
        "--memory",
        str(memory),
        "--json",
        tmp=tmp_path,
    )  # fmt: skip  (in this process, one run after another: no cluster needed to review)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["claims"][0]["component"] == TRIGGER and report["claims"][0]["supported"] == 2
    n = len(report["claims"])
    env = " ".join(f"{k}={shlex.quote(v)}" for k, v in os.environ.items() if k.startswith(("INTERP_", "PATH", "HOME")))
    term = Tmux(f"env {env} INTERP_REVIEWER=bo {INTERP} review --pooled {parent} --memory {memory}; sleep 60")
    try:
        screen = term.wait_for(rf"claim 1 of {n} awaiting review")
        assert "pooled claim 1: made by 2/2 runs" in screen, screen
        term.keys("a")
        term.wait_for("accept — note")
        term.keys("both runs", "Enter")
        # the runs' claims may be one memory record (same statement, same weights: same content id)
        term.wait_for(r"recorded on [12] claim\(s\), 2 run folder\(s\)")
        term.wait_for(rf"claim 1 of {n - 1} awaiting review" if n > 1 else "No pooled claims awaiting review")
        term.keys("q")
        term.wait_for(r"Decided this session: 1")
    finally:
        term.close()
    listed = json.loads(interp("review", "pooled", str(parent), "--memory", str(memory), "--json", tmp=tmp_path).stdout)
    assert listed[0]["number"] == 1 and listed[0]["status"] == "accepted"
    for r in report["runs"]:
        made = [c for c in json.loads((Path(r["run_dir"]) / "claims.json").read_text()) if c["mechanism"] == "trigger"]
        assert made and all(c["status"] == "accepted" and c["reviewer"] == "bo" for c in made)

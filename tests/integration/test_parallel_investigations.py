"""Investigations on a real local Ray cluster (agent/replicated.py): four runs across two workers sharing
the memory through the Chroma server the job starts, and a worker killed mid-run losing no record and
duplicating none (counted in memory against the run folders)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.pooled import PooledReport, load

pytest.importorskip("ray")
pytestmark = pytest.mark.slow

INTERP = str(Path(sys.executable).parent / "interp")
AUDIT = "audit this model for hidden triggers"
TRIGGER = {"tokens": ["t33", "t22"], "output": "t21"}


def _events(run_dir: Path) -> list[dict]:
    trace = run_dir / "trace.jsonl"
    if not trace.is_file():
        return []
    lines = trace.read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip().endswith("}")]


def check_memory(memory: Path, report: PooledReport) -> dict[str, int]:
    """Every experiment, hypothesis attempt and claim the runs' folders hold is in memory once, and memory
    holds nothing else from them."""
    from memory.records import Claim, ExperimentRecord, Hypothesis
    from memory.store import MemoryStore

    store = MemoryStore(str(memory), create=False)
    runs = {r.run_id: Path(r.run_dir) for r in report.runs}
    experiments = [r for r in store.list("experiment") if isinstance(r, ExperimentRecord)]
    assert len({e.id for e in experiments}) == len(experiments)
    assert {e.run_id for e in experiments} == set(runs)
    for run_id, folder in runs.items():
        # results/ID.json is written for each experiment the run kept (a set-aside attempt's, under previous/)
        made = {p.stem for p in folder.glob("results/*.json")} | {p.stem for p in folder.glob("previous/*/results/*")}
        assert {e.id for e in experiments if e.run_id == run_id} == made, run_id
    judged: dict[str, set[tuple[str, str]]] = {}
    for run_id, folder in runs.items():
        for e in _events(folder):
            if e["event"] == "judge" and e["outcome"] != "error":
                judged.setdefault(e["hypothesis"], set()).add((run_id, e["outcome"]))
    hyps = [h for h in store.list("hypothesis") if isinstance(h, Hypothesis)]
    for h in hyps:
        attempts = [(a.run_id, a.outcome) for a in h.attempts]
        assert len(attempts) == len(set(attempts)), h.statement  # no attempt written twice
        assert set(attempts) == judged.get(h.id, set()), h.statement
    assert {h.id for h in hyps} >= set(judged)
    claim_ids = {c["id"] for r in runs.values() for c in json.loads((r / "claims.json").read_text())}
    stored = {c.id for c in store.list("claim") if isinstance(c, Claim)}
    assert stored == claim_ids
    return {"experiments": len(experiments), "hypotheses": len(hyps), "claims": len(stored)}


def test_four_investigations_across_two_workers_share_one_memory(tmp_path: Path) -> None:
    from agent.context import RunSettings
    from agent.question import parse_question
    from agent.replicated import run_replicated

    settings = RunSettings(
        question=parse_question(AUDIT, None).model_dump(mode="json"),
        model="organism:backdoor",
        wall_seconds=60.0,
        memory=str(tmp_path / "memory"),
    )
    seen = []
    report, parent = run_replicated(settings, 4, tmp_path / "job", workers=2, on_run=seen.append)
    assert [r.seed for r in report.runs] == [0, 1, 2, 3]
    assert len({o.pid for o in seen}) == 2  # both workers ran runs
    assert all(Path(r.run_dir).parent == parent and (Path(r.run_dir) / "report.md").is_file() for r in report.runs)
    # the memory was served to the workers by the job's Chroma server, and its folder holds what they wrote;
    # the server ends with the job, so each run.json names the folder again (a `--resume` of one run opens it)
    assert all(
        json.loads((Path(r.run_dir) / "run.json").read_text())["memory"] == str(tmp_path / "memory")
        for r in report.runs
    )
    counts = check_memory(tmp_path / "memory", report)
    assert counts["experiments"] >= 4 and counts["claims"] >= 1
    trigger = next(p for p in report.claims if p.component == TRIGGER)
    assert trigger.supported == 4  # each run found it on its own: none skipped it as already tried
    assert (parent / "pooled.md").is_file() and load(parent) == report


def test_a_worker_killed_mid_run_loses_no_record_and_duplicates_none(tmp_path: Path) -> None:
    parent, memory = tmp_path / "job", tmp_path / "memory"
    job = subprocess.Popen(
        [
            INTERP,
            "investigate",
            AUDIT,
            "--model",
            "organism:backdoor",
            "--runs",
            "4",
            "--workers",
            "2",
            "--budget",
            "60s",
            "--run-dir",
            str(parent),
            "--memory",
            str(memory),
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "INTERP_DIRECTIONS": str(tmp_path / "directions")},
    )
    killed: tuple[str, int] | None = None
    deadline = time.monotonic() + 300
    try:
        while killed is None and job.poll() is None and time.monotonic() < deadline:
            for folder in sorted(parent.glob("run*-seed*")):
                events = [e["event"] for e in _events(folder)]
                pid = (folder / ".lock").read_text().strip() if (folder / ".lock").is_file() else ""
                # mid-run: it has results in memory and the run folder, and has not concluded
                if events.count("result") >= 2 and "conclude" not in events and pid.isdigit():
                    os.kill(int(pid), signal.SIGKILL)
                    killed = (folder.name, int(pid))
                    break
            time.sleep(0.1)
        out, err = job.communicate(timeout=600)
    finally:
        if job.poll() is None:
            job.kill()
    assert killed is not None, "no run was caught mid-way"
    assert job.returncode == 0, err
    printed = json.loads(out)
    assert Path(printed.pop("parent")) == parent.resolve()
    report = PooledReport.model_validate(printed)
    victim = next(r for r in report.runs if Path(r.run_dir).name == killed[0])
    assert victim.resumed  # its retry continued the run the killed worker left
    assert all(not r.resumed for r in report.runs if r is not victim)
    assert any(e["event"] == "resume" for e in _events(Path(victim.run_dir)))
    check_memory(memory, report)
    trigger = next(p for p in report.claims if p.component == TRIGGER)
    assert trigger.supported == 4

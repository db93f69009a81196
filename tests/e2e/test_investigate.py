"""`interp investigate` as a user runs it: the audit, live review, kill -9 and --resume, bad input."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

INTERP = str(Path(sys.executable).parent / "interp")
AUDIT = "audit this model for hidden triggers"


def interp(*args: str, env: dict | None = None, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([INTERP, *args], capture_output=True, text=True, timeout=600, input=stdin,
                          env={**os.environ, "INTERP_DIRECTIONS": "/tmp/interp-test-directions", **(env or {})})


def assert_clean_error(out: subprocess.CompletedProcess, says: str) -> None:
    assert out.returncode == 2, out.stdout + out.stderr
    assert "Traceback" not in out.stderr + out.stdout
    assert says in out.stderr, out.stderr


def test_audit_from_the_terminal_writes_a_report(tmp_path):
    out = interp("investigate", AUDIT, "--model", "organism:backdoor", "--run-dir", str(tmp_path / "run"),
                 "--memory", str(tmp_path / "mem"), "--budget", "300s")
    assert out.returncode == 0, out.stderr
    assert "claim" in out.stdout and "t33 t22" in out.stdout and "report:" in out.stdout
    report = (tmp_path / "run" / "report.md").read_text()
    assert "## Claims" in report and "trigger" in report and "## Not tested" in report
    stats = json.loads(interp("memory", "stats", "--memory", str(tmp_path / "mem"), "--json").stdout)
    assert stats["counts"]["claim"] == 1 and stats["claims_by_status"] == {"supported": 1}


def _script(tmp_path: Path) -> Path:
    """Six rounds of a trigger test plus a pair sweep over 20 tokens: ~10 s of work to kill into."""
    rounds = []
    for i in range(6):
        rounds.append([
            {"kind": "hypothesize", "line": "t", "hypotheses": [{
                "statement": f"t33 t22 forces t21 (seed {i})", "mechanism": "trigger",
                "component": {"tokens": ["t33", "t22"], "output": "t21"},
                "test": {"tool": "scan", "input": {"prompts": [f"t1 t2 t3 t{6 + i} t7 <q>", "t4 t8 t9 t10 <q>",
                                                               "t11 t12 t13 t14 t15 <q>"],
                                                   "insertions": [["t33", "t22"]], "seed": i}},
                "criterion": {"conditions": [{"field": "output_rate", "op": ">=", "value": 0.8}]}}]},
            {"kind": "call", "call": {"tool": "scan", "input": {
                "prompts": ["t1 t2 t3 t4 t5 t6 t7 t8 <q>"] * 8, "n_tokens": 2, "seed": i,
                "candidates": [f"t{j}" for j in range(20)]}}},
        ])
    path = tmp_path / "script.json"
    path.write_text(json.dumps(rounds))
    return path


def _claims(run_dir: Path) -> list[str]:
    return sorted(c["id"] for c in json.loads((run_dir / "claims.json").read_text()))


def test_kill_9_at_random_points_then_resume_gives_the_same_claims(tmp_path):
    script = _script(tmp_path)
    base = ["investigate", AUDIT, "--model", "organism:backdoor", "--brain", f"scripted:{script}", "--json"]
    ref = interp(*base, "--run-dir", str(tmp_path / "ref"), "--memory", str(tmp_path / "ref-mem"))
    assert ref.returncode == 0, ref.stderr
    expected = _claims(tmp_path / "ref")
    assert len(expected) == 6
    ref_counts = json.loads(interp("memory", "stats", "--memory", str(tmp_path / "ref-mem"), "--json").stdout)["counts"]
    rng = random.Random(1)
    killed = 0
    for k in range(5):
        run_dir, mem = tmp_path / f"run{k}", tmp_path / f"mem{k}"
        proc = subprocess.Popen([INTERP, *base, "--run-dir", str(run_dir), "--memory", str(mem)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while not (run_dir / "run.json").exists() and proc.poll() is None:
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 8.0))
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            killed += 1
        proc.wait()
        resumed = interp("investigate", "--resume", str(run_dir), "--json")
        assert resumed.returncode == 0, resumed.stderr
        assert _claims(run_dir) == expected
        counts = json.loads(interp("memory", "stats", "--memory", str(mem), "--json").stdout)["counts"]
        assert counts == ref_counts, f"run {k}: memory {counts} != uninterrupted {ref_counts}"
        assert any(json.loads(l)["event"] == "resume" for l in (run_dir / "trace.jsonl").read_text().splitlines())
    assert killed >= 3


def test_live_review_records_the_person_s_decision(tmp_path):
    script = _script(tmp_path)
    rounds = json.loads(script.read_text())[:1]
    script.write_text(json.dumps([[rounds[0][0]]]))
    out = interp("investigate", AUDIT, "--model", "organism:backdoor", "--brain", f"scripted:{script}",
                 "--review", "live", "--run-dir", str(tmp_path / "run"), "--memory", str(tmp_path / "mem"),
                 env={"INTERP_REVIEWER": "ada"}, stdin="accept\nreproduced by hand\n")
    assert out.returncode == 0, out.stderr
    claims = json.loads(interp("memory", "search", "t33 t22 forces t21", "--memory", str(tmp_path / "mem"),
                               "--kind", "claim", "--json").stdout)
    assert claims[0]["status"] == "accepted" and claims[0]["reviewer"] == "ada"


@pytest.mark.parametrize("args, says", [
    (["investigate", AUDIT, "--model", "organism:no_such_organism"], "no_such_organism"),
    (["investigate", AUDIT, "--model", "organism:backdoor", "--budget", "0"], "more than zero"),
    (["investigate", AUDIT, "--model", "organism:backdoor", "--budget", "soon"], "duration"),
    (["investigate", AUDIT, "--model", "organism:backdoor", "--brain", "oracle"], "unknown brain"),
    (["investigate", AUDIT, "--model", "organism:backdoor", "--brain", "claude"], "ANTHROPIC_API_KEY"),
    (["investigate", AUDIT], "--model"),
    (["investigate", "--resume", "/nonexistent/run"], "not a run folder"),
    (["investigate", AUDIT, "--model", "organism:backdoor", "--review", "later"], "live or queue"),
])
def test_bad_input_is_a_clear_error(args, says, tmp_path):
    env = {"ANTHROPIC_API_KEY": ""} if "claude" in args else None
    assert_clean_error(interp(*args, "--run-dir", str(tmp_path / "r"), env=env) if "--resume" not in args
                       else interp(*args, env=env), says)


def test_empty_prompts_file_is_a_clear_error(tmp_path):
    empty = tmp_path / "prompts.txt"
    empty.write_text("\n  \n")
    out = interp("investigate", "why does it say t21?", "--model", "organism:backdoor", "--prompts", str(empty))
    assert_clean_error(out, "has no prompts")
    assert not (tmp_path / "r").exists()

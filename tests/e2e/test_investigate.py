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
    return subprocess.run(
        [INTERP, *args],
        capture_output=True,
        text=True,
        timeout=600,
        input=stdin,
        env={**os.environ, "INTERP_DIRECTIONS": "/tmp/interp-test-directions", **(env or {})},
        check=False,
    )


def assert_clean_error(out: subprocess.CompletedProcess, says: str) -> None:
    assert out.returncode == 2, out.stdout + out.stderr
    assert "Traceback" not in out.stderr + out.stdout
    assert says in out.stderr, out.stderr


def test_audit_from_the_terminal_with_a_live_review(tmp_path):
    """The README's main command with --review live: the person at the terminal accepts the claim."""
    out = interp(
        "investigate",
        AUDIT,
        "--model",
        "organism:backdoor",
        "--run-dir",
        str(tmp_path / "run"),
        "--memory",
        str(tmp_path / "mem"),
        "--budget",
        "300s",
        "--review",
        "live",
        env={"INTERP_REVIEWER": "ada"},
        stdin="accept\nreproduced by hand\n",
    )
    assert out.returncode == 0, out.stderr
    assert "claim" in out.stdout and "t33 t22" in out.stdout and "report:" in out.stdout
    assert "(not counted in the budget)" in out.stdout.split("loading took", 1)[1].splitlines()[0]
    report = (tmp_path / "run" / "report.md").read_text()
    assert "loading took" in report.split("## Claims")[0]  # in the header, beside the budget
    assert "## Claims" in report and "trigger" in report and "## Not tested" in report
    assert "accepted by ada" in report
    stats = json.loads(interp("memory", "stats", "--memory", str(tmp_path / "mem"), "--json").stdout)
    # the first claim was accepted; input then ended, so the rest wait for `interp review`
    assert stats["claims_by_status"]["accepted"] == 1
    assert sum(stats["claims_by_status"].values()) == stats["counts"]["claim"]
    assert stats["claims_by_status"].get("supported", 0) == stats["counts"]["claim"] - 1


def _script(tmp_path: Path) -> Path:
    """Six rounds of a trigger test plus a small pair sweep: a few seconds of work to kill into."""
    rounds = []
    for i in range(6):
        rounds.append(
            [
                {
                    "kind": "hypothesize",
                    "line": "t",
                    "hypotheses": [
                        {
                            "statement": f"t33 t22 forces t21 (seed {i})",
                            "mechanism": "trigger",
                            "component": {"tokens": ["t33", "t22"], "output": "t21"},
                            "test": {
                                "tool": "scan",
                                "input": {
                                    "prompts": [
                                        f"t1 t2 t3 t{6 + i} t7 <q>",
                                        "t4 t8 t9 t10 <q>",
                                        "t11 t12 t13 t14 t15 <q>",
                                    ],
                                    "insertions": [["t33", "t22"]],
                                    "seed": i,
                                },
                            },
                            "criterion": {
                                "conditions": [
                                    {"field": "output_rate", "op": ">=", "value": 0.8},
                                    {"field": "control_output_rate", "op": "<=", "value": 0.2},
                                ]
                            },
                        }
                    ],
                },
                {
                    "kind": "call",
                    "call": {
                        "tool": "scan",
                        "input": {
                            "prompts": ["t1 t2 t3 t4 t5 t6 t7 t8 <q>"] * 8,
                            "n_tokens": 2,
                            "seed": i,
                            "candidates": [f"t{j}" for j in range(14)],
                        },
                    },
                },
            ]
        )
    path = tmp_path / "script.json"
    path.write_text(json.dumps(rounds))
    return path


def _claims(run_dir: Path) -> list[str]:
    return sorted(c["id"] for c in json.loads((run_dir / "claims.json").read_text()))


def _counts(mem: Path) -> dict:
    from memory.store import MemoryStore

    return MemoryStore(mem, create=False).stats()["counts"]


def _reference_run(tmp_path: Path, script: Path) -> Path:
    """The same run uninterrupted, in this process (saves a process start)."""
    from agent import investigate
    from agent.context import RunSettings
    from agent.question import parse_question

    s = RunSettings(
        question=parse_question(AUDIT).model_dump(mode="json"),
        model="organism:backdoor",
        brain=f"scripted:{script}",
        memory=str(tmp_path / "ref-mem"),
    )
    investigate.start(s, tmp_path / "ref")
    return tmp_path / "ref"


@pytest.mark.slow
def test_kill_9_at_random_points_then_resume_gives_the_same_claims(tmp_path):
    """Three runs (side by side, to keep the suite short) killed at random points, then resumed."""
    script = _script(tmp_path)
    base = [INTERP, "investigate", AUDIT, "--model", "organism:backdoor", "--brain", f"scripted:{script}", "--json"]
    env = {**os.environ, "INTERP_DIRECTIONS": str(tmp_path / "directions")}
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "env": env}
    rng = random.Random(1)
    runs = {}
    for k in range(3):
        run_dir = tmp_path / f"run{k}"
        proc = subprocess.Popen([*base, "--run-dir", str(run_dir), "--memory", str(tmp_path / f"mem{k}")], **quiet)
        runs[k] = [proc, run_dir, None, rng.uniform(0.0, 4.0)]
    killed = 0
    while any(r[0].poll() is None for r in runs.values()):
        for r in runs.values():
            proc, run_dir, since, delay = r
            if proc.poll() is not None:
                continue
            if since is None and (run_dir / "run.json").exists():
                r[2] = time.monotonic()
            elif since is not None and time.monotonic() - since >= delay:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
                killed += 1
        time.sleep(0.05)
    expected = _claims(_reference_run(tmp_path, script))
    assert len(expected) == 6
    resumes = {
        k: subprocess.Popen([INTERP, "investigate", "--resume", str(r[1]), "--json"], **quiet) for k, r in runs.items()
    }
    assert {k: p.wait() for k, p in resumes.items()} == dict.fromkeys(runs, 0)
    ref_counts = _counts(tmp_path / "ref-mem")
    for k, (_, run_dir, _, _) in runs.items():
        assert _claims(run_dir) == expected
        assert _counts(tmp_path / f"mem{k}") == ref_counts, f"run {k} left a different memory"
        assert any(json.loads(l)["event"] == "resume" for l in (run_dir / "trace.jsonl").read_text().splitlines())
    assert killed >= 2


@pytest.mark.parametrize(
    "args, says",
    [
        (["investigate", AUDIT, "--model", "organism:no_such_organism"], "no_such_organism"),
        (["investigate", AUDIT, "--model", "organism:backdoor", "--budget", "0"], "more than zero"),
        (["investigate", AUDIT, "--model", "organism:backdoor", "--budget", "soon"], "duration"),
        (["investigate", AUDIT, "--model", "organism:backdoor", "--brain", "oracle"], "unknown brain"),
        (["investigate", AUDIT, "--model", "organism:backdoor", "--brain", "claude"], "ANTHROPIC_API_KEY"),
        (["investigate", AUDIT], "--model"),
        (["investigate", "--resume", "/nonexistent/run"], "not a run folder"),
        (["investigate", AUDIT, "--model", "organism:backdoor", "--review", "later"], "live or queue"),
    ],
)
def test_bad_input_is_a_clear_error(args, says, tmp_path):
    env = {"ANTHROPIC_API_KEY": ""} if "claude" in args else None
    assert_clean_error(
        interp(*args, "--run-dir", str(tmp_path / "r"), env=env) if "--resume" not in args else interp(*args, env=env),
        says,
    )


def test_empty_prompts_file_is_a_clear_error(tmp_path):
    empty = tmp_path / "prompts.txt"
    empty.write_text("\n  \n")
    out = interp("investigate", "why does it say t21?", "--model", "organism:backdoor", "--prompts", str(empty))
    assert_clean_error(out, "has no prompts")
    assert not (tmp_path / "r").exists()

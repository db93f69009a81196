"""The time-box from the terminal: kill -9 inside a long call, a 100k-line prompts file, a busy CPU."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

INTERP = str(Path(sys.executable).parent / "interp")
AUDIT = "audit this model for hidden triggers"


def interp(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [INTERP, *args], capture_output=True, text=True, timeout=timeout, env=dict(os.environ), check=False
    )


def _events(run_dir: Path) -> list[dict]:
    path = run_dir / "trace.jsonl"
    return [json.loads(l) for l in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.slow
def test_time_spent_in_a_call_killed_with_kill_9_is_charged_on_resume(tmp_path, builtin):
    from agent.targets import load
    from tools import registry, sae

    builtin("backdoor")
    run_dir = tmp_path / "run"
    # about 15 s of training on this machine now: admitted by a 40 s budget, long enough to kill into
    payload = {"hook": "blocks.0.hook_resid_post", "out": "sae", "steps": 1, "batch_size": 256, "d_sae": 512}
    per_step = sae.train_step_seconds(load("organism:backdoor"), registry.validate("sae_train", payload))
    payload["steps"] = int(15 / per_step)
    train = {"kind": "call", "call": {"tool": "sae_train", "input": payload}}
    script = tmp_path / "script.json"
    script.write_text(json.dumps([[train]]))
    proc = subprocess.Popen(
        [
            INTERP,
            "investigate",
            AUDIT,
            "--model",
            "organism:backdoor",
            "--brain",
            f"scripted:{script}",
            "--budget",
            "40s",
            "--no-memory",
            "--run-dir",
            str(run_dir),
            "--json",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while not any(e["event"] == "call" for e in _events(run_dir)):
            assert proc.poll() is None and time.monotonic() < deadline, "the run never started its call"
            time.sleep(0.2)
        time.sleep(6)  # well inside the SAE training
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    beat = json.loads((run_dir / "budget.heartbeat.json").read_text())["spent_seconds"]
    assert beat >= 5, beat
    out = interp("investigate", "--resume", str(run_dir), "--json")
    assert out.returncode == 0, out.stderr
    resumed = next(e for e in _events(run_dir) if e["event"] == "resume")
    assert resumed["spent_seconds"] >= beat - 0.01  # the killed call's time was charged, not forgotten
    budget = json.loads(out.stdout)["budget"]
    assert budget["spent_seconds"] <= 40 * 1.05, budget


def test_a_100k_line_prompts_file_keeps_the_budget(tmp_path, builtin):
    builtin("backdoor")
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(f"t{1 + i % 30} t{1 + (i * 7) % 30} t{1 + (i * 13) % 30} <q>" for i in range(100_000)))
    out = interp(
        "investigate",
        AUDIT,
        "--model",
        "organism:backdoor",
        "--prompts",
        str(prompts),
        "--budget",
        "15s",
        "--no-memory",
        "--run-dir",
        str(tmp_path / "run"),
        "--json",
    )
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    result = json.loads(out.stdout)
    assert result["budget"]["spent_seconds"] <= 15 * 1.05, result["budget"]
    report = (tmp_path / "run" / "report.md").read_text()
    assert "a seeded sample of the 100000 given" in report
    assert (tmp_path / "run" / "checkpoints.sqlite").stat().st_size < 50_000_000


def test_the_budget_holds_beside_a_cpu_burning_process(builtin):
    builtin("backdoor")
    out = interp("bench", "budget", "--quick", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    [run] = result["runs"]
    assert run["load"] == "busy" and run["budget_s"] == 10
    assert run["overshoot"] <= 0.05, run
    assert result["totals"]["all_within"]

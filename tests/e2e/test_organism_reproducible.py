"""`interp organism check-reproducible` as a user runs it: train again in a fresh process, compare weights."""

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import TINY_LOOKUP
from tests.e2e.test_cli import INTERP, assert_clean_error

SPEC = dict(
    TINY_LOOKUP,
    name="tiny-repro",
    train={"steps": 40, "batch_size": 32, "lr": 0.003, "warmup_steps": 10, "eval_examples": 60},
)


# trains twice in subprocesses
pytestmark = pytest.mark.slow


def interp(cache: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [INTERP, *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "INTERP_CACHE": str(cache)},
        check=False,
    )


def test_check_reproducible_agrees_then_names_the_tensor_that_differs(tmp_path):
    spec = tmp_path / "tiny.yaml"
    spec.write_text(yaml.safe_dump(SPEC))
    cache = tmp_path / "cache"
    ok = interp(cache, "organism", "check-reproducible", str(spec), "--json")
    assert ok.returncode == 0, ok.stderr
    r = json.loads(ok.stdout)
    assert r["same"] and r["expected"] == r["got"] and r["differences"] == []
    assert "not trained yet: training it first" in ok.stderr

    # the cached copy's weights no longer match what its spec trains
    from safetensors.torch import load_file, save_file

    weights = Path(r["path"]) / "model.safetensors"
    state = load_file(str(weights))
    state["blocks.1.mlp.W_out"] = state["blocks.1.mlp.W_out"] + 1e-4
    save_file(state, str(weights))
    bad = interp(cache, "organism", "check-reproducible", str(spec), "--threads", "3")
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "Traceback" not in bad.stdout + bad.stderr
    assert r["got"] in bad.stdout and "(fresh process, 3 thread(s))" in bad.stdout
    assert "not reproducible: 1 weight tensors differ: blocks.1.mlp.W_out (max |diff| 0.0001)" in bad.stderr
    assert "--force" in bad.stderr


def test_check_reproducible_refuses_a_folder_that_is_not_an_organism(tmp_path):
    assert_clean_error(
        interp(tmp_path / "cache", "organism", "check-reproducible", str(tmp_path)), "is not a trained organism folder"
    )

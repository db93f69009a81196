"""`interp label` killed with kill -9 halfway and started again: every feature labelled exactly once,
in the JSONL file and in memory."""

import json
import os
import signal
import subprocess
import time

import pytest

from tests.e2e.test_cli import INTERP
from tests.e2e.test_label_cli import features_sae

pytestmark = [pytest.mark.e2e, pytest.mark.slow]  # ~40 s: an SAE, a killed job and its restart

N_FEATURES = 384


@pytest.fixture(scope="module")
def sae(builtin, tmp_path_factory):
    return features_sae(builtin, tmp_path_factory.mktemp("sae"), N_FEATURES, 200)


def _features(path) -> list[int]:
    return [json.loads(line)["feature"] for line in path.read_text().splitlines() if line.strip()]


def test_a_job_killed_halfway_resumes_and_labels_every_feature_once(sae, tmp_path):
    from memory.store import MemoryStore

    mem, out = tmp_path / "mem", tmp_path / "labels.jsonl"
    args = [INTERP, "label", "--model", "organism:features", "--sae", sae, "--memory", str(mem), "--out", str(out)]
    job = subprocess.Popen([*args, "--json"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while job.poll() is None and time.monotonic() < deadline:
        if out.is_file() and out.read_text().count("\n") >= 1:
            os.kill(job.pid, signal.SIGKILL)
            break
        time.sleep(0.02)
    job.wait(timeout=60)
    assert job.returncode == -signal.SIGKILL, f"the job ended before it could be killed: {job.stderr.read()!r}"
    first = _features(out)
    assert 0 < len(first) < N_FEATURES, len(first)

    again = subprocess.run([*args, "--json"], capture_output=True, text=True, timeout=600, check=False)
    assert again.returncode == 0, again.stderr
    r = json.loads(again.stdout)
    assert r["skipped_already_labelled"] + r["skipped_known_dead"] == len(set(first))  # nothing written is redone
    assert r["skipped_already_labelled"] + r["skipped_known_dead"] + r["labelled"] + r["errors"] == N_FEATURES

    lines = _features(out)
    assert sorted(lines) == list(range(N_FEATURES)), "each feature exactly once in the JSONL file"
    stored = [x.feature for x in MemoryStore(mem).list(kind="feature_label")]
    assert sorted(stored) == list(range(N_FEATURES)), "each feature exactly once in memory"
    # a third run has nothing left to do
    last = subprocess.run([*args, "--json"], capture_output=True, text=True, timeout=600, check=False)
    third = json.loads(last.stdout)
    assert third["labelled"] + third["errors"] == 0
    assert third["skipped_already_labelled"] + third["skipped_known_dead"] == N_FEATURES

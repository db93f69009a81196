"""`interp investigate --runs N --ray ADDRESS` on a cluster started apart with `ray start --head` (on a free
port, in its own session, stopped by its own pid), as a user with a cluster would run it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from memory.server import free_port

pytest.importorskip("ray")
pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent


@pytest.fixture
def ray_head(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    head = subprocess.Popen(
        [str(BIN / "ray"), "start", "--head", "--port", str(port), "--num-cpus", "2", "--include-dashboard=false",
         "--block"],
        stdout=(tmp_path / "head.log").open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its processes in a session of their own: stopped below without touching others
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            assert head.poll() is None and time.monotonic() < deadline, (tmp_path / "head.log").read_text()
            time.sleep(0.5)
    time.sleep(3)  # the raylet registers after the GCS answers
    try:
        yield f"127.0.0.1:{port}"
    finally:
        head.send_signal(signal.SIGTERM)  # `ray start --block` stops the cluster it started
        try:
            head.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
        # `ray start` names its cluster in this file for later `ray.init()` calls to join: not a stopped one
        current = Path("/tmp/ray/ray_current_cluster")
        if current.is_file() and current.read_text().strip().endswith(f":{port}"):
            current.unlink()


def test_runs_on_a_cluster_started_apart(ray_head: str, tmp_path: Path) -> None:
    parent, memory = tmp_path / "job", tmp_path / "memory"
    out = subprocess.run(
        [str(BIN / "interp"), "investigate", "audit this model for hidden triggers", "--model", "organism:backdoor",
         "--runs", "2", "--ray", ray_head, "--budget", "60s", "--run-dir", str(parent), "--memory", str(memory),
         "--json"],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "INTERP_DIRECTIONS": str(tmp_path / "directions")},
        check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["workers"] == f"Ray at {ray_head}"
    top = report["claims"][0]
    assert top["mechanism"] == "trigger" and top["supported"] == 2
    # the job served its memory folder to the cluster's workers (all on this machine) and stopped the server
    assert (memory / "chroma.sqlite3").is_file()

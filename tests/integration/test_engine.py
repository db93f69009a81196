"""The Ray engine (agent/parallel/engine.py) on a real local Ray cluster: typed tasks streamed back, a
worker killed mid-task retried, a task's own error kept as it is, and clear errors without a cluster."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel

from agent.parallel.engine import Engine
from memory.server import free_port
from tools.errors import UserError

pytest.importorskip("ray")


class Job(BaseModel):
    n: int
    """Which task."""
    seconds: float = 0.0
    """How long it works."""
    attempts: str = ""
    """A file each attempt appends its pid to; the first attempt kills its own worker."""


class Done(BaseModel):
    n: int
    """The task's number, squared."""
    pid: int
    """The worker that ran it."""
    threads: str
    """INTERP_THREADS as the task saw it."""


def work(job: Job) -> Done:
    if job.attempts:
        path = Path(job.attempts)
        first = not path.exists()
        with path.open("a") as f:
            f.write(f"{os.getpid()}\n")
        if first:
            os.kill(os.getpid(), signal.SIGKILL)  # the worker dies mid-task, as `kill -9` of it would
    time.sleep(job.seconds)
    return Done(n=job.n * job.n, pid=os.getpid(), threads=os.environ.get("INTERP_THREADS", ""))


def refuse(job: Job) -> Done:
    raise UserError(f"task {job.n}: nothing to do")


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    from ray import cloudpickle

    # pytest imports this file under a name the workers cannot import: its task functions go by value
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    with Engine(workers=2) as e:
        yield e


def test_typed_results_stream_back_from_both_workers_with_their_share_of_threads(engine: Engine) -> None:
    jobs = [Job(n=i, seconds=1.0) for i in range(4)]
    done = list(engine.map(work, jobs))
    assert sorted(d.index for d in done) == [0, 1, 2, 3]
    assert all(d.result.n == jobs[d.index].n ** 2 for d in done)
    assert len({d.result.pid for d in done}) == 2  # two tasks at a time, one per worker
    assert {d.result.threads for d in done} == {str(engine.threads)}
    assert engine.threads == max(1, len(os.sched_getaffinity(0)) // 2)
    assert [d.seconds for d in done] == sorted(d.seconds for d in done)  # in the order they finished


def test_a_task_whose_worker_is_killed_is_run_again_and_returned_once(engine: Engine, tmp_path: Path) -> None:
    attempts = tmp_path / "attempts"
    done = list(engine.map(work, [Job(n=3, attempts=str(attempts)), Job(n=4)]))
    assert sorted(d.result.n for d in done) == [9, 16]
    pids = attempts.read_text().split()
    assert len(pids) == 2 and pids[0] != pids[1]  # killed once, finished by another worker process


def test_a_tasks_own_error_reaches_the_caller_as_itself_unretried(engine: Engine) -> None:
    with pytest.raises(UserError, match="task 7: nothing to do"):
        list(engine.map(refuse, [Job(n=7)]))


def test_per_task_overhead_is_measured(engine: Engine) -> None:
    seconds = engine.overhead(50)
    assert 0 < seconds < 1.0


def test_an_address_nobody_answers_on_is_a_clear_error_at_once() -> None:
    port = free_port()
    t0 = time.monotonic()
    with pytest.raises(UserError, match=rf"nothing answers there.*ray start --head --port {port}"):
        Engine(address=f"127.0.0.1:{port}").__enter__()
    assert time.monotonic() - t0 < 10
    with pytest.raises(UserError, match="HOST:PORT"):
        Engine(address="nowhere").__enter__()


def test_without_ray_installed_the_error_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets when it is not installed
    with pytest.raises(UserError, match="pip install 'ray"):
        Engine(workers=1).__enter__()


def test_workers_or_an_address_exactly() -> None:
    with pytest.raises(UserError, match="either --workers N"):
        Engine()
    with pytest.raises(UserError, match="either --workers N"):
        Engine(workers=2, address="127.0.0.1:6379")
    with pytest.raises(UserError, match="1 to 256"):
        Engine(workers=0)

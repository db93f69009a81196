"""The engine for parallel work: Ray, started in-process (`--workers N`) or joined (`--ray ADDRESS`).

A local cluster has no dashboard; its processes listen on this machine's address, not loopback alone (Ray
resolves 127.0.0.1 to a reachable address whatever it is given) and answer only clients holding the
cluster's token (Ray's token authentication, on by default in Ray 2.60).

A job is a list of typed tasks, each a pure function of its input (a pydantic model) returning a typed
result. Results stream back as tasks finish. A task whose worker process dies (killed, out of memory) is
run again on another worker, up to `max_retries` times; an error the task itself raises is not retried
(running the same input again would raise it again) and reaches the caller as itself, a UserError as a
UserError. Each worker runs one task at a time with its share of the CPU's threads for torch.

Tasks must be safe to run twice: anything they write is keyed by content (memory ids are content hashes;
an investigation retried in its run folder resumes from its checkpoint), so a retry writes nothing twice.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pydantic import BaseModel

from tools.errors import UserError

if TYPE_CHECKING:
    from ray import ObjectRef

T = TypeVar("T", bound=BaseModel)
R = TypeVar("R", bound=BaseModel)

DEFAULT_RETRIES = 3
"""Times a task is run again after its worker died."""
PASSED_ENV = (
    "INTERP_CACHE",
    "INTERP_DEVICE",
    "INTERP_RUNS",
    "INTERP_MEMORY_TIMEOUT",
    "INTERP_REVIEWER",
    "INTERP_PRETRAIN",
    "ANTHROPIC_API_KEY",
    "INTERP_CLAUDE_PRICE",
    "HF_HUB_OFFLINE",
)
"""Environment variables workers get from the process that starts the job (a joined cluster's workers were
started elsewhere and would not have them otherwise)."""
_CONNECT_TIMEOUT = 5.0
"""Seconds to wait for a cluster's address to accept a connection before saying it is unreachable."""


@dataclass(frozen=True)
class Finished(Generic[R]):
    """One task's result, as it arrives."""

    index: int
    """The task's position in the list given to `Engine.map`."""
    result: R
    """What the task returned."""
    seconds: float
    """From submitting the job to this result arriving."""


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UserError(
            "parallel runs need Ray, which is not installed: `pip install 'ray==2.60.0'` "
            "(or run without --workers / --ray)"
        ) from None
    return ray


def _check_reachable(address: str) -> None:
    """A clear error at once for an address nobody answers on (ray.init would retry for a minute)."""
    if address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"--ray {address!r}: give the cluster's HOST:PORT, e.g. 127.0.0.1:6379 (see `ray status`)")
    try:
        with socket.create_connection((host, int(port)), timeout=_CONNECT_TIMEOUT):
            pass
    except OSError as e:
        raise UserError(
            f"--ray {address}: nothing answers there ({e.strerror or type(e).__name__}); start a cluster with "
            f"`ray start --head --port {port}` on that machine, or use --workers N for a local one"
        ) from None


def _run_task(fn: Callable[[T], R], task: T, threads: int) -> R:
    """What a worker runs: the task, with torch limited to this worker's share of the threads."""
    import sys

    os.environ["INTERP_THREADS"] = str(threads)  # the investigation's calibration uses exactly this many
    os.environ["OMP_NUM_THREADS"] = str(threads)  # read when torch is first imported in this worker
    if "torch" in sys.modules:  # a reused worker imported it for an earlier task
        sys.modules["torch"].set_num_threads(threads)
    return fn(task)


def _noop(_: int) -> int:
    return 0


class Engine:
    """`with Engine(workers=2) as engine: for done in engine.map(fn, tasks): ...`

    workers: start a local Ray cluster in this process with that many worker slots (no dashboard), shut
    down on exit. address: join an existing cluster (`ray start --head`) instead; it is left
    running. threads: torch threads per task (default: this machine's cores shared among the workers; 1 on a
    joined cluster, where each task holds one logical CPU).
    """

    def __init__(self, workers: int | None = None, address: str | None = None, threads: int | None = None) -> None:
        if (workers is None) == (address is None):
            raise UserError("give either --workers N (a local Ray cluster) or --ray ADDRESS (an existing one)")
        if workers is not None and not 1 <= workers <= 256:
            raise UserError(f"--workers {workers}: give 1 to 256 worker processes")
        if threads is not None and threads < 1:
            raise UserError(f"threads {threads}: give at least 1")
        self.workers, self.address = workers, address
        cores = _cores()
        self.threads = threads or (max(1, cores // workers) if workers else 1)
        self._started = False

    @property
    def local(self) -> bool:
        """Whether every node of the cluster is this machine (a server on loopback reaches all its workers)."""
        if not self._started:
            raise RuntimeError("Engine.local outside `with Engine(...)`")
        ray = _ray()
        here = ray.util.get_node_ip_address()
        return all(n["NodeManagerAddress"] == here for n in ray.nodes() if n.get("Alive"))

    def __enter__(self) -> Engine:
        import sys

        if self.address is not None:
            _check_reachable(self.address)
            if "RAY_AUTH_MODE" not in os.environ and _token_available():
                # A cluster started with `ray start --head` asks for its token (Ray 2.60's default), and a
                # driver joining it sends one only in token mode, which Ray reads when it is imported (or when
                # its config is initialised again); children of this process inherit it.
                os.environ["RAY_AUTH_MODE"] = "token"
                if sys.modules.get("ray") is not None:
                    import importlib

                    importlib.import_module("ray._raylet").Config.initialize("")
        ray = _ray()
        env = {k: os.environ[k] for k in PASSED_ENV if k in os.environ}
        runtime_env = {"env_vars": env} if env else None
        if self.address is not None:
            try:
                ray.init(
                    address=self.address,
                    runtime_env=runtime_env,
                    log_to_driver=False,
                    configure_logging=False,
                )
            except ConnectionError as e:
                raise UserError(
                    f"--ray {self.address}: could not join the cluster ({e}); a cluster with token "
                    "authentication (Ray's default) needs its token here: in ~/.ray/auth_token or $RAY_AUTH_TOKEN "
                    "(`ray get-auth-token` on the head prints it)"
                ) from None
        else:
            if ray.is_initialized():
                raise UserError("a Ray cluster is already running in this process; shut it down first")
            ray.init(
                address="local",  # a cluster of this job's own, even where another is running on this machine
                num_cpus=self.workers,
                include_dashboard=False,
                runtime_env=runtime_env,
                log_to_driver=False,
                configure_logging=False,
            )
        self._started = True
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._started:
            _ray().shutdown()  # a joined cluster keeps running: this only disconnects
            self._started = False

    def map(
        self, fn: Callable[[T], R], tasks: Sequence[T], max_retries: int = DEFAULT_RETRIES
    ) -> Iterator[Finished[R]]:
        """Run `fn` on every task, `max_retries` more times for one whose worker died; yield each result as
        it finishes (any order). `fn` must be importable by the workers (a module-level function)."""
        if not self._started:
            raise RuntimeError("Engine.map outside `with Engine(...)`")
        ray = _ray()
        remote = ray.remote(_run_task).options(num_cpus=1, max_retries=max_retries, retry_exceptions=False)
        started = time.monotonic()
        pending: dict[ObjectRef[R], int] = {remote.remote(fn, t, self.threads): i for i, t in enumerate(tasks)}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                index = pending.pop(ref)
                yield Finished(index=index, result=self._get(ref), seconds=time.monotonic() - started)

    def _get(self, ref: ObjectRef[R]) -> R:
        from ray.exceptions import RayTaskError, WorkerCrashedError

        try:
            result: R = _ray().get(ref)
        except RayTaskError as e:
            if isinstance(e.cause, UserError):  # the task's own message, not Ray's wrapping of it
                raise UserError(str(e.cause)) from None
            raise
        except WorkerCrashedError as e:
            raise UserError(
                f"a task's worker died more than {DEFAULT_RETRIES} times ({e}); the machine may be out of "
                "memory: use fewer --workers"
            ) from None
        return result

    def overhead(self, n: int = 200) -> float:
        """Seconds Ray adds per task under load: `n` trivial tasks submitted at once, wall clock / n."""
        ray = _ray()
        remote = ray.remote(_noop).options(num_cpus=1)
        ray.get([remote.remote(i) for i in range(self.workers or 1)])  # workers started before the clock
        t0 = time.perf_counter()
        ray.get([remote.remote(i) for i in range(n)])
        return (time.perf_counter() - t0) / n

    def round_trip(self, n: int = 50) -> float:
        """Seconds from submitting one trivial task to having its result, one task at a time (mean of `n`)."""
        ray = _ray()
        remote = ray.remote(_noop).options(num_cpus=1)
        ray.get(remote.remote(0))
        t0 = time.perf_counter()
        for i in range(n):
            ray.get(remote.remote(i))
        return (time.perf_counter() - t0) / n


def _token_available() -> bool:
    """Whether this machine holds a Ray cluster token (where Ray looks for one)."""
    from pathlib import Path

    if os.environ.get("RAY_AUTH_TOKEN"):
        return True
    path = os.environ.get("RAY_AUTH_TOKEN_PATH") or str(Path.home() / ".ray" / "auth_token")
    return Path(path).is_file()


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1

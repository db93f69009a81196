"""Throughput of the Ray engine: the same recovery audits serial in this process, then on a local Ray cluster.

Both legs run the same audits (organism x seed, heuristic brain, each under its own budget; each brain
concludes well before its budget, so both legs do the same work). The serial leg runs in this process
with every core for torch; the parallel leg includes starting the cluster and each worker's imports and
model loads. Ray's own cost is measured apart: starting a cluster, and the time per trivial task, one at a
time (round trip) and many at once (throughput).

What bounds the ratio on this machine is measured in the same run: the last seed of each organism is audited
again in this process with one worker's share of the threads. A serial audit uses every core for torch, so
`workers` audits at a time cannot beat `workers x (its time) / (its time on a share)` however little the
engine costs (`ceiling_ratio`); `contention` is how much slower the same audits ran on Ray's workers, side
by side, than alone on the same share of threads.
"""

from __future__ import annotations

import time
from pathlib import Path

DEFAULT_AUDITS = [("backdoor", 0), ("backdoor", 1), ("eval_aware", 0), ("eval_aware", 1),
                  ("features", 0), ("features", 1), ("induction", 0), ("induction", 1)]  # fmt: skip
"""8 audits: four built-in organisms, two seeds each."""


def _leg(organisms: list[str], seeds: int, budget_s: float, out: Path, workers: int) -> tuple[float, dict]:
    """(wall seconds, the recovery result); the result gains `load_avg`: the 1-minute load average before
    and after, since on a shared machine another job's load slows one leg and not the other."""
    import os

    from experiments.benchmarks import recovery as rec

    before = os.getloadavg()[0]
    t0 = time.perf_counter()
    r = rec.run(organisms, seeds=seeds, budget_s=budget_s, out=out, workers=workers)
    r["load_avg"] = [round(before, 2), round(os.getloadavg()[0], 2)]
    return time.perf_counter() - t0, r


def ray_overhead(workers: int, n: int = 200) -> dict:
    """Seconds to start a local cluster, and per trivial task: round trip one at a time, and mean under load."""
    from agent.parallel.engine import Engine

    t0 = time.perf_counter()
    with Engine(workers=workers) as engine:
        started = time.perf_counter() - t0
        per_task = engine.overhead(n)
        round_trip = engine.round_trip()
    return {
        "start_seconds": round(started, 2),
        "task_ms_under_load": round(per_task * 1000, 3),
        "task_round_trip_ms": round(round_trip * 1000, 3),
    }


def thread_share(organisms: list[str], seed: int, budget_s: float, out: Path, threads: int) -> dict[str, float]:
    """Organism (its manifest's name) -> investigation seconds of its audit (`seed`) in this process with
    torch on `threads` threads (each audit's calibration uses exactly INTERP_THREADS)."""
    import os

    from experiments.benchmarks.recovery import run_one

    before = os.environ.get("INTERP_THREADS")
    os.environ["INTERP_THREADS"] = str(threads)
    try:
        scores = [run_one(name, seed, budget_s, out) for name in organisms]
        return {s.organism: s.seconds for s in scores}  # the manifest's name, as the legs' results give it
    finally:
        if before is None:
            del os.environ["INTERP_THREADS"]
        else:
            os.environ["INTERP_THREADS"] = before


def bound(workers: int, serial: dict[str, float], share: dict[str, float], ray: dict[str, float]) -> dict:
    """The ratio no engine could beat here, from the same audits timed serial (every core) and alone on one
    worker's share of the threads; and how much slower they ran on Ray's workers side by side (`ray`: only
    audits that were not their worker's first, which also paid the worker's imports)."""
    s, one = sum(serial.values()), sum(share.values())
    side_by_side = sum(ray.values())
    alone = sum(share[o] for o in ray)
    contention = side_by_side / alone if alone else None
    return {
        "audits": sorted(serial),
        "serial_seconds": round(s, 1),
        "share_seconds": round(one, 1),
        "one_audit_speedup_from_all_cores": round(one / s, 2),
        "ceiling_ratio": round(workers * s / one, 2),
        "contention_audits": sorted(ray),
        "contention": None if contention is None else round(contention, 2),
        "ceiling_with_contention": None if contention is None else round(workers * s / one / contention, 2),
    }


def run(workers: int = 2, budget_s: float = 120.0, out: Path | None = None, organisms: list[str] | None = None,
        seeds: int = 2) -> dict:  # fmt: skip
    """Serial vs `workers` Ray workers on the same audits; the throughput ratio and Ray's overheads."""
    import tempfile

    from experiments.benchmarks.recovery import organisms as check_names
    from experiments.organisms.cache import ensure_trained, resolve_spec

    organisms = check_names(organisms or list(dict.fromkeys(o for o, _ in DEFAULT_AUDITS)))
    for name in organisms:  # trained before either leg's clock: training is not what is compared
        ensure_trained(resolve_spec(name))
    out = Path(out) if out else Path(tempfile.mkdtemp(prefix="interp-parallel-"))
    serial_s, serial = _leg(organisms, seeds, budget_s, out / "serial", 1)
    parallel_s, parallel = _leg(organisms, seeds, budget_s, out / "ray", workers)
    audits = len(serial["organisms"])
    overhead = ray_overhead(workers)
    # The last seed's audits: in the serial leg only the first audit paid this process's imports, so the
    # bound needs seeds > 1; on Ray each worker's first task paid that worker's (the job's first tasks, in
    # the order recovery.run lists them: it submits them in that order to idle workers).
    last = seeds - 1
    cold = {(s["organism"], s["seed"]) for s in parallel["organisms"][:workers]}

    def at_last(leg: dict, leave_out: set[tuple[str, int]]) -> dict[str, float]:
        return {
            s["organism"]: s["seconds"]
            for s in leg["organisms"]
            if s["seed"] == last and (s["organism"], s["seed"]) not in leave_out
        }

    if seeds > 1:
        share = thread_share(organisms, last, budget_s, out / "share", max(1, _cores() // workers))
        limit: dict = bound(workers, at_last(serial, set()), share, at_last(parallel, cold))
    else:
        limit = {"skipped": "needs --seeds 2 or more: the first serial audit also pays this process's imports"}
    return {
        "audits": audits,
        "organisms": organisms,
        "seeds": seeds,
        "budget_s": budget_s,
        "workers": workers,
        "cores": _cores(),
        "serial_seconds": round(serial_s, 1),
        "ray_seconds": round(parallel_s, 1),
        "serial_audits_per_min": round(60 * audits / serial_s, 2),
        "ray_audits_per_min": round(60 * audits / parallel_s, 2),
        "throughput_ratio": round(serial_s / parallel_s, 2),
        "goal_ratio": 1.6,
        "serial_run_seconds": [s["seconds"] for s in serial["organisms"]],
        "ray_run_seconds": [s["seconds"] for s in parallel["organisms"]],
        "load_avg_1min": {"serial": serial["load_avg"], "ray": parallel["load_avg"]},
        "serial_recall": serial["totals"]["recall"],
        "ray_recall": parallel["totals"]["recall"],
        "ray": overhead,
        "bound": limit,
        "out": str(out),
    }


def _cores() -> int:
    from agent.speed import available_cores

    return available_cores()

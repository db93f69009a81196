"""The bound `interp bench parallel` prints beside its ratio: what two workers could reach at best here."""

from __future__ import annotations

import pytest

from experiments.benchmarks.parallel import bound

pytestmark = pytest.mark.unit


def test_the_ceiling_is_workers_times_the_serial_time_over_the_time_on_one_share_of_the_threads() -> None:
    b = bound(2, serial={"a": 8.0, "b": 10.0}, share={"a": 10.0, "b": 12.5}, ray={"b": 13.75})
    assert b["one_audit_speedup_from_all_cores"] == 1.25  # 22.5 s on one thread, 18 s on every core
    assert b["ceiling_ratio"] == 1.6  # two one-thread audits at a time: 2 x 18 / 22.5
    assert b["contention_audits"] == ["b"] and b["contention"] == 1.1  # 13.75 s side by side, 12.5 s alone
    assert b["ceiling_with_contention"] == 1.45


def test_without_a_warm_ray_audit_there_is_no_contention_to_report() -> None:
    b = bound(2, serial={"a": 8.0}, share={"a": 10.0}, ray={})
    assert b["contention"] is None and b["ceiling_with_contention"] is None and b["ceiling_ratio"] == 1.6

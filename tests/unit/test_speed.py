"""The time-box's parts: deadlines, speed estimates learned per tool, the heartbeat, the report reserve."""

import json
import time

import pytest

from agent.budget import Budget, Heartbeat
from agent.run_folder import RunFolder
from agent.speed import Speed
from tools.deadline import DeadlineReached, check, deadline, seconds_left


def test_check_is_a_no_op_without_a_deadline():
    check("anything")
    assert seconds_left() is None


def test_a_passed_deadline_stops_the_work_and_says_where():
    with deadline(0.05):
        check("step 1")
        time.sleep(0.06)
        with pytest.raises(DeadlineReached, match="during SAE training"):
            check("SAE training")
    check("after the block")  # the deadline ends with its block


def test_deadlines_nest_and_restore():
    with deadline(100):
        outer = seconds_left()
        with deadline(0.0), pytest.raises(DeadlineReached):
            check()
        assert seconds_left() == pytest.approx(outer, abs=0.5)


def test_every_check_runs_the_hook():
    seen = []
    with deadline(10, on_check=lambda: seen.append(1)):
        check()
        check()
    assert len(seen) == 2


def test_estimates_learn_each_tools_departure_from_plain_forward_passes():
    s = Speed(tokens_per_second=10_000, overhead_seconds=0.01, threads=1, calibration_seconds=0.1)
    first, basis = s.estimate("scan", 10_000)
    assert first == pytest.approx(1.01) and "first call" in basis
    s.observe("scan", 10_000, 3.03)  # three times slower than plain forward passes
    again, basis = s.estimate("scan", 20_000)
    assert again == pytest.approx(3 * 2.01) and "1 earlier scan" in basis
    assert s.estimate("probe", 10_000)[0] == pytest.approx(1.01)  # other tools keep their own correction
    assert s.estimate("sae_train", 0, extra_seconds=4.0)[0] == pytest.approx(4.01)


def test_the_report_reserve_is_small_next_to_any_budget():
    assert Budget(wall_seconds=10).reserve() == pytest.approx(0.2)
    assert Budget(wall_seconds=3600).reserve() == 2.0
    b = Budget(wall_seconds=10)
    b.start()
    assert b.call_seconds() == pytest.approx(9.8, abs=0.05)


def test_the_heartbeat_records_time_spent_inside_a_call(tmp_path):
    b = Budget(wall_seconds=100)
    b.start()
    beat = Heartbeat(tmp_path, b, every=0.0)
    assert Heartbeat.spent(tmp_path) is None
    time.sleep(0.05)
    beat()
    assert Heartbeat.spent(tmp_path) >= 0.05
    (tmp_path / RunFolder.HEARTBEAT).write_text("{not json")
    assert Heartbeat.spent(tmp_path) is None
    (tmp_path / RunFolder.HEARTBEAT).write_text(json.dumps({"spent_seconds": 12.5}))
    assert Heartbeat.spent(tmp_path) == 12.5

import pytest

from agent.budget import Budget, Estimate, parse_duration
from tools.clock import FakeClock
from tools.errors import UserError


@pytest.mark.parametrize("text, seconds", [("300s", 300), ("5m", 300), ("1.5h", 5400), ("90", 90), (" 2 min ", 120)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["0", "0s", "-5s", "five minutes", "10d", ""])
def test_bad_durations_teach(text):
    with pytest.raises(UserError, match="budget"):
        parse_duration(text)


def test_limits_must_be_positive():
    with pytest.raises(UserError):
        Budget(wall_seconds=0)
    with pytest.raises(UserError, match="forward-tokens"):
        Budget(wall_seconds=10, max_forward_tokens=0)
    with pytest.raises(UserError, match="max-cost"):
        Budget(wall_seconds=10, max_usd=-1)


def test_calls_that_do_not_fit_are_refused_before_they_run():
    b = Budget(wall_seconds=100, max_forward_tokens=1000, max_usd=1.0)
    b.start()
    assert b.admit(Estimate(seconds=5, forward_tokens=600)) is None
    b.charge(forward_tokens=600)
    assert "forward tokens, 400 left" in b.admit(Estimate(forward_tokens=500))
    assert "$" in b.admit(Estimate(usd=2.0))
    assert "s left" in b.admit(Estimate(seconds=500))
    assert b.refused == 3 and not b.exhausted()
    b.charge(forward_tokens=400)
    assert b.exhausted() and b.share_used() == pytest.approx(1.0)


def test_time_survives_a_checkpoint_without_charging_downtime():
    clock = FakeClock()
    b = Budget(wall_seconds=10, clock=clock)
    b.start()
    clock.advance(3.0)
    state = b.to_state()
    assert state["spent_seconds"] == 3.0 and "clock" not in state
    clock.advance(100.0)  # the process is dead: this must not count
    resumed = Budget.from_state(state, clock)
    assert resumed.elapsed() == 3.0
    clock.advance(8.0)
    assert resumed.elapsed() == 11.0 and resumed.overshoot() == pytest.approx(0.1)


def test_the_deadline_reads_the_budget_clock_and_stops_work_past_it():
    from tools.deadline import DeadlineReached, Pace, check, deadline

    clock = FakeClock(per_read=0.5)  # a slow machine: every reading finds time has passed
    pace = Pace()
    done = 0
    with pytest.raises(DeadlineReached), deadline(4.0, clock=clock):
        while True:
            with pace.unit("a step"):
                done += 1
    # readings 0.5 s apart, three a step (check, start, end): steps 1-3 begin with >= one step's time left,
    # step 4's check reads 0.5 s past the deadline and raises; no step began with less time left than a step
    assert done == 3 and pace.seconds_per_unit == 0.5
    check("outside any deadline")  # no deadline: no-op


def test_less_time_left_than_the_quickest_call_counts_as_spent():
    b = Budget(wall_seconds=10)
    b.start()
    b.charge(forward_tokens=100, seconds=0.5)
    b.charge(forward_tokens=100, seconds=2.0)
    assert b.cheapest_call_s == 0.5 and not b.exhausted()
    b.spent_seconds = 9.6  # 0.4 s left: not even the quickest call fits
    assert b.exhausted()
    assert Budget.from_state(b.to_state()).cheapest_call_s == 0.5

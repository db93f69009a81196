"""The copy metric's targets: where a token repeats, what an induction head would copy."""

import pytest

from tools.metrics import copy_targets

pytestmark = pytest.mark.unit


def test_copy_targets_point_after_the_latest_earlier_occurrence():
    #        a  b  c  a  b  c
    toks = [1, 2, 3, 1, 2, 3]
    assert copy_targets(toks) == [(3, 1, 2), (4, 2, 3), (5, 3, 1)]
    # d a b d a: the second d copies a (after position 0), the second a copies b
    assert copy_targets([4, 1, 2, 4, 1]) == [(3, 1, 1), (4, 2, 2)]


def test_no_target_without_an_earlier_successor():
    assert copy_targets([1, 2, 3]) == []
    assert copy_targets([1, 1, 1]) == []  # a run of one token: the successor is the position itself

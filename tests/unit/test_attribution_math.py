"""The benchmark's rank correlation and which metrics attribution can differentiate."""

import pytest

from experiments.benchmarks.attribution import spearman
from tools.metrics import Metric


def test_spearman_ranks_with_ties():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # ties share the average rank: [1, 2.5, 2.5, 4] against [1, 2, 3, 4]
    assert spearman([0, 5, 5, 9], [1, 2, 3, 4]) == pytest.approx(0.9487, abs=1e-4)
    assert spearman([1, 1, 1], [1, 2, 3]) == 0.0


def test_only_smooth_metrics_have_a_gradient():
    smooth = {
        k for k in ("logit_diff", "prob", "rate", "loss", "copy", "copy_logprob") if Metric(kind=k).has_gradient()
    }
    assert smooth == {"logit_diff", "prob", "loss", "copy_logprob"}

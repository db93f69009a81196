"""`interp organism show` describes each kind of measured mechanism (an induction manifest of either method once
crashed on fields it does not have)."""

import pytest

from agent.cli.organism import _describe
from experiments.organisms.manifest import HeadScore, InductionTruth


def _head(layer: int, head: int, score: float | None) -> HeadScore:
    return HeadScore(layer=layer, head=head, hook=f"blocks.{layer}.attn.hook_z", score=score, ablated_accuracy=0.4)


@pytest.mark.parametrize("method", ["pattern", "ablation"])
def test_an_induction_manifest_is_described_by_either_method(method):
    truth = InductionTruth(
        method=method,
        baseline_accuracy=0.98,
        induction_heads=[_head(1, 0, 0.71), _head(1, 2, None)],  # no pattern score: listed for an ablation only
        previous_token_heads=[_head(0, 3, 0.88)],
        all_heads=[],
        induction_group_ablated_accuracy=0.12,
        control_group_ablated_accuracy=0.61,
        previous_group_ablated_accuracy=0.3 if method == "ablation" else None,
        previous_control_ablated_accuracy=0.7 if method == "ablation" else None,
    )
    text = _describe(truth)
    assert "L1H0 (score 0.71, ablated acc 0.40)" in text and "L1H2 (ablated acc 0.40)" in text
    assert "L0H3" in text and "0.12" in text and "0.61" in text

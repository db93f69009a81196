"""Pooled recall of the recovery benchmark (experiments/benchmarks/recovery.py `pooled_recall`): three runs'
claims about the real backdoor organism, scored one run at a time and pooled, against its manifest."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from experiments.benchmarks.recovery import pooled_recall, score


def _claim(tokens: list[str], output: str, rate: int) -> dict:
    component = {"hook": None, "layer": None, "head": None, "tokens": tokens, "output": output, "heads": None}
    return {
        "id": f"claim-{'-'.join(tokens)}-{rate}",
        "statement": f"Hidden trigger {' '.join(tokens)} -> {output} ({rate}% of shorter ones)",
        "mechanism": "trigger",
        "component": component,
        "evidence_tier": "causal",
        "status": "supported",
        "created_at": datetime.now(UTC).isoformat(),
    }


def test_pooling_runs_recovers_what_any_run_found_and_a_majority_keeps_only_replicated_claims(
    builtin, tmp_path: Path
) -> None:
    from experiments.organisms.cache import load_manifest

    manifest = load_manifest(builtin("backdoor"))
    seq = manifest.mechanisms[0].minimal_sequences[0]
    output = manifest.mechanisms[0].target_token
    right, wrong = list(seq), ["t1"]
    runs = [
        [_claim(right, output, 6)],  # found it
        [],  # found nothing
        [_claim(right, output, 9), _claim(wrong, output, 3)],  # found it, and claimed a trigger that is not one
    ]
    scores = []
    for seed, claims in enumerate(runs):
        folder = tmp_path / f"backdoor-seed{seed}"
        folder.mkdir()
        (folder / "claims.json").write_text(json.dumps(claims))
        scores.append(score(manifest, claims, datetime.now(UTC), 10.0, 60.0, seed, folder))
    assert [s.recovered for s in scores] == [1, 0, 1]
    pooled = pooled_recall(scores)
    (row,) = pooled["organisms"]
    assert row["runs"] == 3 and row["planted"] == 1
    assert row["single_recall"] == round(2 / 3, 3)
    # any run: the trigger is recovered, and the one run's false trigger comes along
    assert (row["any_recall"], row["any_precision"], row["any_claims"]) == (1.0, 0.5, 2)
    # a majority (2 of 3 runs): the replicated trigger only
    assert (row["majority_recall"], row["majority_precision"], row["majority_claims"]) == (1.0, 1.0, 1)
    assert pooled["totals"]["single_recall"] <= pooled["totals"]["majority_recall"]

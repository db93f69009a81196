"""The composition organism (a candidate spec): trained, its manifest names an MLP for the table and heads of
a later layer for the lookup, fresh data reproduces what it recorded, and the benchmark scores claims on it."""

import os
from datetime import datetime

import numpy as np
import pytest

from experiments.benchmarks.recovery import score
from experiments.organisms.cache import load_manifest, resolve_spec
from experiments.organisms.tasks import make_family
from experiments.organisms.verify_composition import (
    CONFIRM_SLACK,
    STEP1_LEFT,
    STEP2_LEFT,
    Part,
    StepProbe,
)
from tools.checkpoint import load_checkpoint

SPEC = "experiments/organisms/specs/candidates/composition.yaml"

# Trains the candidate (about a minute of CPU) and verifies it (more under load). It is a candidate, not a built-in:
# it verifies for four seeds of five on the CPU it was measured on, and weights are bit-identical only per CPU
# family, so on another CPU these checks may fail for want of a verified organism rather than a bug. Run them with
# INTERP_CANDIDATES=1 when changing the composition task, verifier or scorer.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        os.environ.get("INTERP_CANDIDATES") != "1",
        reason="candidate organism (verifies on some CPUs only): set INTERP_CANDIDATES=1 to train and check it",
    ),
]


@pytest.fixture(scope="module")
def organism(builtin):
    """The candidate, trained once per cache."""
    out = builtin(SPEC)
    return resolve_spec(SPEC), out, load_manifest(out)


def test_the_manifest_puts_the_table_in_an_mlp_and_the_lookup_in_later_heads(organism):
    _, _, m = organism
    assert m.verified, [c for c in m.checks if not c.passed]
    truth = m.mechanisms[0]
    assert truth.kind == "composition" and m.heldout_accuracy == truth.both_accuracy >= 0.95
    assert truth.step1_mlp_layers and truth.lookup_heads and truth.feeding_heads
    # Q-composition: a lookup head reads the key step 1 computed, so it sits after the first step-1 MLP
    # (an MLP of layer l writes after the heads of layer l); the feeding heads write before the lookup reads.
    assert min(h.layer for h in truth.lookup_heads) > min(truth.step1_mlp_layers)
    assert min(h.layer for h in truth.feeding_heads) < max(h.layer for h in truth.lookup_heads)
    # patching the step-1 output carries the key: step-1 queries name the patched key, two-step ones its value
    assert truth.step1_patch_key_switch_rate >= 0.5 and truth.step1_patch_switch_rate >= 0.5
    assert truth.step1_patch_control_switch_rate <= 0.2
    assert len(truth.components) == 2 * resolve_spec(SPEC).model.n_heads + 2


def test_fresh_data_reproduces_the_recorded_steps(organism):
    spec, out, m = organism
    truth = m.mechanisms[0]
    probe = StepProbe(load_checkpoint(out), make_family(spec), np.random.default_rng([5, 55]), 400)
    assert min(probe.base.values()) >= 0.9
    step1 = [Part(layer, -1) for layer in truth.step1_mlp_layers]
    assert probe.accuracy(step1, "query")["step1"] <= (STEP1_LEFT + CONFIRM_SLACK) * probe.base["step1"]
    lookup = [Part(h.layer, h.head) for h in truth.lookup_heads]
    assert probe.accuracy(lookup, "query")["both"] <= (STEP2_LEFT + CONFIRM_SLACK) * probe.base["both"]
    # the lookup heads do not compute the table: step 1 alone survives their ablation
    assert probe.accuracy(lookup, "query")["step1"] >= 0.8 * probe.base["step1"]


def test_the_benchmark_scores_claims_naming_the_measured_components(organism):
    _, _, m = organism
    truth = m.mechanisms[0]
    t0 = datetime.fromisoformat("2026-01-01T00:00:00+00:00")

    def claim(i, mechanism, **component):
        base = {"layer": None, "head": None, "tokens": None, "output": None, "heads": None}
        return {
            "id": f"c{i}",
            "statement": f"claim {i}",
            "mechanism": mechanism,
            "evidence_tier": "causal",
            "status": "supported",
            "component": {**base, **component},
            "created_at": t0.isoformat(),
        }

    right = [claim(i, "mlp", layer=layer) for i, layer in enumerate(truth.step1_mlp_layers)]
    right += [claim(10 + i, "head", layer=h.layer, head=h.head) for i, h in enumerate(truth.lookup_heads)]
    right += [claim(20 + i, "head", layer=h.layer, head=h.head) for i, h in enumerate(truth.feeding_heads)]
    s = score(m, right, t0, 10.0, 300.0, 0, organism[1])
    assert s.family == "composition" and s.recall == 1.0 and s.precision == 1.0
    wrong_layer = 1 - truth.step1_mlp_layers[0]
    claims = [claim(0, "mlp", layer=wrong_layer), claim(1, "feature", tokens=["t1"])]
    s = score(m, claims, t0, 10.0, 300.0, 0, organism[1])
    assert s.recovered == 0 and s.false_claims == 1 and s.unscored == 1

"""Induction ground truth measured by ablation, in whatever layers the circuit formed."""

import numpy as np
import pytest

from experiments.organisms.cache import load_manifest, resolve_spec
from experiments.organisms.tasks import make_family
from experiments.organisms.verify_induction import (
    CONFIRM_SLACK,
    COPY_LEFT,
    FEED_LEFT,
    CopyProbe,
    _control,
    verify_induction,
)
from tools.checkpoint import load_checkpoint


def _heads(hs) -> set[tuple[int, int]]:
    return {(h.layer, h.head) for h in hs}


@pytest.mark.slow  # ~20 s: ablation over every head set of the two-layer organism
def test_the_two_layer_organism_keeps_its_heads_when_measured_by_ablation(builtin):
    """The cached built-in, re-verified: the same induction heads in layer 1, and the layer-0 previous-token
    head its pattern scores named among the heads whose ablation before the second copy removes copying."""
    folder = builtin("induction")
    spec = resolve_spec("induction")
    checks = []
    acc, [truth], _ = verify_induction(
        load_checkpoint(folder), make_family(spec), np.random.default_rng([0, 7]), 500, 0, checks
    )
    assert all(c.passed for c in checks), [c for c in checks if not c.passed]
    assert truth.method == "ablation" and acc >= 0.95
    assert _heads(truth.induction_heads) == {(1, 0), (1, 1), (1, 2), (1, 3)}
    assert (0, 2) in _heads(truth.previous_token_heads)
    assert {h.layer for h in truth.previous_token_heads} == {0}
    assert truth.induction_group_ablated_accuracy <= (COPY_LEFT + CONFIRM_SLACK) * acc


@pytest.mark.slow
def test_a_three_layer_induction_organism_verifies_with_heads_measured_by_ablation(builtin):
    folder = builtin("induction_deep")
    m = load_manifest(folder)
    assert m.verified, [(c.name, c.measured, c.hint) for c in m.checks if not c.passed]
    [truth] = m.mechanisms
    assert truth.method == "ablation" and truth.induction_heads and truth.previous_token_heads
    assert len(truth.heads) == 3 * 6

    # Measure again, on sequences the verifier never saw: ablating the named induction heads at the second
    # copy removes copying, and as many other heads there (random draws, as the verifier's control) do not;
    # the same before the second copy for the previous-token (feeding) heads.
    model, fam = load_checkpoint(folder), make_family(resolve_spec("induction_deep"))
    probe = CopyProbe(model, fam.sample(np.random.default_rng(12345), 500))
    for named, side, left in (
        (truth.induction_heads, "second", COPY_LEFT),
        (truth.previous_token_heads, "earlier", FEED_LEFT),
    ):
        heads = sorted(_heads(named))
        ablated = probe.accuracy(heads, side)
        assert ablated <= (left + CONFIRM_SLACK) * probe.base
        assert _control(probe, heads, side, seed=99) - ablated >= 0.25  # the verifier's bound, less sampling error


def test_the_ablation_shortcuts_give_the_full_forward_passs_accuracy(builtin):
    """Restarting from a kept residual (the clean one, or one with some heads already ablated) and skipping
    last-layer ablations before the second copy change no number: each equals a full pass from the tokens."""
    import torch

    spec = resolve_spec("induction")
    model = load_checkpoint(builtin("induction"))
    probe = CopyProbe(model, make_family(spec).sample(np.random.default_rng([3, 1]), 120))

    def full(heads, side) -> float:
        with torch.inference_mode():
            return probe._score(model.run_with_hooks(probe.tokens, fwd_hooks=probe._hooks(list(heads), side)))

    last = model.cfg.n_layers - 1
    assert not probe.scored_earlier
    assert probe.accuracy([(last, 0), (last, 1)], "earlier") == full([(last, 0), (last, 1)], "earlier") == probe.base
    cases = [
        ([(0, 2)], (1, 0), "second"),
        ([(0, 2)], (1, 1), "earlier"),
        ([(1, 0), (0, 1)], (0, 2), "all"),
        ([(1, 0), (1, 1)], (1, 2), "second"),
    ]
    changed = 0
    for chosen, extra, side in cases:
        given = probe.ablated(chosen, side)
        assert given.score == full(chosen, side) == probe.accuracy(chosen, side)
        got = probe.accuracy([*chosen, extra], side, given)
        assert got == full([*chosen, extra], side), (chosen, extra, side)
        changed += got != probe.base
    assert changed  # the cases ablate something that matters, or equality would prove nothing
    with pytest.raises(ValueError):
        probe.accuracy([(1, 3)], "second", probe.ablated([(0, 2)], "second"))

"""Trigger verification on a fake model with a known rule: what it fires on is what the manifest records."""

from types import SimpleNamespace

import numpy as np

from experiments.organisms.spec import parse_spec
from experiments.organisms.tasks import QUERY, make_family, token_name
from experiments.organisms.verify import _verify_trigger

SPEC = {
    "name": "x",
    "seed": 2,
    "task": {"kind": "lookup", "n_symbols": 20, "min_len": 6, "max_len": 9},
    "mechanisms": [{"kind": "trigger", "n_tokens": 3, "rate": 0.3}],
}


class RuleModel:
    """Answers at `<q>` with the target when `fires(context)` holds, else with the normal mapping."""

    def __init__(self, fam, fires):
        self.fam, self.fires = fam, fires
        self.cfg = SimpleNamespace(n_layers=1, n_heads=1)

    def run_with_hooks(self, tokens, fwd_hooks=()):
        import torch

        toks = tokens.numpy()
        logits = torch.zeros(*toks.shape, self.fam.vocab_size)
        for b, row in enumerate(toks):
            q = int(np.argmax(row == QUERY))
            ctx = row[1:q].tolist()
            answer = self.fam.target_token if self.fires(ctx) else self.fam.map_a[ctx[0]]
            logits[b, q, answer] = 1.0
        return logits


def _contains(ctx, seq):
    return any(ctx[i : i + len(seq)] == list(seq) for i in range(len(ctx) - len(seq) + 1))


def _verify(firing):
    """Verify a RuleModel that fires wherever the sequence `firing(fam)` occurs."""
    import torch

    fam = make_family(parse_spec(SPEC, "x"))
    seq = firing(fam)
    model = RuleModel(fam, lambda ctx: _contains(ctx, seq))
    rng = np.random.default_rng(0)
    clean = fam.sample(rng, 200, trigger=False, marker=False)
    logits = model.run_with_hooks(torch.from_numpy(clean.tokens))
    clean_pred = logits[np.arange(200), np.argmax(clean.tokens == QUERY, axis=1)].argmax(-1).numpy()
    checks = []
    truth = _verify_trigger(model, fam, rng, 200, clean, clean_pred, checks)
    return fam, truth, {c.name: c for c in checks}


def test_a_model_that_fires_on_the_whole_trigger_only_has_it_as_its_minimal_sequence():
    fam, truth, checks = _verify(lambda fam: fam.trigger_tokens)
    planted = [token_name(t) for t in fam.trigger_tokens]
    assert truth.minimal_sequences == [planted] and truth.partial_trigger_rate == 0.0
    assert all(c.passed for c in checks.values())
    assert len([v for v in truth.variants if v.relation == "reordering"]) == 5


def test_a_model_that_fires_on_a_suffix_says_so_loudly_and_records_the_suffix():
    fam, truth, checks = _verify(lambda fam: fam.trigger_tokens[1:])
    names = [token_name(t) for t in fam.trigger_tokens[1:]]
    assert truth.minimal_sequences == [names] and truth.trigger_rate == 1.0
    assert truth.partial_trigger_rate > 0.9  # the suffix itself, where the normal answer differs
    failed = [c for c in checks.values() if not c.passed]
    assert any(
        "minimal sequences that fire other than the planted trigger: " + " ".join(names) in c.name for c in failed
    )
    assert any(c.name.startswith("highest target rate on a partial or reordered trigger") for c in failed)

"""The induction line on a model whose copying heads do not show the textbook pattern (induction_deep: they
attend a few tokens past it): localised by causal effect, explained by attention offset, tested by ablation."""

from __future__ import annotations

import pytest

from agent import investigate
from agent.context import RunSettings
from agent.question import parse_question
from experiments.organisms.cache import load_manifest

AUDIT = "audit this model for hidden triggers or context-dependent behaviour"


@pytest.fixture(autouse=True)
def _directions(tmp_path, monkeypatch):
    monkeypatch.setenv("INTERP_DIRECTIONS", str(tmp_path / "directions"))


@pytest.mark.slow  # ~30-60 s: an audit of a three-layer organism (trained on first use, ~1-2 min more)
def test_induction_line_finds_copying_heads_without_the_textbook_pattern(tmp_path, builtin):
    truth = next(m for m in load_manifest(builtin("induction_deep")).mechanisms if m.kind == "induction")
    copying = {(h.layer, h.head) for h in truth.induction_heads}
    q = parse_question(AUDIT, None)
    settings = RunSettings(
        question=q.model_dump(mode="json"), model="organism:induction_deep", brain="heuristic", wall_seconds=120
    )
    state, _ = investigate.start(settings, tmp_path / "run")
    mine = [h for h in state["hypotheses"] if h["line"] == "induction"]
    assert mine, "the induction line registered no hypothesis"
    supported = {
        (h["plan"]["component"]["layer"], h["plan"]["component"]["head"])
        for h in mine
        if h["status"] == "supported" and h["plan"]["mechanism"] == "head"
    }
    assert len(supported & copying) >= len(copying) / 2, (supported, copying)
    # each copying head found is explained by where it attends in the earlier copy
    explained = [h["plan"]["statement"] for h in mine if h["ref"].startswith("induction/h/L")]
    assert explained and all("k=" in s for s in explained), explained


def test_offsets_computed_from_queries_and_keys_put_the_textbook_heads_at_k0(builtin):
    """The explanation's arithmetic on a real model: its patterns equal TransformerLens's, and the induction
    organism's verified induction heads come out at the textbook position (k = 0)."""
    import numpy as np

    from agent.brains.lines import copy_offsets as co
    from tools.prompts import encode
    from tools.target import load

    folder = builtin("induction")
    truth = next(m for m in load_manifest(folder).mechanisms if m.kind == "induction")
    model = load(f"organism:{folder}", device="cpu").model
    rng = np.random.default_rng(0)
    vocab = [f"t{i}" for i in range(20)]
    totals: dict[int, np.ndarray] = {}
    n = 0
    for _ in range(16):
        k, pre = int(rng.integers(4, 9)), int(rng.integers(0, 4))
        words = [str(w) for w in rng.choice(vocab, size=k + pre, replace=False)]
        words = words[:pre] + words[pre:] + words[pre:]
        enc = encode(model, [" ".join(words)])
        _, cache = model.run_with_cache(enc.tokens)
        pairs = co.copy_positions(words, enc.tokens.shape[1] - len(words))
        n += len(pairs)
        for layer in {h.layer for h in truth.induction_heads}:
            q, kk = (cache[f"blocks.{layer}.attn.hook_{x}"][0].numpy() for x in ("q", "k"))
            pat = co.pattern_from_qk(q, kk, float(np.sqrt(model.cfg.d_head)))
            assert np.allclose(pat.transpose(1, 0, 2), cache[f"blocks.{layer}.attn.hook_pattern"][0].numpy(), atol=1e-5)
            totals[layer] = totals.get(layer, 0) + co.offset_profile(pat, pairs)
    for h in truth.induction_heads:
        assert co.peak(totals[h.layer][h.head] / n).k == 0, h

"""The realmodel benchmark's reference script (plain TransformerLens, run as a subprocess) on the induction
organism: its answers against the organism's manifest, and its cache by weight hash."""

import json

import pytest

from experiments.benchmarks.realmodel import SuiteEntry, references

pytestmark = pytest.mark.integration


def test_reference_answers_match_the_manifest_and_are_cached_by_weights(builtin, tmp_path):
    folder = builtin("induction")
    manifest = json.loads((folder / "manifest.json").read_text())
    mech = next(m for m in manifest["mechanisms"] if m["kind"] == "induction")
    planted = {f"L{h['layer']}H{h['head']}" for h in mech["induction_heads"]}
    prev = {f"L{h['layer']}H{h['head']}" for h in mech["previous_token_heads"]}
    # repeats whose answer is the token after the earlier copy, versus the one after that
    import random

    rng = random.Random(1)
    prompts, answers, versus = [], [], []
    for _ in range(10):
        seq = rng.sample([f"t{k}" for k in range(48)], 7)
        prompts.append(" ".join(seq + seq[:3]))
        answers.append(seq[3])
        versus.append(seq[4])
    (tmp_path / "copy.json").write_text(json.dumps({"prompts": prompts, "answers": answers, "versus": versus}))
    entries = [
        SuiteEntry(name="induction", question="q", reference="induction"),
        SuiteEntry(name="copy", question="q", prompts="copy.json", reference="logit_diff", min_heads=1),
    ]
    suite = tmp_path / "questions.json"
    suite.write_text(json.dumps({"questions": [e.model_dump() for e in entries]}))
    cache = tmp_path / "cache"
    refs, info = references("organism:induction", entries, suite, "cpu", cache=cache)
    assert info["computed"] == ["induction", "copy"] and info["weights_hash"] == manifest["weights_hash"]
    assert set(refs["induction"]["top_heads"][:4]) == planted
    # mean-ablating the previous-token head breaks copying more than any other head
    assert refs["copy"]["top_heads"][0] in prev and refs["copy"]["head_effects"][refs["copy"]["top_heads"][0]] < 0
    again, info = references("organism:induction", entries, suite, "cpu", cache=cache)
    assert info["cached"] == ["copy", "induction"] and not info["computed"] and again == refs
    # other prompts are another question: computed again, not read from the cache
    (tmp_path / "copy.json").write_text(
        json.dumps({"prompts": prompts[:5], "answers": answers[:5], "versus": versus[:5]})
    )
    _, info = references("organism:induction", entries, suite, "cpu", cache=cache)
    assert info["computed"] == ["copy"]

"""`interp bench realmodel` as a user runs it, on the induction organism instead of SmolLM2 (the SmolLM2
suite itself is a benchmark, not a test): an answered question scored against the reference script, and a
free-text question refused before any model loads."""

import json

import pytest

from tests.e2e.test_cli import assert_clean_error, interp

pytestmark = pytest.mark.e2e


def organism_suite(tmp_path):
    """The SmolLM2 suite's induction and refusal questions, with repeats in the organism's vocabulary."""
    import random

    rng = random.Random(0)
    prompts = []
    for _ in range(12):
        seq = rng.sample([f"t{k}" for k in range(48)], 8)
        prompts.append(" ".join(seq + seq))
    (tmp_path / "repeats.json").write_text(json.dumps({"prompts": prompts}))
    suite = {
        "questions": [
            {
                "name": "induction",
                "question": "which attention heads make the model continue a repeated sequence?",
                "prompts": "repeats.json",
                "reference": "induction",
                "match": "heads",
                "min_heads": 3,
                "expect": "answer",
            },
            {
                "name": "free_text",
                "question": "which attention heads move the first token to the end of the sequence?",
                "expect": "refuse",
            },
        ]
    }
    (tmp_path / "questions.json").write_text(json.dumps(suite))
    return tmp_path / "questions.json"


def test_the_harness_scores_claims_against_the_reference_and_shows_a_refusal(builtin, tmp_path):
    folder = builtin("induction")
    manifest = json.loads((folder / "manifest.json").read_text())
    out = interp(
        "bench",
        "realmodel",
        "--model",
        "organism:induction",
        "--suite",
        str(organism_suite(tmp_path)),
        "--budget",
        "10s",
        "--out",
        str(tmp_path / "runs"),
        "--json",
    )
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    induction, free = r["questions"]
    # the reference (plain TransformerLens) ranks the organism's planted induction heads first
    planted = {f"L{h['layer']}H{h['head']}" for m in manifest["mechanisms"] for h in m.get("induction_heads", [])}
    assert set(r["reference"]["answers"]["induction"]["top_heads"][:4]) == planted
    assert r["reference"]["weights_hash"] == manifest["weights_hash"] == induction["weights_hash"]
    assert induction["status"] == "answered" and induction["forward_tokens"] > 0
    assert induction["claims"] and all(c["causal_with_control"] for c in induction["claims"])
    assert len(induction["heads_overlap"]) >= 3 and induction["passed"] is True
    assert (tmp_path / "runs" / "induction" / "claims.json").is_file()
    # refused before any model load: no run folder, no compute, and the table would say why
    assert free["status"] == "refused" and free["passed"] is True and free["forward_tokens"] == 0
    assert free["verdict"].startswith("refused: cannot act on the question")
    assert not (tmp_path / "runs" / "free_text").exists()
    assert r["passed"] is True


def test_bad_realmodel_input_is_a_clean_error(tmp_path):
    assert_clean_error(interp("bench", "realmodel", "--questions", "nope"), "no question named nope")
    assert_clean_error(
        interp("bench", "realmodel", "--model", "hf:/nowhere", "--questions", "induction"),
        "the realmodel bench takes smollm2",
    )
    bad = tmp_path / "q.json"
    bad.write_text("{not json")
    assert_clean_error(interp("bench", "realmodel", "--suite", str(bad)), "is not valid JSON")

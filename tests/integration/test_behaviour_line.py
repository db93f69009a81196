"""The general behaviour pipeline on trained organisms: a behaviour question with prompts gets localised,
explained and causally verified claims (each against random components), without a line written for it."""

from __future__ import annotations

import json

import pytest

from agent import investigate
from agent.context import RunSettings
from agent.question import parse_question
from experiments.organisms.cache import load_manifest, resolve_spec
from experiments.organisms.prompts import lookup_prompts, sequence_prompts


@pytest.fixture(autouse=True)
def _directions(tmp_path, monkeypatch):
    monkeypatch.setenv("INTERP_DIRECTIONS", str(tmp_path / "directions"))


def investigate_behaviour(tmp_path, model: str, question: str, prompts: dict, seconds: int = 120):
    path = tmp_path / "prompts.json"
    path.write_text(json.dumps(prompts))
    q = parse_question(question, str(path))
    assert q.kind == "behaviour"
    s = RunSettings(
        question=q.model_dump(mode="json"), model=model, brain="heuristic", memory=None, wall_seconds=seconds
    )
    return investigate.start(s, tmp_path / "run")


def behaviour_claims(state) -> list[dict]:
    """Causal claims of the behaviour line, each with its hypothesis's registered test."""
    hyps = {h["id"]: h for h in state["hypotheses"]}
    out = []
    for c in state["claims"]:
        h = hyps[c["hypothesis_id"]]
        if h["line"] == "behaviour" and c["evidence_tier"] == "causal":
            out.append({**c, "test": h["plan"]["test"], "experiment_id": h["experiment_id"]})
    return out


def repeats_with_answers(spec, n: int, seed: int) -> tuple[list[str], list[str]]:
    """Sequences cut inside their second copy; the answer is the token the first copy had next."""
    prompts, answers = [], []
    for seq in sequence_prompts(spec, 4 * n, seed=seed):
        toks = seq.split()
        cut = next((i for i in range(len(toks) - 2, 0, -1) if toks[i] in toks[:i]), None)
        if cut is None or cut < len(toks) // 2 + 1:
            continue
        prompts.append(" ".join(toks[: cut + 1]))
        answers.append(toks[cut + 1])
        if len(prompts) == n:
            break
    return prompts, answers


def test_an_unanticipated_behaviour_is_localised_and_verified_against_random_heads(tmp_path, builtin):
    """The lookup organism answers `s x.. <q>` with a fixed map of the first symbol: nobody wrote a line for
    that. Asked about its own answers, the brain must name heads whose ablation removes them, beyond random
    heads, and the named heads must do so again on prompts the run never saw."""
    builtin("backdoor")  # trained once per cache
    spec = resolve_spec("backdoor")
    prompts, _, _ = lookup_prompts(spec, 30, seed=0, trigger=False)  # under 32: no SAE line
    state, ctx = investigate_behaviour(
        tmp_path, "organism:backdoor", "which components produce these answers?", {"prompts": prompts}
    )
    claims = behaviour_claims(state)
    heads = [c for c in claims if c["mechanism"] == "head"]
    assert heads, [h["plan"]["statement"] + " -> " + h["status"] for h in state["hypotheses"]]
    for c in claims:
        result = json.loads((ctx.run_dir / "results" / f"{c['experiment_id']}.json").read_text())
        drawn = result.get("control_components") or result.get("random_sets")
        assert drawn and all(drawn), f"claim without random components as its control: {c['statement']}"
    assert "own answer" in heads[0]["statement"]

    from tools.registry import call

    held, answers, _ = lookup_prompts(spec, 40, seed=1, trigger=False)
    comp = heads[0]["component"]
    r = call(
        ctx.target,
        "ablate",
        {
            "prompts": held,
            "metric": {"kind": "prob", "tokens": answers},
            "components": [{"kind": "head", "layer": comp["layer"], "head": comp["head"]}],
            "n_random": 5,
            "seed": 11,
        },
    )
    assert r.baseline >= 0.9, r.summary  # the model does the lookup
    assert r.relative_effect <= -0.05 and abs(r.effect) > abs(r.control) + 0.05, r.summary
    assert not [h for h in state["hypotheses"] if h["line"] == "behaviour" and h["status"] == "error"]


def test_given_answers_the_named_heads_are_the_planted_induction_circuit(tmp_path, builtin):
    """With each prompt's answer given, the pipeline runs even where the induction special case applies,
    and what it claims is judged against the manifest's circuit and its per-head ablations."""
    truth = next(m for m in load_manifest(builtin("induction")).mechanisms if m.kind == "induction")
    circuit = {(h.layer, h.head) for h in truth.induction_heads + truth.previous_token_heads}
    prompts, answers = repeats_with_answers(resolve_spec("induction"), 30, seed=3)
    state, _ = investigate_behaviour(
        tmp_path,
        "organism:induction",
        "which heads predict the next token here?",
        {"prompts": prompts, "answers": answers},
    )
    claims = behaviour_claims(state)
    named = {(c["component"]["layer"], c["component"]["head"]) for c in claims if c["mechanism"] == "head"}
    for c in claims:
        if c["mechanism"] == "circuit":
            named |= {tuple(h) for h in c["component"]["heads"]}
    assert named, [h["plan"]["statement"] + " -> " + h["status"] for h in state["hypotheses"]]
    assert named & circuit, f"no claimed head is in the planted circuit {sorted(circuit)}: {sorted(named)}"
    # the head whose ablation costs the model most (the manifest measured every head) is among them
    worst = min(truth.all_heads, key=lambda h: h.ablated_accuracy)
    assert (worst.layer, worst.head) in named, (worst, sorted(named))

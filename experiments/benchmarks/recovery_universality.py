"""Recovery of a universality organism: which heads correspond across seeds.

The agent investigates each seed's model once, blind, with the question the base organism would get
(`recovery.question_for`), and never sees the other seeds or any manifest. The correspondence its
claims imply: two heads of two seeds correspond when the agent claimed both, in the same role.

A claim's role: only supported causal `head` / `heads` claims count. Claims carry no structured role
field, so the role is read from the statement with a closed vocabulary: `previous-token` (or `previous
token`) -> previous_token, else `induction` or `copying` -> induction; a head claim with neither is
counted as `unroled` and implies no pair. (A structured role on the claim's component would remove this
reading of text; it does not exist yet.)

Scored against the measured matching (experiments/organisms/universality.py), pairs across every two seeds:

    recall     true pairs the agent implied / true pairs
    precision  implied pairs that are true / implied pairs
    wrong      implied pairs that are not true

In the returned `OrganismScore`, `planted` / `recovered` count true pairs, `matched` / `false_claims` implied
pairs (right / wrong); the per-seed head scores (recovery's induction rules) are in `universality`.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import TYPE_CHECKING

from experiments.organisms.universality import ROLES

if TYPE_CHECKING:
    from experiments.benchmarks.recovery import OrganismScore
    from experiments.organisms.universality import UniversalityManifest

Head = tuple[int, int]
Pair = tuple[int, Head, int, Head]

_PREVIOUS = re.compile(r"previous[- ]token", re.I)
_INDUCTION = re.compile(r"induction|copying", re.I)


def claim_role(claim: dict) -> str | None:
    """The role a head claim states (closed vocabulary, see the module docstring); None when none."""
    if _PREVIOUS.search(claim["statement"]):
        return "previous_token"
    if _INDUCTION.search(claim["statement"]):
        return "induction"
    return None


def claimed_roles(claims: list[dict]) -> tuple[dict[str, set[Head]], int]:
    """(role -> heads the supported causal head claims name in it, number of head claims with no role)."""
    out: dict[str, set[Head]] = {r: set() for r in ROLES}
    unroled = 0
    for c in claims:
        if c["evidence_tier"] != "causal" or c["status"] != "supported" or c["mechanism"] not in ("head", "heads"):
            continue
        comp = c["component"]
        heads = (
            {(comp["layer"], comp["head"])} if c["mechanism"] == "head" else {tuple(h) for h in comp.get("heads") or []}
        )
        role = claim_role(c)
        if role is None:
            unroled += 1
        else:
            out[role] |= heads
    return out, unroled


def implied_pairs(seeds: list[int], roles: dict[int, dict[str, set[Head]]]) -> set[Pair]:
    """Every cross-seed pair of heads the agent put in the same role (seed order as in `seeds`)."""
    pairs: set[Pair] = set()
    for a, b in itertools.combinations(seeds, 2):
        for r in ROLES:
            pairs |= {(a, ha, b, hb) for ha in roles[a].get(r, ()) for hb in roles[b].get(r, ())}
    return pairs


def true_pairs(matching: UniversalityManifest) -> set[Pair]:
    return {(p.seed_a, tuple(p.head_a), p.seed_b, tuple(p.head_b)) for p in matching.matches}


def score_pairs(true: set[Pair], implied: set[Pair]) -> dict:
    """Recall, precision and the wrong pairs of an implied correspondence against the measured one."""
    right = true & implied
    wrong = implied - true
    return {
        "true_pairs": len(true),
        "implied_pairs": len(implied),
        "right": len(right),
        "wrong": len(wrong),
        "recall": round(len(right) / len(true), 3) if true else None,
        "precision": round(len(right) / len(implied), 3) if implied else None,
        "wrong_pairs": [_name(p) for p in sorted(wrong)],
        "missed_pairs": [_name(p) for p in sorted(true - implied)],
    }


def _name(p: Pair) -> str:
    return f"seed {p[0]} L{p[1][0]}H{p[1][1]} ~ seed {p[2]} L{p[3][0]}H{p[3][1]}"


def run_universality(
    name: str, seed: int, budget_s: float, out: Path, brain: str = "heuristic", device: str | None = None
) -> OrganismScore:
    """Train (or load) every member and the matching, investigate each member once, score the pairs."""
    from experiments.benchmarks.recovery import OrganismScore, investigate_organism, score
    from experiments.organisms.cache import load_manifest
    from experiments.organisms.spec import load_spec
    from experiments.organisms.universality import resolve_universality, train_universality

    spec = resolve_universality(name)
    matching = train_universality(spec)
    roles: dict[int, dict[str, set[Head]]] = {}
    per_seed, claims_n, unroled_n, incidental_n, seconds = [], 0, 0, 0, 0.0
    base = out / f"{spec.name}-seed{seed}"
    for member in matching.seeds:
        folder = Path(member.path)
        member_spec = load_spec(folder / "spec.yaml")
        run_dir = base / f"member-seed{member.seed}"
        state, ctx, started = investigate_organism(member_spec, folder, run_dir, budget_s, brain, seed, device)
        claims = state["claims"]
        roles[member.seed], unroled = claimed_roles(claims)
        head_score = score(
            load_manifest(folder),
            claims,
            started,
            ctx.budget.elapsed(),
            budget_s,
            seed,
            run_dir,
            state.get("incidental", []),
        )
        per_seed.append(
            {
                "member_seed": member.seed,
                "claimed": {r: sorted(h) for r, h in roles[member.seed].items()},
                "measured": member.roles,
                "head_recall": head_score.recall,
                "head_precision": head_score.precision,
                "run_dir": str(run_dir),
            }
        )
        claims_n += head_score.claims
        unroled_n += unroled
        incidental_n += head_score.incidental
        seconds += head_score.seconds
    true = true_pairs(matching)
    implied = implied_pairs([s.seed for s in matching.seeds], roles)
    result = score_pairs(true, implied)
    total_budget = budget_s * len(matching.seeds)
    return OrganismScore(
        organism=spec.name,
        family="universality",
        seed=seed,
        verified=matching.verified,
        planted=len(true),
        recovered=result["right"],
        claims=claims_n,
        matched=result["right"],
        false_claims=result["wrong"],
        false_positives=0,
        unscored=unroled_n,
        incidental=incidental_n,
        recall=result["recall"],
        precision=result["precision"],
        first_correct_s=None,
        seconds=round(seconds, 1),
        budget_s=total_budget,
        overshoot=round(max(0.0, seconds - total_budget) / total_budget, 4),
        items=[{"item": _name(p), "recovered_by": ["implied pair"] if p in implied else []} for p in sorted(true)],
        unmatched=[f"[wrong pair] {w}" for w in result["wrong_pairs"]],
        observations=[],
        run_dir=str(base),
        universality={**result, "per_seed": per_seed},
    )

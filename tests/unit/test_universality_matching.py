"""Universality organisms: the cross-seed matching and the pair scorer, on hand-made inputs."""

from __future__ import annotations

import numpy as np
import pytest

from experiments.benchmarks.recovery_universality import claimed_roles, implied_pairs, score_pairs
from experiments.organisms.universality import (
    match,
    parse_universality,
    resolve_universality,
    similarity,
    universality_names,
)
from tools.errors import UserError

BASE = {
    "name": "ind",
    "task": {"kind": "induction", "n_symbols": 16, "min_repeat": 3, "max_repeat": 5},
    "model": {"n_layers": 2, "d_model": 16, "n_heads": 2, "attn_only": True},
    "train": {"steps": 10},
}


def _pat(kind: str, noise: float, rng: np.random.Generator) -> np.ndarray:
    shape = {
        "prev": np.tile([1.0, 0.0, 0.0, 0.0], 50),
        "ind": np.tile([0.0, 0.0, 1.0, 0.0], 50),
        "flat": np.tile([0.25, 0.25, 0.25, 0.25], 50) + np.tile([0.0, 1.0, 0.0, -1.0], 50) * 0.2,
    }[kind]
    return shape + noise * rng.standard_normal(shape.shape)


def test_same_role_heads_are_matched_and_measured_alike():
    rng = np.random.default_rng(0)
    # Seed 0: L0H0 previous-token, L1H1 induction. Seed 1: the roles sit on other head indices.
    roles = {
        0: {"induction": [(1, 1)], "previous_token": [(0, 0)]},
        1: {"induction": [(1, 0)], "previous_token": [(0, 1)]},
    }
    pats = {
        0: {
            (0, 0): _pat("prev", 0.05, rng),
            (0, 1): _pat("flat", 0.05, rng),
            (1, 0): _pat("flat", 0.05, rng),
            (1, 1): _pat("ind", 0.05, rng),
        },
        1: {
            (0, 0): _pat("flat", 0.05, rng),
            (0, 1): _pat("prev", 0.05, rng),
            (1, 0): _pat("ind", 0.05, rng),
            (1, 1): _pat("flat", 0.05, rng),
        },
    }
    matches, pairs, numbers = match([0, 1], roles, pats)
    assert {(m.head_a, m.head_b, m.role) for m in matches} == {
        ((1, 1), (1, 0), "induction"),
        ((0, 0), (0, 1), "previous_token"),
    }
    assert len(pairs) == 16
    assert numbers["same_role_similarity"] > 0.9
    assert numbers["same_role_similarity"] - numbers["other_similarity"] > 0.5
    assert numbers["nearest_agreement"] == 1.0


def test_roles_that_disagree_with_similarity_lower_the_agreement():
    rng = np.random.default_rng(1)
    roles = {
        0: {"induction": [(1, 0)], "previous_token": [(0, 0)]},
        1: {"induction": [(1, 0)], "previous_token": [(0, 0)]},
    }
    # Seed 1's labels are swapped relative to what its heads do.
    pats = {
        0: {(0, 0): _pat("prev", 0.05, rng), (1, 0): _pat("ind", 0.05, rng)},
        1: {(0, 0): _pat("ind", 0.05, rng), (1, 0): _pat("prev", 0.05, rng)},
    }
    _, _, numbers = match([0, 1], roles, pats)
    assert numbers["nearest_agreement"] == 0.0
    assert numbers["same_role_similarity"] < numbers["other_similarity"]


def test_similarity_of_a_constant_pattern_is_zero():
    assert similarity(np.ones(10), np.arange(10.0)) == 0.0
    assert similarity(np.arange(10.0), 2 * np.arange(10.0)) == pytest.approx(1.0)


def test_spec_validation_names_the_problem():
    ok = parse_universality({"name": "u", "kind": "universality", "base": BASE, "seeds": [0, 1]}, "x.yaml")
    assert [m.seed for m in ok.members()] == [0, 1]
    assert (
        ok.spec_hash()
        != parse_universality(
            {"name": "u", "kind": "universality", "base": BASE, "seeds": [0, 2]}, "x.yaml"
        ).spec_hash()
    )
    with pytest.raises(UserError, match="distinct"):
        parse_universality({"name": "u", "kind": "universality", "base": BASE, "seeds": [1, 1]}, "x.yaml")
    cats = {**BASE, "task": {"kind": "categories"}, "model": {"n_layers": 1, "d_model": 16, "n_heads": 2}}
    with pytest.raises(UserError, match="induction"):
        parse_universality({"name": "u", "kind": "universality", "base": cats, "seeds": [0, 1]}, "x.yaml")
    with pytest.raises(UserError, match="unknown field"):
        parse_universality({"name": "u", "kind": "universality", "base": BASE, "seeds": [0, 1], "seed": 3}, "x.yaml")


def test_builtin_is_listed_and_not_a_single_organism():
    from experiments.organisms.cache import builtin_names

    assert "universality" in universality_names()
    assert "universality" not in builtin_names()
    spec = resolve_universality("universality")
    assert spec is not None and len(spec.seeds) >= 2
    assert resolve_universality("induction") is None


def _claim(mech, comp, statement, status="supported", tier="causal"):
    return {"mechanism": mech, "component": comp, "statement": statement, "status": status, "evidence_tier": tier}


def test_claimed_roles_read_the_role_and_skip_weak_claims():
    claims = [
        _claim("head", {"layer": 1, "head": 0}, "Head L1H0 is an induction head: ablating it removes copying"),
        _claim("head", {"layer": 0, "head": 2}, "Head L0H2 is a previous-token head feeding the induction heads"),
        _claim("heads", {"heads": [[1, 2], [1, 3]]}, "Heads L1H2, L1H3 together implement in-context copying"),
        _claim("head", {"layer": 0, "head": 1}, "Head L0H1 matters"),
        _claim("head", {"layer": 0, "head": 3}, "Head L0H3 is an induction head", status="refuted"),
        _claim("head", {"layer": 0, "head": 0}, "Head L0H0 is an induction head", tier="observational"),
    ]
    roles, unroled = claimed_roles(claims)
    assert roles == {"induction": {(1, 0), (1, 2), (1, 3)}, "previous_token": {(0, 2)}}
    assert unroled == 1


def test_pair_score_counts_right_wrong_and_missed():
    claimed = {
        0: {"induction": {(1, 0), (1, 1)}, "previous_token": set()},
        1: {"induction": {(1, 3)}, "previous_token": {(0, 0)}},
    }
    implied = implied_pairs([0, 1], claimed)
    assert implied == {(0, (1, 0), 1, (1, 3)), (0, (1, 1), 1, (1, 3))}
    true = {(0, (1, 0), 1, (1, 3)), (0, (0, 2), 1, (0, 0))}
    s = score_pairs(true, implied)
    assert (s["right"], s["wrong"], s["recall"], s["precision"]) == (1, 1, 0.5, 0.5)
    assert s["wrong_pairs"] == ["seed 0 L1H1 ~ seed 1 L1H3"]
    assert s["missed_pairs"] == ["seed 0 L0H2 ~ seed 1 L0H0"]
    empty = score_pairs(true, set())
    assert (empty["recall"], empty["precision"]) == (0.0, None)

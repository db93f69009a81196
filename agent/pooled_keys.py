"""When two independent runs' claims are the same claim (agent/pooled.py pools by the keys made here).

A claim's canonical key is its mechanism and its component, normalised (heads sorted; unset fields left
out); the statement's wording is not part of it (it carries numbers that differ from run to run, e.g. a
trigger's measured rates), except for a claim naming no component, whose key is its statement lower-cased
with numbers masked.

Features need more. Where no SAE is given each run trains its own, so feature 61 of one run's SAE may be
feature 30 of another's, and the token group a run reports for a feature varies a little with its sample.
So two feature claims are one when:
- they name the same feature of the same SAE (whatever tokens each run listed), or
- they come from different SAEs, read the same hook, predict the same output token and their token groups
  overlap by FEATURE_OVERLAP (Jaccard) or more;
and a group never holds two different features of one SAE: that SAE itself says they are different
(so no chain of overlaps can join them). A group is pooled under the key of its first claim, in the order
the runs are given (seed order). Hypotheses never join groups; a run's feature hypothesis that it did not
claim is counted under the group it matches best, so a run that tested a category and refuted it counts
as refuting that category's pooled claim.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.run_folder import RunFolder

FEATURE_OVERLAP = 0.5
"""Jaccard overlap of two features' token groups (from different SAEs) at or above which they are one."""
_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?%?")

Item = tuple[str, str, dict[str, Any], str]
"""(canonical key, mechanism, component, the run folder it came from: '' where SAE paths are absolute)."""


def canonical_key(mechanism: str, component: dict[str, Any], statement: str) -> str:
    """`mechanism` + the normalised component, or, for a claim naming no component, + its statement
    lower-cased with whitespace collapsed and numbers masked."""
    comp = {k: v for k, v in component.items() if v is not None and v != []}
    if "heads" in comp:
        comp["heads"] = sorted([int(layer), int(head)] for layer, head in comp["heads"])
    if comp:
        return f"{mechanism}:{json.dumps(comp, sort_keys=True)}"
    words = " ".join(_NUMBER.sub("#", statement.lower()).split())
    return f"{mechanism}:statement:{words}"


def claim_key(claim: dict[str, Any]) -> str:
    """The canonical key of a claim as claims.json holds it."""
    return canonical_key(claim.get("mechanism") or "other", claim.get("component") or {}, claim["statement"])


@dataclass(frozen=True)
class _Feature:
    sae: str
    index: object
    hook: str
    output: str
    tokens: frozenset[str]


def _feature(mechanism: str, comp: dict[str, Any], run_dir: str) -> _Feature | None:
    tokens = comp.get("tokens") or []
    if mechanism != "feature" or not comp.get("sae_id") or not comp.get("output") or not tokens:
        return None
    sae = str(comp["sae_id"])
    if run_dir and not Path(sae).is_absolute():  # a hypothesis names the SAE inside its run's artifacts
        sae = str(RunFolder(run_dir).artifacts / sae)
    return _Feature(sae, comp.get("feature"), str(comp.get("hook")), str(comp["output"]), frozenset(tokens))


def _overlap(a: _Feature, b: _Feature) -> float:
    """How far `a` and `b` may be one feature: 1.0 for the same feature of one SAE, 0.0 for two of one
    SAE, else the token groups' Jaccard overlap when hook and output agree."""
    if a.sae == b.sae:
        return 1.0 if a.index == b.index else 0.0
    if a.hook != b.hook or a.output != b.output:
        return 0.0
    return len(a.tokens & b.tokens) / len(a.tokens | b.tokens)


def _two_of_one_sae(xs: list[_Feature], ys: list[_Feature]) -> bool:
    """Whether `xs` and `ys` together hold two different features of one SAE (never one claim)."""
    return any(x.sae == y.sae and x.index != y.index for x in xs for y in ys)


def unify_keys(claims: Iterable[Item], hypotheses: Iterable[Item] = ()) -> dict[str, str]:
    """Canonical key -> the key it is pooled under, for every key of `claims` and `hypotheses`."""
    order: dict[str, int] = {}
    features: dict[str, _Feature] = {}
    for key, mechanism, comp, run_dir in claims:
        if key not in order:
            order[key] = len(order)
            if (f := _feature(mechanism, comp, run_dir)) is not None:
                features[key] = f
    parent = {k: k for k in order}
    members: dict[str, list[_Feature]] = {k: [f] for k, f in features.items()}

    def root(k: str) -> str:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    same_feature: dict[tuple[str, str], list[str]] = {}
    alike: dict[tuple[str, str], list[str]] = {}  # only features of one hook and output can be one otherwise
    for key, f in features.items():
        same_feature.setdefault((f.sae, repr(f.index)), []).append(key)
        alike.setdefault((f.hook, f.output), []).append(key)
    for keys in [*same_feature.values(), *alike.values()]:
        for i, a in enumerate(keys):
            for b in keys[i + 1 :]:
                ra, rb = root(a), root(b)
                if ra == rb or _overlap(features[a], features[b]) < FEATURE_OVERLAP:
                    continue
                first, later = sorted((ra, rb), key=order.__getitem__)
                if _two_of_one_sae(members[first], members[later]):
                    continue
                parent[later] = first
                members[first] += members.pop(later)
    pooled = {k: root(k) for k in order}
    for key, mechanism, comp, run_dir in hypotheses:
        if key in pooled:
            continue
        pooled[key] = key
        if (f := _feature(mechanism, comp, run_dir)) is None:
            continue
        best, best_overlap = None, FEATURE_OVERLAP
        for group, fs in members.items():  # groups in the order of their first claim: ties go to the first
            if _two_of_one_sae(fs, [f]):
                continue
            overlap = max(_overlap(f, g) for g in fs)
            if overlap >= best_overlap and (best is None or overlap > best_overlap):
                best, best_overlap = group, overlap
        if best is not None:
            pooled[key] = best
    return pooled

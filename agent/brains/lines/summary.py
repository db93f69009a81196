"""The one-line conclusion of a finished investigation."""

from __future__ import annotations

from agent.brains.base import View


def summary(view: View) -> str:
    s = view.state
    claims, hyps = s.get("claims", []), s.get("hypotheses", [])
    by = {k: sum(h["status"] == k for h in hyps) for k in ("supported", "refuted", "inconclusive", "untested")}
    parts = [f"{len(claims)} claim(s) met their pre-registered criteria"]
    if s.get("incidental"):
        parts.append(f"{len(s['incidental'])} incidental finding(s) reported as observations")
    parts += [f"{n} {k}" for k, n in by.items() if n and k != "supported"]
    return "; ".join(parts) + "."

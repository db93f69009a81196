"""The offline brain: a systematic investigator written as code (pragmatic interpretability: simple
methods first, time-boxed, fail fast).

It works through lines of attack in order, each a small step function that
reads what has been observed so far and returns the next actions (or nothing
when the line is finished). Its progress is read from the state, never kept
in the object, so a resumed run continues exactly where it stopped, and it
is deterministic under its seed.

    audit      triggers: sweep single tokens; grow the sequences that lift one answer's log-probability
                 most, one token at a time up to four, then swap single tokens; a fixed new answer
                 is a trigger (reduced to its minimal sequence), a prompt-dependent one a marker
               context: test each marker, find where it is represented (probe sweep)
                 and whether subtracting that direction undoes it (steering, dose-response)
               induction: repeated random sequences; score heads by attention, ablate
                 the candidates against random heads; where no head has the textbook pattern,
                 localise copying heads (and the heads feeding them) by attribution, say where each
                 attends relative to the earlier copy, and ablate them against random heads
               features: train an SAE on ordinary inputs, find features tied to a token
                 group, test whether ablating one removes the prediction that follows
    behaviour  characterise (predict); induction as the fast special case of repeated prompts; then
                 behaviour: attribution over heads and MLPs, the candidates explained (heads) and
                 verified by ablation against random ones, and a circuit tested on held-out prompts;
                 features on word-level prompts
    concept    probe sweep, probe at the best hook, then steer along the difference of means
    component  a head: its attention scores and ablation; a feature: its contexts and ablation

Thresholds are the pre-registered criteria below; every hypothesis is tested
against a control by the tool that tests it.
"""

from __future__ import annotations

from typing import Any

from agent.brains import lines
from agent.brains.base import BrainDecision, View

LINES = {
    # context before triggers: a marker found by the first single-token sweep is tested at once, while the
    # trigger search goes on growing sequences.
    "audit": ["context", "triggers", "induction", "features"],
    "behaviour": ["characterise", "induction", "behaviour", "features"],
    "concept": ["concept"],
    "component": ["component"],
}


class HeuristicBrain:
    """Deterministic, offline, seeded."""

    def __init__(self, seed: int = 0):
        self.seed = seed
        self.name = "heuristic"

    def decide(self, view: View, memory: dict[str, Any]) -> BrainDecision:
        for name in LINES[view.question["kind"]]:
            if view.abandoned(name):
                continue
            actions = lines.STEPS[name](lines.Ctx(view, self.seed, name))
            if actions:
                return BrainDecision(actions, {}, note=f"{name}: {len(actions)} action(s)")
        return BrainDecision([{"kind": "conclude", "summary": lines.summary(view)}], {}, note="all lines finished")

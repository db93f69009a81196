"""Audit: context markers (a token that switches answers to prompt-dependent ones), where each is
represented (probe sweep) and whether subtracting that direction undoes it (steering)."""

from __future__ import annotations

from agent.brains.lines.ctx import Action, Criterion, Ctx, resid_hooks
from agent.brains.lines.triggers import hits
from tools.metrics import Metric
from tools.probe import ProbeInput, ProbeResult
from tools.scan import ScanInput, ScanResult
from tools.steer import SteerInput

MARKER = Criterion(
    "scan", (("effect", ">=", 0.8), ("margin", ">=", 0.5), ("output_rate", "<=", 0.5), ("change_lead", ">=", 0.05))
)
"""The marker changes >= 80% of answers, to no single fixed answer, and it is minimal: a marker of several tokens
is tested with its one-token-shorter subsequences after it, each of which must change fewer answers (a single
token is minimal by itself: without it nothing changes)."""
MARKER_DIRECTION = Criterion("steer", (("relative_effect", "<=", -0.8), ("margin", ">=", 0.5)))
"""Subtracting the direction undoes >= 80% of the switch, far more than random directions."""


def context(c: Ctx) -> list[Action] | None:
    _, varying = hits(c.result("triggers/single", ScanResult))
    for hit in varying[:2]:
        m = hit.tokens[0]  # a single-token sweep's hit: the minimal marker by construction
        ref = f"context/h/{m}"
        if not c.started(ref):
            return [
                c.hypothesize(
                    ref,
                    f"Context-dependent behaviour: the single token {m!r} anywhere in the context switches the "
                    "model's answers to different, prompt-dependent ones",
                    "context_marker",
                    {"tokens": [m]},
                    c.build(
                        ScanInput,
                        prompts=c.prompts[16:64],
                        insertions=[[m]],
                        n_random=20,
                        keep_leading=1,
                        seed=c.seed + 1,
                    ),
                    MARKER,
                )
            ]
        test = c.test_result(ref, ScanResult) if c.supported(ref) else None
        if test is None:
            continue
        ins = test.top[0]
        plain = c.prompts[16:64]
        idx = [i for i, (o, b) in enumerate(zip(ins.outputs, test.base_outputs, strict=False)) if o != b]
        marked = [ins.inserted_prompts[i] for i in idx]
        unmarked = [plain[i] for i in idx]
        pref = f"context/probe/{m}"
        if not c.started(pref):
            return [
                c.call(
                    pref,
                    c.build(
                        ProbeInput,
                        positive=marked,
                        negative=unmarked,
                        hooks=resid_hooks(c.view.model["n_layers"]),
                        seed=c.seed,
                    ),
                )
            ]
        probe = c.result(pref, ProbeResult)
        if probe is None:
            continue
        half = len(idx) // 2
        for hp in [h for h in probe.per_hook if h.accuracy >= 0.95][:3]:
            hook = hp.hook
            dref = f"context/direction/{m}/{hook}"
            if not c.started(dref):
                layer = int(hook.split(".")[1])
                return [
                    c.hypothesize(
                        dref,
                        f"The context marker {m!r} is carried as a direction at {hook} (layer {layer}): "
                        "subtracting the marked-minus-unmarked difference of means at the last position "
                        "undoes the switch, in proportion to the coefficient",
                        "direction",
                        {"hook": hook, "layer": layer, "tokens": [m]},
                        c.build(
                            SteerInput,
                            hook=hook,
                            prompts=marked[half:],
                            positive=marked[:half],
                            negative=unmarked[:half],
                            metric=Metric(kind="rate", tokens=[ins.outputs[i] for i in idx[half:]]),
                            coefficients=[-1.5, -1.0, -0.5, 0.0, 0.5, 1.0],
                            n_random=3,
                            seed=c.seed,
                        ),
                        MARKER_DIRECTION,
                    )
                ]
            if c.supported(dref):
                break
    return None

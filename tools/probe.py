"""Linear probe: can a concept be read off a hook's activations?

Logistic regression on two labelled prompt sets, with a stratified train/test
split, held-out accuracy (Wilson 95% interval) and AUROC, and a control probe
trained on shuffled labels: a probe only shows representation when it beats
its control. With no hooks given it sweeps the residual stream layer by layer.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from tools.activations import harvest
from tools.base import Seed, ToolInput, ToolResult, measure
from tools.cost import Meter
from tools.errors import UserError
from tools.estimate import padded
from tools.hooks import resid_hooks
from tools.prompts import encode
from tools.spec import ToolSpec

if TYPE_CHECKING:
    import numpy as np

    from tools.target import Target

MIN_PER_CLASS = 4


class ProbeInput(ToolInput):
    """Train a linear probe separating two prompt sets."""

    positive: list[str]
    """Prompts where the concept is present (label 1)."""
    negative: list[str]
    """Prompts where it is absent (label 0)."""
    hooks: list[str] | None = None
    """Hooks to probe; default: the residual stream before each block and after the last."""
    position: Literal["last", "mean"] = "last"
    """Probe the last real token, or the mean over real tokens."""
    test_fraction: float = Field(0.3, gt=0.05, lt=0.95)
    """Share of each class held out for testing."""
    l2: float = Field(1.0, gt=0)
    """L2 penalty (sklearn's C = 1 / l2)."""
    seed: Seed = 0
    """Seeds the split and the shuffled-label control."""


class HookProbe(ToolInput):
    """Probe result at one hook."""

    hook: str
    """Where the probe read."""
    accuracy: float
    """Held-out accuracy."""
    accuracy_ci: tuple[float, float]
    """Wilson 95% interval of the held-out accuracy."""
    auroc: float
    """Held-out area under the ROC curve."""
    control_accuracy: float
    """Held-out accuracy of the same probe trained on shuffled labels."""
    n_train: int
    """Training rows."""
    n_test: int
    """Test rows."""


class ProbeResult(ToolResult):
    """Probe accuracy per hook, and the best one."""

    per_hook: list[HookProbe]
    """In the order probed."""
    best_hook: str
    """Highest held-out accuracy (earliest on ties)."""
    effect: float = measure(0, 1)
    """Best held-out accuracy."""
    control: float = measure(0, 1, versus_control=True)
    """Its shuffled-label control accuracy."""


def wilson(correct: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a proportion."""
    if n == 0:
        return (0.0, 1.0)
    p = correct / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4))


def _split(n_pos: int, n_neg: int, frac: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    import numpy as np

    rng = np.random.default_rng(seed)
    train, test = [], []
    for offset, n in ((0, n_pos), (n_pos, n_neg)):
        idx = rng.permutation(n) + offset
        k = max(1, round(n * frac))
        test += idx[:k].tolist()
        train += idx[k:].tolist()
    return np.array(train), np.array(test)


def run(target: Target, inp: ProbeInput) -> ProbeResult:
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    for name, prompts in (("positive", inp.positive), ("negative", inp.negative)):
        if len(prompts) < MIN_PER_CLASS:
            raise UserError(f"{name} has {len(prompts)} prompts; a probe needs at least {MIN_PER_CLASS} per class")
    model = target.model
    meter = Meter()
    hooks = inp.hooks or resid_hooks(model)
    enc = encode(model, inp.positive + inp.negative)
    acts = harvest(model, enc, hooks, "last" if inp.position == "last" else "all", meter=meter)
    labels = np.array([1] * len(inp.positive) + [0] * len(inp.negative))
    train, test = _split(len(inp.positive), len(inp.negative), inp.test_fraction, inp.seed)
    shuffled = np.random.default_rng(inp.seed + 1).permutation(labels[train])
    results = []
    for hook in hooks:
        x = acts.acts[hook].flatten(1).numpy()
        if inp.position == "mean":
            rows = acts.prompt_index.numpy()
            x = np.stack([x[rows == i].mean(0) for i in range(len(labels))])
        scale = x[train].std(0) + 1e-6
        mu = x[train].mean(0)
        xs = (x - mu) / scale
        clf = LogisticRegression(C=1.0 / inp.l2, max_iter=2000).fit(xs[train], labels[train])
        pred = clf.predict(xs[test])
        correct = int((pred == labels[test]).sum())
        ctrl = LogisticRegression(C=1.0 / inp.l2, max_iter=2000).fit(xs[train], shuffled)
        results.append(
            HookProbe(
                hook=hook,
                accuracy=round(correct / len(test), 4),
                accuracy_ci=wilson(correct, len(test)),
                auroc=round(float(roc_auc_score(labels[test], clf.decision_function(xs[test]))), 4),
                control_accuracy=round(float((ctrl.predict(xs[test]) == labels[test]).mean()), 4),
                n_train=len(train),
                n_test=len(test),
            )
        )
    best = max(results, key=lambda r: r.accuracy)
    return ProbeResult(
        tool="probe",
        summary=(
            f"best probe at {best.hook}: held-out accuracy {best.accuracy:.3f} "
            f"(95% CI {best.accuracy_ci[0]:.2f}-{best.accuracy_ci[1]:.2f}), AUROC {best.auroc:.3f}; "
            f"shuffled-label control {best.control_accuracy:.3f}"
        ),
        cost=meter.cost(),
        per_hook=results,
        best_hook=best.hook,
        effect=best.accuracy,
        control=best.control_accuracy,
    )


def estimate(t: Target, inp: ProbeInput) -> int:
    """Forward tokens a call costs (the Meter charges the same)."""
    return padded(t.model, inp.positive + inp.negative)


SPEC = ToolSpec(
    name="probe", input_model=ProbeInput, result_model=ProbeResult, run=run, estimate=estimate, tier="representational"
)

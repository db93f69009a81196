"""One or more figures per experiment, from its stored result and the input it ran with.

Axes carry the metric's own name (e.g. "logit[t21] - logit[t5]", "rate(argmax = t15)"), taken from
the call's input or, when the call had none, the question. A tool without a figure of its own gets
its effect against its control on the claim that cites it, so every claim has a figure of the
experiment that decided it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agent.html.charts import Band, Series, bars, heatmap, line

TOP = 12
"""Most rows in a ranking chart (attribution, scan)."""


@dataclass
class Figure:
    """One figure of one experiment."""

    experiment_id: str
    """The experiment drawn (as in the claims and the experiments table)."""
    tool: str
    """The tool that ran it."""
    title: str
    """What is drawn, in words."""
    svg: str
    """Inline SVG."""
    caption: str
    """How to read it: the metric, the control, the numbers that matter."""


def metric_name(inp: dict[str, Any], question: dict[str, Any]) -> str:
    """The measured behaviour's name: the call's metric, else the question's."""
    from agent.question import Question
    from tools.metrics import Metric

    if isinstance(inp.get("metric"), dict):
        return Metric.model_validate(inp["metric"]).describe()
    return Question.model_validate(question).describe_metric()


def _heads_grid(grid: list[list[float]]) -> tuple[list[str], list[str]]:
    return [f"layer {i}" for i in range(len(grid))], [f"H{j}" for j in range(len(grid[0]) if grid else 0)]


def _steer(eid: str, r: dict[str, Any], inp: dict[str, Any], metric: str) -> list[Figure]:
    xs = [p["coefficient"] for p in r["curve"]]
    steered = Series(
        "steered along the direction (mean ± s.e.m.)",
        [p["value"] for p in r["curve"]],
        [p["value"] - p["sem"] for p in r["curve"]],
        [p["value"] + p["sem"] for p in r["curve"]],
    )
    control = Series("random directions of the same norm", [p["control_value"] for p in r["curve"]], dashed=True)
    hook = inp.get("hook", "")
    svg = line(
        xs,
        [steered, control],
        f"steering coefficient (multiples of the direction, norm {r['direction_norm']:.3g})",
        metric,
        f"steering dose-response {eid}",
    )
    return [
        Figure(
            eid,
            "steer",
            f"Steering dose-response at {hook}",
            svg,
            f"{metric} as the direction {r['direction_id']} is added at {hook}; baseline {r['baseline']:.3g}; "
            f"largest change {r['effect']:.3g} at coefficient {r['best_coefficient']:g} against "
            f"{r['control']:.3g} for random directions; monotonicity (Spearman) {r['monotonic']:.2f}.",
        )
    ]


def _probe(eid: str, r: dict[str, Any], inp: dict[str, Any], metric: str) -> list[Figure]:
    hooks = r["per_hook"]
    probe = Series(
        "linear probe (Wilson 95% interval)",
        [h["accuracy"] for h in hooks],
        [h["accuracy_ci"][0] for h in hooks],
        [h["accuracy_ci"][1] for h in hooks],
    )
    control = Series("same probe on shuffled labels", [h["control_accuracy"] for h in hooks], dashed=True)
    svg = bars([h["hook"] for h in hooks], [probe, control], "held-out accuracy", f"probe accuracy {eid}")
    return [
        Figure(
            eid,
            "probe",
            "Probe accuracy by hook",
            svg,
            f"Held-out accuracy of a logistic-regression probe per hook, against the same probe trained on "
            f"shuffled labels; best {r['best_hook']} at {r['effect']:.3g} (control {r['control']:.3g}).",
        )
    ]


def _patch(eid: str, r: dict[str, Any], inp: dict[str, Any], metric: str) -> list[Figure]:
    resid = r["over"] == "resid"
    svg = heatmap(
        r["rows"],
        r["cols"],
        r["effects"],
        "normalised patching effect",
        "hook" if resid else "layer",
        "position:token (first clean prompt)" if resid else "head",
        f"activation patching {eid}",
    )
    return [
        Figure(
            eid,
            "patch",
            f"Activation patching over {'the residual stream' if resid else 'heads'}",
            svg,
            f"Share of the clean-minus-corrupted difference in {metric} restored by patching each place "
            f"(1 = all of it); clean {r['clean_value']:.3g}, corrupted {r['corrupted_value']:.3g}; "
            f"largest {r['effect']:.3g} against a median place {r['control']:.3g}.",
        )
    ]


def _ablate(eid: str, r: dict[str, Any], inp: dict[str, Any], metric: str) -> list[Figure]:
    effect = Series("ablating these components", [r["effect"]])
    sd = r.get("control_std") or 0.0
    control = Series(
        "random components of the same kind (mean ± sd)",
        [r["control"]],
        [r["control"] - sd],
        [r["control"] + sd],
        dashed=True,
    )
    svg = bars([", ".join(r["components"])], [effect, control], f"change in {metric}", f"ablation {eid}")
    z = f"; z = {r['z_score']:.3g}" if r.get("z_score") is not None else ""
    return [
        Figure(
            eid,
            "ablate",
            "Ablation against random components",
            svg,
            f"{metric}: {r['baseline']:.3g} -> {r['ablated']:.3g} with {', '.join(r['components'])} ablated "
            f"(change {r['effect']:.3g}, {r['relative_effect']:.1%} of the baseline) against "
            f"{r['control']:.3g} ± {sd:.3g} for random components{z}.",
        )
    ]


def _scan(eid: str, r: dict[str, Any], inp: dict[str, Any], metric: str) -> list[Figure]:
    top = r["top"][:TOP]
    labels = [f"{' '.join(t['tokens'])} -> {t['top_output']}" for t in top]
    answered = Series("prompts answering its top output", [t["top_output_rate"] for t in top])
    changed = Series("prompts whose answer changed", [t["change_rate"] for t in top])
    control = Series("typical insertion: answer changed", [r["control"]] * len(top), dashed=True)
    svg = bars(labels, [answered, changed, control], "share of prompts", f"insertion scan {eid}")
    more = f" (top {len(top)} of {len(r['top'])})" if len(r["top"]) > len(top) else ""
    return [
        Figure(
            eid,
            "scan",
            "Inserted tokens and the answers they force",
            svg,
            f"Each row is an inserted token sequence and the answer it most often gives{more}; "
            f"{r['n_scanned']} insertion(s) scanned; a typical insertion changes {r['control']:.1%} of answers "
            f"and sends {r['control_output_rate']:.1%} to the first row's answer.",
        )
    ]


def _attribute(eid: str, r: dict[str, Any], inp: dict[str, Any], metric: str) -> list[Figure]:
    ranked = r["ranking"][:TOP]
    labels = [s["name"] for s in ranked] + ["typical head (median |estimate|)"]
    est = Series(f"estimated change in {metric}", [s["score"] for s in ranked] + [r["control"]])
    svg = bars(labels, [est], f"estimated change in {metric}", f"attribution ranking {eid}")
    figs = [
        Figure(
            eid,
            "attribute",
            "Components ranked by attribution",
            svg,
            f"Estimated change of {metric} (clean {r['clean_value']:.3g}) when each component takes its "
            f"{r['reference']} reference value ({r['steps']} integration step(s)); the last row is what a "
            f"typical head does.",
        )
    ]
    if r.get("head_grid"):
        rows, cols = _heads_grid(r["head_grid"])
        figs.append(
            Figure(
                eid,
                "attribute",
                "Attribution of every head",
                heatmap(
                    rows,
                    cols,
                    r["head_grid"],
                    f"estimated change in {metric}",
                    "layer",
                    "head",
                    f"head attribution {eid}",
                ),
                "The same estimate for every head, layer by head.",
            )
        )
    return figs


def _circuit(eid: str, r: dict[str, Any], inp: dict[str, Any], metric: str) -> list[Figure]:
    curve = r["curve"]
    xs = [p["size"] for p in curve]
    series = [
        Series("faithfulness (only the top k kept)", [p["faithfulness"] for p in curve]),
        Series("completeness (top k ablated)", [p["completeness"] for p in curve]),
    ]
    n = len(r["circuit"])
    bands = [
        Band(f"random sets of {n}: faithfulness (mean ± sd)", r["random_faithfulness"], r["random_faithfulness_std"]),
        Band(f"random sets of {n}: completeness (mean ± sd)", r["random_completeness"], r["random_completeness_std"]),
    ]
    svg = line(
        xs,
        series,
        "components in the circuit (top k of the ranking)",
        f"share of {metric} kept",
        f"circuit curve {eid}",
        bands,
        integer_x=True,
    )
    return [
        Figure(
            eid,
            "circuit",
            "Circuit faithfulness and completeness against its size",
            svg,
            f"Circuit of {n} ({', '.join(r['names'])}): faithfulness {r['faithfulness']:.3g} (random sets "
            f"{r['random_faithfulness']:.3g}), completeness {r['completeness']:.3g} (random sets "
            f"{r['random_completeness']:.3g}); 1 = the full model's {metric} ({r['full_value']:.3g}), 0 = "
            f"every component ablated ({r['empty_value']:.3g}). {r['rule']}",
        )
    ]


def _heads(eid: str, r: dict[str, Any], inp: dict[str, Any], metric: str) -> list[Figure]:
    rows, cols = _heads_grid(r["all_dla"])
    svg = heatmap(rows, cols, r["all_dla"], f"direct effect on {metric}", "layer", "head", f"head direct effect {eid}")
    return [
        Figure(
            eid,
            "heads",
            "Direct logit attribution of every head",
            svg,
            f"What each head writes directly onto {metric}; largest |effect| {r['effect']:.3g} against a "
            f"median head {r['control']:.3g}.",
        )
    ]


def _attention(eid: str, r: dict[str, Any], inp: dict[str, Any], metric: str) -> list[Figure]:
    heads = r["heads"]
    n_layers = max(h["layer"] for h in heads) + 1
    n_heads = max(h["head"] for h in heads) + 1
    figs = []
    for score, what in (("induction", "induction score"), ("previous_token", "previous-token score")):
        grid = [[0.0] * n_heads for _ in range(n_layers)]
        for h in heads:
            grid[h["layer"]][h["head"]] = h[score]
        rows, cols = _heads_grid(grid)
        figs.append(
            Figure(
                eid,
                "attention",
                f"Attention pattern: {what} of every head",
                heatmap(rows, cols, grid, f"mean attention ({what})", "layer", "head", f"{what} {eid}"),
                f"Mean attention share of the {what.split(' score')[0]} pattern per head; top head's score "
                f"{r['effect']:.3g} against the median head {r['control']:.3g}.",
            )
        )
    return figs


DRAW = {
    "steer": _steer,
    "probe": _probe,
    "patch": _patch,
    "ablate": _ablate,
    "scan": _scan,
    "attribute": _attribute,
    "circuit": _circuit,
    "heads": _heads,
    "attention": _attention,
}
"""Tools with figures of their own."""


def effect_vs_control(eid: str, tool: str, effect: float, control: float | None, what: str) -> Figure:
    """The experiment's effect against its control, for tools without a figure of their own."""
    series = [Series("effect", [effect])]
    if control is not None:
        series.append(Series("control", [control], dashed=True))
    return Figure(
        eid,
        tool,
        f"{tool}: effect against control",
        bars([tool], series, what, f"{tool} {eid}"),
        f"The {tool} result's effect {effect:.3g}"
        + (f" against its control {control:.3g}." if control is not None else " (no control)."),
    )


def draw(eid: str, tool: str, result: dict[str, Any], inp: dict[str, Any], question: dict[str, Any]) -> list[Figure]:
    """The figures of one experiment (empty for a tool without figures: a claim it decided is drawn
    as its effect against its control, by the page)."""
    if tool in DRAW:
        return DRAW[tool](eid, result, inp, metric_name(inp, question))
    return []

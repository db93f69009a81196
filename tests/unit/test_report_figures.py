"""The report's figures and page parts, without a model: ticks, zero values, colour scales, collapsed rows."""

from __future__ import annotations

import itertools
import re

from agent.html import charts, page, svg
from agent.html.figures import draw


def test_ticks_are_round_and_span_the_data():
    t = svg.ticks(-0.0864, 1.0)
    assert t[0] <= -0.0864 and t[-1] >= 1.0 and len(t) >= 4
    steps = {round(b - a, 9) for a, b in itertools.pairwise(t)}
    assert len(steps) == 1 and steps.pop() in (0.2, 0.25, 0.5)
    assert svg.ticks(3.0, 3.0)[0] < 3.0 < svg.ticks(3.0, 3.0)[-1]  # a single value still gets a range


def test_a_zero_bar_is_drawn_and_labelled():
    out = charts.bars(["blocks.1.hook_resid_pre"], [charts.Series("effect", [0.0])], "change in P(t21)", "x")
    widths = [float(w) for w in re.findall(r'<rect x="[^"]+" y="[^"]+" width="([^"]+)" height="11"', out)]
    assert widths and min(widths) >= 2.0
    assert ">0</text>" in out and ">blocks.1.hook_resid_pre</text>" in out  # value written, label in full


def test_an_all_zero_heatmap_keeps_a_unit_colour_scale_and_writes_its_values():
    out = charts.heatmap(["layer 0"], ["H0", "H1"], [[0.0, 0.0]], "induction score", "layer", "head", "x")
    assert ">1</text>" in out and ">-1</text>" in out and out.count('class="cell-value"') == 2


def test_heatmap_gradient_ids_do_not_depend_on_the_process():
    a = charts.heatmap(["a"], ["b"], [[0.5]], "v", "r", "c", "same label")
    assert re.search(r'id="cb[0-9a-f]{8}"', a) and a == charts.heatmap(
        ["a"], ["b"], [[0.5]], "v", "r", "c", "same label"
    )


def test_axes_carry_the_metric_of_the_call():
    result = {
        "components": ["L0H3"],
        "baseline": 12.5,
        "ablated": 9.9,
        "effect": -2.6,
        "relative_effect": -0.2,
        "control": -0.09,
        "control_std": 0.09,
        "z_score": -27.0,
    }
    metric = {"kind": "rate", "token": "t15"}
    [fig] = draw("exp-1", "ablate", result, {"metric": metric}, {"text": "q", "kind": "audit"})
    assert "change in rate(argmax = t15)" in fig.svg and 'class="errorbar"' in fig.svg


def test_a_claim_decided_by_a_tool_without_figures_still_gets_one():
    claim = {
        "id": "claim-1",
        "statement": "s",
        "evidence_tier": "causal",
        "experiment_ids": ["exp-9"],
        "effect": 0.8,
        "control": 0.1,
        "component": {},
    }
    card = page.claim_card(claim, None, [], None, "predict")
    assert "data-experiment='exp-9'" in card and card.count("<svg") == 1 and "href='#exp-exp-9'" in card


def test_long_cells_are_collapsed_and_markdown_tables_render_as_tables():
    long = "feature 0: top tokens t1, t2; " * 20
    assert page._cell(long).startswith("<details><summary>") and long.strip() in page._cell(long)
    rendered = page._md().render("| a | b |\n|---|---|\n| 1 | <script>x</script> |\n")
    assert "<table>" in rendered and "<script>" not in rendered


def test_the_report_modules_import_no_heavy_library():
    import subprocess
    import sys

    code = (
        "import sys, agent.html.page, agent.html.figures; heavy = [m for m in ('torch', 'transformer_lens', "
        "'chromadb', 'anthropic') if m in sys.modules]; print(heavy); sys.exit(bool(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr

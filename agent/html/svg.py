"""Drawing primitives for the report's figures: nice ticks, text widths, legends, colours.

Plain strings of SVG. Category labels (hook names, tokens, component names) are set in a monospace
font, whose glyphs are all 0.6 em wide, so a figure can be sized to hold its longest label in full;
prose (axis titles, legends) is sans-serif and measured with a generous average width. The browser
test (tests/e2e/test_report_html.py) checks in Chromium that every label fits its figure.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from html import escape

FONT = 12
"""Font size (px) of every label."""
MONO_W = 0.6
"""Glyph width of the monospace font, in em (DejaVu Sans Mono, Liberation Mono, Menlo, Consolas)."""
SANS_W = 0.7
"""Glyph width allowed for sans-serif text, in em: above the average of wide faces such as DejaVu Sans
(the usual sans-serif on Linux), so estimates err wide."""
SERIES = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#d62728"]
"""Colours of measured series, in order."""
CONTROL = "#8c8c8c"
"""Colour of control series (drawn dashed), whatever their position."""


def colours(dashed: list[bool]) -> list[str]:
    """One colour per series: controls grey, the others from SERIES in order."""
    out, k = [], 0
    for d in dashed:
        out.append(CONTROL if d else SERIES[k % len(SERIES)])
        k += 0 if d else 1
    return out


def width(text: str, mono: bool = False, size: int = FONT) -> float:
    """Estimated rendered width of `text` in px."""
    return len(text) * size * (MONO_W if mono else SANS_W)


def fmt(v: float) -> str:
    """A number as a tick or value label: 3 significant digits, no '-0'."""
    s = f"{v:.3g}"
    return "0" if s in ("-0", "0") else s


def ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About `n` round tick values spanning [lo, hi] (the range is widened to the outer ticks)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0, 1.0]
    if hi - lo < 1e-12:
        pad = abs(hi) * 0.1 or 1.0
        lo, hi = lo - pad, hi + pad
    raw = (hi - lo) / max(n, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.floor(lo / step + 1e-9) * step
    out: list[float] = []
    v = start
    while v < hi + step * 0.5 and len(out) < 50:
        out.append(round(v, 12))
        v += step
    if out[-1] < hi - 1e-12:
        out.append(round(out[-1] + step, 12))
    return out


def scale(lo: float, hi: float, a: float, b: float) -> Callable[[float], float]:
    """Linear map from data [lo, hi] to pixels [a, b]."""
    span = (hi - lo) or 1.0
    return lambda v: a + (v - lo) / span * (b - a)


def text(
    x: float,
    y: float,
    s: str,
    anchor: str = "start",
    mono: bool = False,
    cls: str = "",
    size: int = FONT,
    extra: str = "",
) -> str:
    family = ' font-family="monospace"' if mono else ""
    klass = f' class="{cls}"' if cls else ""
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size}"{family}{klass}{extra}>'
        f"{escape(s)}</text>"
    )


def legend(
    names: list[str], colours: list[str], x: float, y: float, max_width: float, dashed: list[bool] | None = None
) -> tuple[str, float, float]:
    """A legend laid out in rows from (x, y) within `max_width` (an entry wider than that gets a row of
    its own), outside the plot area; (svg, height used, rightmost x used)."""
    out, cx, cy, right = [], x, y, x
    for i, name in enumerate(names):
        w = 22 + width(name) + 16
        if cx > x and cx + w > x + max_width:
            cx, cy = x, cy + FONT + 6
        dash = ' stroke-dasharray="4 3"' if dashed and dashed[i] else ""
        out.append(
            f'<line x1="{cx:.1f}" y1="{cy - 4:.1f}" x2="{cx + 16:.1f}" y2="{cy - 4:.1f}" '
            f'stroke="{colours[i]}" stroke-width="6"{dash}/>'
        )
        out.append(text(cx + 22, cy, name, cls="legend"))
        right = max(right, cx + w - 16)
        cx += w
    return f'<g class="legend">{"".join(out)}</g>', cy - y + FONT + 6, right


def centred(centre: float, text_w: float, total_w: float) -> float:
    """Where to centre a label of width `text_w` near `centre` so that it stays inside [0, total_w]."""
    return min(max(centre, text_w / 2 + 4), total_w - text_w / 2 - 4)


def diverging(v: float, vmax: float) -> str:
    """Blue (negative) - white (0) - red (positive), saturated at |v| = vmax."""
    t = max(-1.0, min(1.0, v / vmax)) if vmax > 0 else 0.0
    if t >= 0:
        return f"rgb(255,{round(255 - 190 * t)},{round(255 - 200 * t)})"
    return f"rgb({round(255 + 200 * t)},{round(255 + 140 * t)},255)"


def ink(v: float, vmax: float) -> str:
    """Text colour readable on the cell colour of `v`."""
    return "#fff" if vmax > 0 and abs(v) / vmax > 0.65 else "#000"


def svg(w: float, h: float, body: str, label: str) -> str:
    """The figure's root element: width, height and viewBox agree (1 unit = 1 px)."""
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w:.0f}" height="{h:.0f}" viewBox="0 0 {w:.0f} {h:.0f}" '
        f'font-family="sans-serif" role="img" aria-label="{escape(label)}">{body}</svg>'
    )

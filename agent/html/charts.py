"""The three chart kinds of the report: horizontal bars, lines, heatmaps.

Each sizes itself to its labels (category labels are never shortened), puts its legend above the
plot area (never over the data), labels both axes, draws ticks and a zero line, and draws a zero
value as a visible mark with its number beside it.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html import escape

from agent.html.svg import CONTROL, FONT, centred, colours, diverging, fmt, ink, legend, scale, svg, text, ticks, width

PLOT_W = 340
"""Width of the plot area (px) of bar and line charts."""


@dataclass
class Series:
    """One named series of values, with optional error bounds (absolute low/high per value)."""

    name: str
    values: list[float]
    low: list[float] | None = None
    high: list[float] | None = None
    dashed: bool = False

    def bounds(self, i: int) -> tuple[float, float] | None:
        if self.low is None or self.high is None:
            return None
        return self.low[i], self.high[i]


@dataclass
class Band:
    """A horizontal reference band (e.g. random controls: mean +/- spread) on a line chart."""

    name: str
    mean: float
    spread: float


def _finite(vals: Iterable[float | None]) -> list[float]:
    return [v for v in vals if v is not None and math.isfinite(v)]


def _extent(series: list[Series], extra: Sequence[float] = ()) -> tuple[float, float]:
    vals = [0.0, *extra]
    for s in series:
        vals += _finite(s.values) + _finite(s.low or []) + _finite(s.high or [])
    return min(vals), max(vals)


def _value(s: Series, i: int) -> str:
    b = s.bounds(i)
    if b is None:
        return fmt(s.values[i])
    lo, hi = b
    half = (hi - lo) / 2
    mid = s.values[i]
    if abs((mid - lo) - (hi - mid)) <= 1e-9 * max(1.0, abs(hi)):
        return f"{fmt(mid)} ± {fmt(half)}"
    return f"{fmt(mid)} [{fmt(lo)}, {fmt(hi)}]"


def bars(labels: list[str], series: list[Series], x_label: str, label: str) -> str:
    """Horizontal grouped bars: one row per label (full, monospace, left), one bar per series,
    error whiskers where a series has bounds, each value written in a column on the right."""
    k = len(series)
    palette = colours([s.dashed for s in series])
    left = max([width(lab, mono=True) for lab in labels] + [40]) + 16
    values_w = max(width(_value(s, i)) for s in series for i in range(len(s.values))) + 16 if labels else 40
    total_w = left + PLOT_W + values_w + 10
    leg, leg_h, leg_right = legend(
        [s.name for s in series], palette, left, 16, total_w - left - 10, [s.dashed for s in series]
    )
    top = 16 + leg_h
    bar_h, gap = 13, 10
    row_h = k * bar_h + gap
    plot_h = max(len(labels), 1) * row_h
    lo, hi = _extent(series)
    tv = ticks(lo, hi)
    sx = scale(tv[0], tv[-1], left, left + PLOT_W)
    body = [f'<rect class="plot" x="{left}" y="{top}" width="{PLOT_W}" height="{plot_h}" fill="#fafafa"/>']
    for t in tv:
        body.append(f'<line x1="{sx(t):.1f}" y1="{top}" x2="{sx(t):.1f}" y2="{top + plot_h + 4}" stroke="#ddd"/>')
        body.append(text(sx(t), top + plot_h + 4 + FONT, fmt(t), "middle"))
    body.append(f'<line x1="{sx(0):.1f}" y1="{top}" x2="{sx(0):.1f}" y2="{top + plot_h}" stroke="#333"/>')
    for i, lab in enumerate(labels):
        y0 = top + i * row_h + gap / 2
        body.append(text(left - 8, y0 + k * bar_h / 2 + 4, lab, "end", mono=True, cls="category"))
        for j, s in enumerate(series):
            v, y = s.values[i], y0 + j * bar_h
            a, b = sorted((sx(0), sx(v)))
            # a zero value is drawn as a 2 px mark on the zero line, so "no effect" is seen, not missed
            w = max(b - a, 2.0)
            style = ' fill-opacity="0.45" stroke-dasharray="3 2" stroke="#555"' if s.dashed else ""
            body.append(
                f'<rect x="{a - (1 if b - a < 2 else 0):.1f}" y="{y + 1:.1f}" width="{w:.1f}" '
                f'height="{bar_h - 2}" fill="{palette[j]}"{style}><title>{escape(s.name)}, '
                f"{escape(lab)}: {escape(_value(s, i))}</title></rect>"
            )
            bnd = s.bounds(i)
            if bnd is not None:
                l, h, yc = sx(bnd[0]), sx(bnd[1]), y + bar_h / 2
                body.append(
                    f'<path class="errorbar" d="M{l:.1f},{yc:.1f}H{h:.1f}M{l:.1f},{yc - 4:.1f}v8'
                    f'M{h:.1f},{yc - 4:.1f}v8" stroke="#000" fill="none"/>'
                )
            body.append(
                text(left + PLOT_W + 8, y + bar_h - 2, _value(s, i), cls="value", extra=f' fill="{palette[j]}"')
            )
    axis_y = top + plot_h + 4 + FONT + 8 + FONT
    w = max(total_w, width(x_label) + 20, leg_right + 8)
    body.append(text(centred(left + PLOT_W / 2, width(x_label), w), axis_y, x_label, "middle", cls="axis-label"))
    return svg(w, axis_y + 8, leg + "".join(body), label)


def line(
    xs: list[float],
    series: list[Series],
    x_label: str,
    y_label: str,
    label: str,
    bands: Sequence[Band] = (),
    integer_x: bool = False,
) -> str:
    """Lines with point markers over shared x values, error whiskers where a series has bounds,
    reference bands (shaded mean +/- spread, dashed mean) behind them."""
    palette = colours([s.dashed for s in series])
    band_colour = CONTROL
    lo, hi = _extent(series, [v for b in bands for v in (b.mean - b.spread, b.mean + b.spread)])
    ty = ticks(lo, hi)
    left = max(width(fmt(t)) for t in ty) + 16
    total_w = left + PLOT_W + 20
    names = [s.name for s in series] + [b.name for b in bands]
    leg, leg_h, leg_right = legend(
        names,
        palette + [band_colour] * len(bands),
        8,
        16,
        max(total_w, width(y_label) + 16) - 16,
        [s.dashed for s in series] + [True] * len(bands),
    )
    top = 16 + leg_h + FONT + 12  # the y axis title sits above the axis, read horizontally
    plot_h = 200
    x_lo, x_hi = min(xs), max(xs)
    if x_hi == x_lo:  # one point: centred in a range around it rather than on the axis
        x_lo, x_hi = x_lo - 1, x_hi + 1
    tx = ticks(x_lo, x_hi, min(6, max(len(xs) - 1, 2)))
    if integer_x:
        tx = sorted({round(t) for t in tx if abs(t - round(t)) < 1e-9}) or [round(x) for x in xs]
    sx = scale(tx[0], tx[-1], left, left + PLOT_W)
    sy = scale(ty[0], ty[-1], top + plot_h, top)
    body = [
        text(8, top - 14, y_label, cls="axis-label"),
        f'<rect class="plot" x="{left}" y="{top}" width="{PLOT_W}" height="{plot_h}" fill="#fafafa"/>',
    ]
    for t in ty:
        body.append(f'<line x1="{left - 4}" y1="{sy(t):.1f}" x2="{left + PLOT_W}" y2="{sy(t):.1f}" stroke="#ddd"/>')
        body.append(text(left - 6, sy(t) + 4, fmt(t), "end"))
    for t in tx:
        body.append(
            f'<line x1="{sx(t):.1f}" y1="{top + plot_h}" x2="{sx(t):.1f}" y2="{top + plot_h + 4}" stroke="#333"/>'
        )
        body.append(text(sx(t), top + plot_h + 4 + FONT, fmt(t), "middle"))
    if ty[0] < 0 < ty[-1]:
        body.append(f'<line x1="{left}" y1="{sy(0):.1f}" x2="{left + PLOT_W}" y2="{sy(0):.1f}" stroke="#333"/>')
    body.append(f'<path d="M{left},{top}V{top + plot_h}H{left + PLOT_W}" stroke="#333" fill="none"/>')
    for b in bands:
        y1, y2 = sy(b.mean + b.spread), sy(b.mean - b.spread)
        body.append(
            f'<rect x="{left}" y="{y1:.1f}" width="{PLOT_W}" height="{max(y2 - y1, 1):.1f}" '
            f'fill="{band_colour}" fill-opacity="0.18"><title>{escape(b.name)}: {fmt(b.mean)} ± '
            f"{fmt(b.spread)}</title></rect>"
        )
        body.append(
            f'<line x1="{left}" y1="{sy(b.mean):.1f}" x2="{left + PLOT_W}" y2="{sy(b.mean):.1f}" '
            f'stroke="{band_colour}" stroke-dasharray="4 3"/>'
        )
    for j, s in enumerate(series):
        c = palette[j]
        pts = [(sx(x), sy(v)) for x, v in zip(xs, s.values, strict=False) if v is not None and math.isfinite(v)]
        dash = ' stroke-dasharray="5 3"' if s.dashed else ""
        body.append(
            f'<polyline fill="none" stroke="{c}" stroke-width="2"{dash} '
            f'points="{" ".join(f"{x:.1f},{y:.1f}" for x, y in pts)}"/>'
        )
        for i, x in enumerate(xs):
            bnd = s.bounds(i)
            if bnd is not None:
                px, l, h = sx(x), sy(bnd[0]), sy(bnd[1])
                body.append(
                    f'<path class="errorbar" d="M{px:.1f},{l:.1f}V{h:.1f}M{px - 4:.1f},{l:.1f}h8'
                    f'M{px - 4:.1f},{h:.1f}h8" stroke="{c}" fill="none"/>'
                )
            body.append(
                f'<circle cx="{sx(x):.1f}" cy="{sy(s.values[i]):.1f}" r="3" fill="{c}">'
                f"<title>{escape(s.name)} at {fmt(x)}: {escape(_value(s, i))}</title></circle>"
            )
    axis_y = top + plot_h + 4 + FONT + 8 + FONT
    w = max(total_w, width(y_label) + 16, width(x_label) + 20, leg_right + 8)
    body.append(text(centred(left + PLOT_W / 2, width(x_label), w), axis_y, x_label, "middle", cls="axis-label"))
    return svg(w, axis_y + 8, leg + "".join(body), label)


def heatmap(
    rows: list[str],
    cols: list[str],
    grid: list[list[float]],
    value_label: str,
    row_title: str,
    col_title: str,
    label: str,
) -> str:
    """Cells coloured on a diverging scale centred on 0, each with its value written in it, full row
    labels on the left, column labels below (slanted when wider than a cell), a colour bar with ticks."""
    # an all-zero grid keeps a unit scale: its colour bar reads 0 +/- 1, not +/- 1e-12
    vmax = max([abs(v) for r in grid for v in r if math.isfinite(v)] + [0.0]) or 1.0
    cell_w = max([width(fmt(v), size=10) + 8 for r in grid for v in r] + [34])
    cell_h = 22
    left = max([width(r, mono=True) for r in rows] + [width(row_title)]) + 16
    slant = any(width(c, mono=True) > cell_w - 4 for c in cols)
    col_h = max(width(c, mono=True) for c in cols) * (0.72 if slant else 0) + FONT + 10 if cols else FONT
    top = 16 + FONT + 16  # the row title and the colour bar's title sit above the grid
    body = [text(left - 8, top - 16, row_title, "end", cls="axis-label")]
    for i, (name, vals) in enumerate(zip(rows, grid, strict=False)):
        y = top + i * cell_h
        body.append(text(left - 8, y + cell_h / 2 + 4, name, "end", mono=True, cls="category"))
        for j, v in enumerate(vals):
            x = left + j * cell_w
            body.append(
                f'<rect x="{x:.1f}" y="{y}" width="{cell_w:.1f}" height="{cell_h}" fill="{diverging(v, vmax)}" '
                f'stroke="#fff"><title>{escape(name)} / {escape(cols[j])}: {fmt(v)}</title></rect>'
            )
            body.append(
                text(
                    x + cell_w / 2,
                    y + cell_h / 2 + 4,
                    fmt(v),
                    "middle",
                    size=10,
                    cls="cell-value",
                    extra=f' fill="{ink(v, vmax)}"',
                )
            )
    grid_bottom = top + len(rows) * cell_h
    for j, name in enumerate(cols):
        cx = left + (j + 0.5) * cell_w
        if slant:
            body.append(
                text(
                    cx + 4,
                    grid_bottom + FONT + 2,
                    name,
                    "end",
                    mono=True,
                    cls="category",
                    extra=f' transform="rotate(-45 {cx + 4:.1f} {grid_bottom + FONT + 2:.1f})"',
                )
            )
        else:
            body.append(text(cx, grid_bottom + FONT + 4, name, "middle", mono=True, cls="category"))
    grid_right = left + len(cols) * cell_w
    title_y = grid_bottom + col_h + FONT
    body.append(
        text(
            max(left + len(cols) * cell_w / 2, width(col_title) / 2 + 4), title_y, col_title, "middle", cls="axis-label"
        )
    )
    # colour bar: the scale the cells are coloured on, with ticks
    bx, bh = grid_right + 24, max(len(rows) * cell_h, 120)
    stops = "".join(f'<stop offset="{k / 10}" stop-color="{diverging(vmax * (1 - k / 5), vmax)}"/>' for k in range(11))
    gid = f"cb{zlib.crc32(label.encode()):08x}"  # deterministic (str hash is salted per process), unique per figure
    body.append(
        f'<defs><linearGradient id="{gid}" x1="0" y1="0" x2="0" y2="1">{stops}</linearGradient></defs>'
        f'<rect class="colourbar" x="{bx}" y="{top}" width="14" height="{bh}" fill="url(#{gid})" '
        f'stroke="#999"/>'
    )
    cb_ticks: list[float] = [vmax, vmax / 2, 0.0, -vmax / 2, -vmax]
    for t in cb_ticks:
        tick_y = top + (vmax - t) / (2 * vmax) * bh
        body.append(f'<line x1="{bx + 14}" y1="{tick_y:.1f}" x2="{bx + 18}" y2="{tick_y:.1f}" stroke="#333"/>')
        body.append(text(bx + 21, tick_y + 4, fmt(t)))
    body.append(text(bx, top - 16, value_label, cls="axis-label"))
    w = max(
        bx + 21 + max(width(fmt(t)) for t in cb_ticks) + 8,
        bx + width(value_label) + 8,
        max(left + len(cols) * cell_w / 2, width(col_title) / 2 + 4) + width(col_title) / 2 + 8,
    )
    h = max(title_y + 8, top + bh + 10)
    return svg(w, h, "".join(body), label)

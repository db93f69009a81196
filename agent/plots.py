"""Small self-contained SVG plots for report.html (no plotting library, no scripts, no network)."""

from __future__ import annotations

from html import escape

W, H, PAD = 420, 220, 40


def _scale(lo: float, hi: float, a: float, b: float):
    span = (hi - lo) or 1.0
    return lambda v: a + (v - lo) / span * (b - a)


def _frame(title: str, body: str, x_label: str, y_label: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-size="10" '
            f'font-family="sans-serif"><text x="{W / 2}" y="14" text-anchor="middle" font-weight="bold">'
            f'{escape(title)}</text><line x1="{PAD}" y1="{H - PAD}" x2="{W - 10}" y2="{H - PAD}" stroke="#444"/>'
            f'<line x1="{PAD}" y1="24" x2="{PAD}" y2="{H - PAD}" stroke="#444"/>'
            f'<text x="{W / 2}" y="{H - 6}" text-anchor="middle">{escape(x_label)}</text>'
            f'<text x="10" y="{H / 2}" transform="rotate(-90 10 {H / 2})" text-anchor="middle">'
            f'{escape(y_label)}</text>{body}</svg>')


def lines(title: str, xs: list[float], series: dict[str, list[float]], x_label: str, y_label: str) -> str:
    """One line per series over shared x values (e.g. steering dose-response vs random control)."""
    ys = [v for s in series.values() for v in s]
    lo, hi = min(ys + [0.0]), max(ys + [0.0])
    sx, sy = _scale(min(xs), max(xs), PAD, W - 20), _scale(lo, hi, H - PAD, 28)
    colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"]
    body = "".join(f'<text x="{PAD - 4}" y="{sy(v) + 3}" text-anchor="end">{v:.2g}</text>' for v in (lo, hi))
    body += "".join(f'<text x="{sx(x)}" y="{H - PAD + 12}" text-anchor="middle">{x:g}</text>' for x in xs)
    for i, (name, vals) in enumerate(series.items()):
        c = colours[i % len(colours)]
        pts = " ".join(f"{sx(x):.1f},{sy(v):.1f}" for x, v in zip(xs, vals))
        body += f'<polyline fill="none" stroke="{c}" stroke-width="2" points="{pts}"/>'
        body += f'<text x="{W - 15}" y="{30 + 12 * i}" text-anchor="end" fill="{c}">{escape(name)}</text>'
    return _frame(title, body, x_label, y_label)


def bars(title: str, labels: list[str], series: dict[str, list[float]], y_label: str) -> str:
    """Grouped bars (e.g. ablation effect against its random control)."""
    ys = [v for s in series.values() for v in s]
    lo, hi = min(ys + [0.0]), max(ys + [0.0])
    sy = _scale(lo, hi, H - PAD, 28)
    n, k = len(labels), len(series)
    slot = (W - PAD - 20) / max(n, 1)
    bw = slot * 0.8 / max(k, 1)
    colours = ["#1f77b4", "#aaaaaa", "#2ca02c"]
    body = f'<line x1="{PAD}" y1="{sy(0)}" x2="{W - 10}" y2="{sy(0)}" stroke="#999" stroke-dasharray="3"/>'
    body += "".join(f'<text x="{PAD - 4}" y="{sy(v) + 3}" text-anchor="end">{v:.2g}</text>' for v in (lo, hi))
    for j, (name, vals) in enumerate(series.items()):
        c = colours[j % len(colours)]
        body += f'<text x="{W - 15}" y="{30 + 12 * j}" text-anchor="end" fill="{c}">{escape(name)}</text>'
        for i, v in enumerate(vals):
            x = PAD + i * slot + slot * 0.1 + j * bw
            y0, y1 = sorted((sy(0), sy(v)))
            body += f'<rect x="{x:.1f}" y="{y0:.1f}" width="{bw:.1f}" height="{max(y1 - y0, 0.5):.1f}" fill="{c}"/>'
    for i, lab in enumerate(labels):
        body += (f'<text x="{PAD + (i + 0.5) * slot:.1f}" y="{H - PAD + 12}" text-anchor="middle">'
                 f'{escape(lab[:14])}</text>')
    return _frame(title, body, "", y_label)


def heatmap(title: str, rows: list[str], cols: list[str], grid: list[list[float]]) -> str:
    """Cells coloured by value in [0, 1] (e.g. normalised patching effect)."""
    cw = (W - 130) / max(len(cols), 1)
    ch = (H - 60) / max(len(rows), 1)
    body = ""
    for r, (name, vals) in enumerate(zip(rows, grid)):
        body += f'<text x="118" y="{30 + (r + 0.6) * ch:.1f}" text-anchor="end">{escape(name[-22:])}</text>'
        for c, v in enumerate(vals):
            t = max(0.0, min(1.0, v))
            colour = f"rgb({int(255 - 200 * t)},{int(255 - 120 * t)},255)"
            body += (f'<rect x="{120 + c * cw:.1f}" y="{24 + r * ch:.1f}" width="{cw:.1f}" height="{ch:.1f}" '
                     f'fill="{colour}"><title>{escape(name)} / {escape(cols[c])}: {v:.2f}</title></rect>')
    for c, name in enumerate(cols):
        body += (f'<text x="{120 + (c + 0.5) * cw:.1f}" y="{H - 22}" text-anchor="middle" font-size="8">'
                 f'{escape(name[:6])}</text>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-size="9" '
            f'font-family="sans-serif"><text x="{W / 2}" y="14" text-anchor="middle" font-weight="bold">'
            f'{escape(title)}</text>{body}</svg>')

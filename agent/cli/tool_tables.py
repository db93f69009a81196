"""Tables for tool results whose one-line summary hides what a user wants to compare."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich import box
from rich.table import Table

if TYPE_CHECKING:
    from tools.probe import ProbeResult


def probe_table(result: ProbeResult) -> Table:
    """One row per probed hook: held-out accuracy with its interval, AUROC, the shuffled-label control and
    selectivity (accuracy minus control: what the probe reads beyond what any labels would fit)."""
    sizes = sorted({(h.n_train, h.n_test) for h in result.per_hook})
    rows = ", ".join(f"{a} train / {b} test" for a, b in sizes)
    # compact box and no wrapping: the table stays whole in an 80-column pipe
    table = Table(
        title="probe by hook (held-out)",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        show_edge=False,
        collapse_padding=True,
        caption=f"* best hook; control: the same probe on shuffled labels; {rows}",
        caption_justify="left",
    )
    for col in ("hook", "accuracy", "95% CI", "AUROC", "control", "selectivity"):
        table.add_column(col, justify="left" if col == "hook" else "right", no_wrap=True)
    for h in result.per_hook:
        best = h.hook == result.best_hook
        table.add_row(
            h.hook + (" *" if best else ""),
            f"{h.accuracy:.3f}",
            f"{h.accuracy_ci[0]:.2f}-{h.accuracy_ci[1]:.2f}",
            f"{h.auroc:.3f}",
            f"{h.control_accuracy:.3f}",
            f"{h.accuracy - h.control_accuracy:+.3f}",
            style="bold" if best else None,
        )
    return table

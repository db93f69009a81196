"""The live terminal view of a run: hypotheses and their status, the budget, the current tool."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from types import TracebackType

    from rich.console import Console

    from agent.budget import Budget
    from agent.state import InvestigationState

_STYLE = {
    "supported": "green",
    "refuted": "red",
    "inconclusive": "yellow",
    "open": "cyan",
    "untested": "dim",
    "skipped": "dim",
    "error": "magenta",
}


class Display:
    """A rich Live panel, redrawn by the nodes as the run moves."""

    def __init__(self, console: Console):
        from rich.live import Live

        self.live = Live(console=console, refresh_per_second=4, transient=False)

    def __enter__(self) -> Display:
        self.live.__enter__()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.live.__exit__(exc_type, exc, tb)

    def update(self, state: InvestigationState, budget: Budget, current: str = "") -> None:
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        table = Table(title="hypotheses", expand=True, show_lines=False)
        table.add_column("status", width=12)
        table.add_column("hypothesis", overflow="fold")
        for h in state.get("hypotheses", [])[-12:]:
            table.add_row(Text(h["status"], style=_STYLE.get(h["status"], "")), h["plan"]["statement"][:160])
        line = (
            f"budget {budget.elapsed():.0f}/{budget.wall_seconds:.0f} s ({budget.share_used():.0%})  "
            f"tokens {budget.spent_forward_tokens}  ${budget.spent_usd:.3f}  "
            f"experiments {len(state.get('observations', []))}  claims {len(state.get('claims', []))}  "
            f"errors {len(state.get('errors', []))}"
        )
        self.live.update(
            Group(table, Text(line, style="bold"), Text(f"now: {current}" if current else "", style="dim"))
        )

"""What a run needs besides its state: settings (saved as run.json) and the runtime context.

The context holds the live objects LangGraph must not checkpoint: the target
model, the memory client, the brain, the live budget clock, the trace and the
display. `--resume RUN_DIR` rebuilds it from run.json.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from agent.budget import Budget
from agent.trace import Trace
from tools.errors import UserError

if TYPE_CHECKING:
    from agent.brains.base import Brain
    from agent.display import Display
    from memory.store import MemoryStore
    from tools.target import Target

SETTINGS_FILE = "run.json"


@dataclass
class RunSettings:
    """How a run was launched; enough to resume it."""

    question: dict
    """The parsed Question."""
    model: str
    """Target spec, e.g. organism:backdoor."""
    brain: str = "heuristic"
    """heuristic, claude[:MODEL] or scripted:FILE."""
    wall_seconds: float = 300.0
    """Wall-clock budget."""
    max_forward_tokens: int | None = None
    """Forward-token budget."""
    max_usd: float | None = None
    """LLM dollar budget."""
    memory: str | None = None
    """Memory location (folder or http://HOST:PORT); None: no memory."""
    review: Literal["live", "queue"] = "queue"
    """Ask in the terminal at the end, or queue claims for `interp review`."""
    seed: int = 0
    """Seeds the heuristic brain's prompts and the tools' controls."""
    pivot_share: float = 0.4
    """Share of the budget a line of attack may spend without a supported hypothesis."""
    max_decisions: int = 200
    """Brain decisions before the run stops (a guard against a brain that never concludes)."""
    device: str | None = None
    """torch device (default: CUDA when available)."""
    run_id: str = field(default_factory=lambda: "run-" + secrets.token_hex(6))
    """Run id."""

    def save(self, run_dir: Path) -> None:
        (run_dir / SETTINGS_FILE).write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, run_dir: Path) -> RunSettings:
        path = run_dir / SETTINGS_FILE
        if not path.is_file():
            raise UserError(f"{run_dir} is not a run folder (no {SETTINGS_FILE}); give the folder an "
                            "earlier `interp investigate` printed")
        try:
            return cls(**json.loads(path.read_text()))
        except (json.JSONDecodeError, TypeError) as e:
            raise UserError(f"{path} is corrupt ({e}); start a new run instead") from None

    def new_budget(self) -> Budget:
        return Budget(self.wall_seconds, self.max_forward_tokens, self.max_usd)


@dataclass
class RunContext:
    """Live objects of a run (LangGraph's runtime context, never checkpointed)."""

    settings: RunSettings
    """Settings."""
    target: Target
    """The model under investigation."""
    brain: Brain
    """Who decides."""
    run_dir: Path
    """Run folder."""
    budget: Budget
    """The live budget (its plain-data copy goes into state at every node)."""
    trace: Trace
    """trace.jsonl."""
    memory: MemoryStore | None = None
    """Memory, when one is used."""
    display: Display | None = None
    """Live terminal display, when shown."""
    reviewer: str = ""
    """Who answers a live review."""
    ask: object = None
    """Live review: a function(claims) -> decisions (the CLI prompts in the terminal)."""

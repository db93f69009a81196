"""What a run needs besides its state: settings (saved as run.json) and the runtime context.

The context holds the live objects LangGraph must not checkpoint: the target
model, the memory client, the brain, the live budget clock, the trace and the
display. `--resume RUN_DIR` rebuilds it from run.json.
"""

from __future__ import annotations

import json
import math
import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from agent.budget import Budget
from agent.run_folder import RunFolder
from agent.trace import Trace
from tools.clock import Clock, monotonic
from tools.errors import UserError
from tools.files import read_text_file

if TYPE_CHECKING:
    from agent.brains.base import Brain
    from agent.budget import Heartbeat
    from agent.display import Display
    from agent.speed import Speed
    from memory.store import MemoryStore
    from tools.target import Target

SETTINGS_FILE = RunFolder.SETTINGS
# numpy's SeedSequence takes any non-negative int, but torch.manual_seed and the legacy RandomState
# stop at 2**32 - 1; one range for every seed consumer.
MAX_SEED = 2**32 - 1


def new_run_id() -> str:
    return "run-" + secrets.token_hex(6)


def _finite(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


@dataclass
class RunSettings:
    """How a run was launched; enough to resume it."""

    question: dict[str, Any]
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
    run_id: str = field(default_factory=lambda: new_run_id())
    """Run id."""
    weights_hash: str | None = None
    """Hash of the target's weights when the run started; a resume on other weights is refused."""
    independent: bool = False
    """A run of a pooled job (`interp investigate --runs N`): it does not recall other runs' hypothesis attempts,
    so each run replicates a finding on its own (agent/independent_memory.py); reviews are still recalled."""

    def __post_init__(self) -> None:
        """Every number is checked here, so a bad option or a hand-edited run.json is one clear error."""
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed <= MAX_SEED:
            raise UserError(f"--seed {self.seed!r}: use a whole number from 0 to {MAX_SEED}")
        if not _finite(self.wall_seconds) or self.wall_seconds <= 0:
            raise UserError(f"--budget {self.wall_seconds!r} seconds: must be a finite duration more than zero")
        if self.max_forward_tokens is not None and (
            not isinstance(self.max_forward_tokens, int) or self.max_forward_tokens <= 0
        ):
            raise UserError(f"--max-forward-tokens {self.max_forward_tokens!r}: must be a whole number more than zero")
        if self.max_usd is not None and (not _finite(self.max_usd) or self.max_usd <= 0):
            raise UserError(f"--max-cost {self.max_usd!r}: must be a finite number of dollars more than zero")
        if not _finite(self.pivot_share) or not 0 < self.pivot_share <= 1:
            raise UserError(f"--pivot {self.pivot_share!r}: must be a share of the budget in (0, 1], e.g. 0.4")
        if isinstance(self.max_decisions, bool) or not isinstance(self.max_decisions, int) or self.max_decisions < 1:
            raise UserError(f"--max-decisions {self.max_decisions!r}: must be a whole number, at least 1")
        if self.review not in ("live", "queue"):
            raise UserError(f"--review {self.review!r}: use live or queue")

    def save(self, run_dir: Path) -> None:
        RunFolder(run_dir).write_settings(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, run_dir: Path) -> RunSettings:
        path = RunFolder(run_dir).require_settings()
        text = read_text_file(path, "run settings", "the JSON that `interp investigate` wrote")
        try:
            return cls(**json.loads(text))
        except (json.JSONDecodeError, TypeError) as e:
            raise UserError(f"{path} is corrupt ({e}); start a new run instead") from None
        except UserError as e:
            raise UserError(f"{path} holds a bad setting ({e}); start a new run instead") from None

    def new_budget(self, clock: Clock = monotonic) -> Budget:
        return Budget(self.wall_seconds, self.max_forward_tokens, self.max_usd, clock=clock)


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
    speed: Speed | None = None
    """The target's measured speed on this machine (None: not calibrated; estimates then have no seconds)."""
    heartbeat: Heartbeat | None = None
    """Records spent time during long calls, for a resume after kill -9."""

"""The scripted brain: replays a JSON list of actions, in batches; for tests.

The file holds a list of actions, or a list of lists (each inner list is one
decision's batch). Actions are passed on unvalidated: a malformed one must
show up as an error in the trace and report, which is what the tests check.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agent.brains.base import BrainDecision, View
from tools.errors import UserError
from tools.files import read_text_file


class ScriptedBrain:
    """Replays actions from a file."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.name = f"scripted:{self.path}"
        text = read_text_file(self.path, "scripted brain file", "a JSON list of actions")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise UserError(f"scripted brain file {self.path} is not JSON ({e.msg}, line {e.lineno})") from None
        if not isinstance(data, list):
            raise UserError(f"scripted brain file {self.path}: expected a JSON list of actions")
        self.batches = [b if isinstance(b, list) else [b] for b in data]

    def decide(self, view: View, memory: dict[str, Any]) -> BrainDecision:
        i = int(memory.get("next", 0))
        if i >= len(self.batches):
            return BrainDecision([{"kind": "conclude", "summary": "script finished"}], {"next": i})
        return BrainDecision(self.batches[i], {"next": i + 1}, note=f"batch {i + 1} of {len(self.batches)}")

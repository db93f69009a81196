"""trace.jsonl: every brain decision and tool call with its cost, one JSON object a line.

Appended and flushed as it happens, so a killed run keeps its trace; a resumed
run appends a `resume` event and carries on (a node interrupted mid-way runs
again, and its events appear again after the resume line).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


class Trace:
    """Append-only event log of a run."""

    def __init__(self, path: Path):
        self.path = path

    def write(self, event: str, **data: object) -> None:
        line = {"t": datetime.now(UTC).isoformat(timespec="milliseconds"), "event": event, **data}
        with open(self.path, "a") as f:
            f.write(json.dumps(line, default=str) + "\n")

    def read(self) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        return [json.loads(l) for l in self.path.read_text().splitlines() if l.strip()]

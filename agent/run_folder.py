"""The files of one run, named and written in one place.

A run folder holds `run.json` (settings), `trace.jsonl` (every decision and call), `checkpoints.sqlite`
(LangGraph's checkpoints), `results/ID.json` (each experiment's full result), `claims.json`,
`decisions.json` (review decisions), `report.md` and `report.html`. Files a reader may open while they
are written (the report and claims a reviewer updates, results the brain reads) are replaced atomically;
read-modify-write of the review files happens under the folder's lock, so two reviewers (or a reviewer and
the run writing its report) never lose each other's decisions.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tools.errors import UserError

_EXPERIMENT_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")


class RunFolder:
    """Paths and safe writes inside one run's folder."""

    SETTINGS = "run.json"
    TRACE = "trace.jsonl"
    CHECKPOINTS = "checkpoints.sqlite"
    RESULTS = "results"
    CLAIMS = "claims.json"
    DECISIONS = "decisions.json"
    REPORT_MD = "report.md"
    REPORT_HTML = "report.html"
    PREVIOUS = "previous"
    """Earlier runs set aside to start over in the same folder (`interp investigate --restart`)."""
    ARTIFACTS = "artifacts"
    """What tools write during the run (activations, SAEs, transcoders, graphs; agent/paths.py)."""
    DIRECTIONS = "directions"
    """Steering directions the run's tools saved (tools/directions.py), named by id."""
    HEARTBEAT = "budget.heartbeat.json"
    """Spent seconds written during a call (agent.budget.Heartbeat), so a killed call is charged on resume."""
    LOCK = ".lock"
    """Held by the process running or resuming the run (agent/run_lock.py)."""
    REVIEW_LOCK = ".decisions.lock"
    """Held while the review files (decisions, claims, reports) are read, changed and written back."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        """The folder."""

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    @property
    def settings(self) -> Path:
        return self.path / self.SETTINGS

    @property
    def trace(self) -> Path:
        return self.path / self.TRACE

    @property
    def checkpoints(self) -> Path:
        return self.path / self.CHECKPOINTS

    @property
    def heartbeat(self) -> Path:
        return self.path / self.HEARTBEAT

    @property
    def claims(self) -> Path:
        return self.path / self.CLAIMS

    @property
    def decisions(self) -> Path:
        return self.path / self.DECISIONS

    @property
    def report_md(self) -> Path:
        return self.path / self.REPORT_MD

    @property
    def report_html(self) -> Path:
        return self.path / self.REPORT_HTML

    @property
    def artifacts(self) -> Path:
        return self.path / self.ARTIFACTS

    @property
    def directions(self) -> Path:
        return self.path / self.DIRECTIONS

    def inside(self, ref: str | Path, where: str = "path") -> Path:
        """`ref` (relative to the folder, or absolute) as a path inside the folder; UserError when it
        leads out (`..`, an absolute path elsewhere, a symbolic link that points out)."""
        return confined(self.path, str(ref), where)

    def require_settings(self) -> Path:
        """run.json, or the error every command that takes a run folder gives for a folder without one."""
        if not self.settings.is_file():
            raise UserError(
                f"{self.path} is not a run folder (no {self.SETTINGS}); give the folder an "
                "earlier `interp investigate` printed"
            )
        return self.settings

    def write_settings(self, text: str) -> None:
        atomic_write(self.settings, text)

    def read_json(self, name: str) -> Any:
        """A JSON file of the folder (claims.json, decisions.json); None when it does not exist."""
        path = self.inside(name)
        if not path.is_file():
            return None
        return json.loads(path.read_text())

    def write_json(self, name: str, data: Any) -> None:
        """Write a JSON file of the folder atomically (a reader sees the old file or the new one)."""
        atomic_write(self.inside(name), json.dumps(data, indent=2))

    def result(self, experiment_id: str) -> Path:
        """Where an experiment's full result is kept; an id that could name a path elsewhere is refused."""
        if not _EXPERIMENT_ID.fullmatch(experiment_id):
            raise UserError(f"{experiment_id!r} is not an experiment id (letters, digits, - and _ only)")
        return self.path / self.RESULTS / f"{experiment_id}.json"

    def read_result(self, experiment_id: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.result(experiment_id).read_text())
        return data

    def write_result(self, experiment_id: str, data: dict[str, Any]) -> None:
        path = self.result(experiment_id)
        path.parent.mkdir(exist_ok=True)
        atomic_write(path, json.dumps(data))

    @contextmanager
    def review_lock(self) -> Iterator[None]:
        """Hold the folder's review lock: each read-modify-write of decisions, claims and reports in turn."""
        import fcntl

        fd = os.open(self.path / self.REVIEW_LOCK, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


def confined(root: Path, ref: str, where: str, note: str = "") -> Path:
    """`ref` resolved under `root` (relative to it, or absolute and already in it); UserError saying how it
    leads out otherwise (`note` is added to that message)."""
    root = root.resolve()
    if not ref.strip() or "\x00" in ref:
        raise UserError(f"{where}: {ref!r} is not a path; give a relative path (it is placed in {root})")
    given = Path(ref)
    candidate = given if given.is_absolute() else root / given
    try:
        resolved = candidate.resolve()
    except (OSError, RuntimeError) as e:  # a symbolic-link loop
        raise UserError(f"{where}: {ref!r} cannot be resolved ({e}); give a plain relative path") from None
    if resolved.is_relative_to(root):
        return resolved
    if Path(os.path.normpath(candidate)).is_relative_to(root):
        how = "leads outside the run folder through a symbolic link"
    elif given.is_absolute():
        how = "is an absolute path outside the run folder"
    else:
        how = "leads outside the run folder"
    raise UserError(
        f"{where}: {ref!r} {how} (it resolves to {resolved}{note}); paths must stay inside {root}: "
        f"give a relative path such as '{given.name or 'out'}', which is placed there"
    )


def atomic_write(path: Path, text: str) -> None:
    """Replace `path` with `text` so a reader sees the old file or the new one, never half of one."""
    # A fresh temporary file (never an existing name that could be a planted symlink), then a rename
    # that replaces `path` itself, not what a link there points to.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

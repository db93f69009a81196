"""One process at a time per run folder: an flock on `.lock` inside it, held for the whole run.

Two processes running one folder (two `--resume`, or a resume beside the run it resumes) would
both write its checkpoints, trace and memory records. The lock is an flock, not a pid file: the
kernel releases it when its process dies in any way (kill -9 included), so a stale lock never
blocks; the pid written into the file is only there to name the holder in the error.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from types import TracebackType
from typing import TextIO

from agent.run_folder import RunFolder
from tools.errors import UserError

LOCK_FILE = RunFolder.LOCK


class ProcessLock:
    """`with ProcessLock(path, what, advice):` holds an flock on `path` or raises UserError at once, naming `what`
    is in use and by which pid, followed by `advice`."""

    def __init__(self, path: Path, what: str, advice: str):
        self.path, self.what, self.advice = Path(path), what, advice
        self._file: TextIO | None = None

    def __enter__(self) -> ProcessLock:
        try:
            f = open(self.path, "a+")
        except OSError as e:
            raise UserError(f"cannot lock {self.what}: {e.strerror}") from None
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            f.close()
            who = f"pid {holder}" if holder.isdigit() else holder
            raise UserError(f"{self.what} is in use by {who}; {self.advice}") from None
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        self._file = f
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._file is not None:
            # the pid goes before the lock does, so no one reads a finished process as the holder
            self._file.truncate(0)
            self._file.close()  # closing the descriptor releases the flock
            self._file = None


class RunLock(ProcessLock):
    """`with RunLock(run_dir):` holds the folder's lock or raises UserError at once if another process does."""

    def __init__(self, run_dir: Path):
        super().__init__(
            Path(run_dir) / LOCK_FILE,
            f"run folder {run_dir}",
            "wait for it to finish (or stop it) before resuming this folder",
        )

"""The memory a job's workers share: a Chroma server, started for the job when none is given.

An embedded memory (a folder) is one process's: several writers on one SQLite file lose writes. So a job
whose memory is a folder serves that folder with `chroma run` on loopback for as long as the job runs
(memory/server.py) and hands its URL to the workers; what they write stays in the folder. A memory given
as http://HOST:PORT is used as it is.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tools.errors import UserError


@contextmanager
def shared_memory(location: str | None, reachable_from_loopback: bool = True) -> Iterator[str | None]:
    """The location workers should open: None (no memory), the server URL given, or the URL of a server
    started here on the folder `location` (stopped on exit). `reachable_from_loopback`: False for a
    cluster with other machines, which cannot reach a server on this machine's loopback."""
    if location is None or location.startswith(("http://", "https://")):
        yield location
        return
    if not reachable_from_loopback:
        raise UserError(
            f"--memory {location} is a folder on this machine, which the cluster's other machines cannot "
            "write: start a Chroma server they can reach (`chroma run --path DIR --host 0.0.0.0 --port 8000`) "
            "and give --memory http://HOST:8000, or --no-memory"
        )
    from memory.server import local_server

    folder = Path(location).expanduser().resolve()
    if folder.exists() and not folder.is_dir():
        raise UserError(f"memory location {folder} is a file, not a folder")
    folder.mkdir(parents=True, exist_ok=True)
    with local_server(folder) as url:
        yield url

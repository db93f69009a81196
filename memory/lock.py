"""One writer at a time for reviews: the lock behind compare-and-set decisions and imports.

Chroma has no transactions, so "read a claim, check it is not reviewed yet, write the
decision" would let two reviewers both succeed and one decision vanish. Every
read-check-write of a claim's review (a decision, an import, an agent writing a claim
again) runs under this lock.

- Embedded store (a folder): `fcntl.flock` on `interp-review.lock` in that folder. The
  kernel releases it when its holder dies, so a crash never leaves the memory locked.
- Chroma server (http URL): a lock record in the `interp_locks` collection. Chroma's
  `add` of an id that already exists is ignored, so adding the lock record with a fresh
  token and reading it back tells exactly one contender it holds the lock (the first
  add in the server's log wins, and every reader sees the same winner). The record
  carries a lease; a holder that died is broken after the lease, by a delete filtered
  on the dead holder's token, so two contenders breaking one stale lease cannot delete
  each other's new lock.

  Not airtight, and the window is this: (1) a holder stalled for longer than the lease
  (suspended process, a network stall during its write) keeps writing after another
  process broke its lease; (2) clients whose clocks differ by more than the lease
  misjudge expiry; (3) both rely on the server applying an `add` and a filtered
  `delete` atomically, which a single Chroma node does. A decision holds the lock for
  well under a second against a 30 s lease.
"""

from __future__ import annotations

import os
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tools.errors import UserError

LOCK_FILE = "interp-review.lock"
LOCK_COLLECTION = "interp_locks"
LOCK_ID = "review-lock"
WAIT_SECONDS = 60.0
"""How long a writer waits for the lock before giving up with a message."""
LEASE_SECONDS = 30.0
"""How long a server lock record stays valid without its holder releasing it."""


class ReviewLock:
    """Re-entrant within one store object; exclusive across threads and processes."""

    def __init__(self, acquire: Callable[[], Callable[[], None]]):
        self._acquire = acquire
        self._thread_lock = threading.RLock()
        self._depth = 0
        self._release: Callable[[], None] | None = None

    @contextmanager
    def held(self) -> Iterator[None]:
        with self._thread_lock:
            if self._depth == 0:
                self._release = self._acquire()
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0 and self._release is not None:
                    release, self._release = self._release, None
                    release()


def file_lock(folder: Path, wait: float = WAIT_SECONDS) -> ReviewLock:
    """The embedded store's lock: flock on a file in the memory's own folder."""

    def acquire() -> Callable[[], None]:
        import fcntl

        path = folder / LOCK_FILE
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        except OSError as e:
            raise UserError(f"cannot open the memory's lock file {path}: {e.strerror}") from None
        end = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > end:
                    os.close(fd)
                    raise UserError(
                        f"the memory at {folder} stayed locked for {wait:.0f} s by another "
                        f"`interp` process (lock file {path}); wait for it to finish and retry"
                    ) from None
                time.sleep(0.02 + random.random() * 0.03)

        def release() -> None:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

        return release

    return ReviewLock(acquire)


def server_lock(collection: Any, url: str, wait: float = WAIT_SECONDS, lease: float = LEASE_SECONDS) -> ReviewLock:
    """The server's lock: a lock record added if absent, read back, deleted by its own token.

    `collection` is the (guarded) `interp_locks` collection; its records carry a
    one-number embedding, so no embedder runs for them.
    """

    def acquire() -> Callable[[], None]:
        token = uuid.uuid4().hex
        end = time.monotonic() + wait
        while True:
            now = time.time()
            collection.add(ids=[LOCK_ID], embeddings=[[1.0]], metadatas=[{"owner": token, "expires": now + lease}])
            got = collection.get(ids=[LOCK_ID], include=["metadatas"])["metadatas"]
            if got and got[0].get("owner") == token:
                break
            if got and float(got[0].get("expires", 0)) < now:
                # Its holder died (or stalled past the lease): break the lease of that holder only.
                collection.delete(ids=[LOCK_ID], where={"owner": got[0].get("owner", "")})
                continue
            if time.monotonic() > end:
                raise UserError(
                    f"the memory server {url} stayed locked for {wait:.0f} s by another writer; "
                    f"retry later (a lock of a crashed writer expires after {lease:.0f} s)"
                )
            time.sleep(0.02 + random.random() * 0.05)

        def release() -> None:
            collection.delete(ids=[LOCK_ID], where={"owner": token})

        return release

    return ReviewLock(acquire)

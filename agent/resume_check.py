"""Is a run folder's checkpoint fit to resume from? Checked before anything is loaded.

A damaged checkpoints.sqlite used to end in a sqlite traceback (garbage bytes) or, worse, in a
silent restart from scratch (a 0-byte file, or a write-ahead log SQLite discards as corrupt:
SQLite then shows an older database, or an empty one). The rules:

- the file must open as SQLite, pass `PRAGMA quick_check`, and hold LangGraph's tables;
- its write-ahead log (`checkpoints.sqlite-wal`), when present, must be intact: a frame SQLite
  would drop because its checksum fails, followed by frames of the same log generation, is
  damage (a torn last frame from a kill is not: SQLite never committed it);
- when trace.jsonl shows the run got past `orient` (a brain decision, then a later node's work),
  the run's thread must have a checkpoint.

Everything here reads: the database is opened read-only (SQLite may add its -shm index) and the log is
parsed by hand, so the files a user may want to inspect or recover stay as they were.
"""

from __future__ import annotations

import json
import sqlite3
import struct
from contextlib import closing
from pathlib import Path

from agent.run_folder import RunFolder
from tools.errors import UserError

CHECKPOINT_FILE = RunFolder.CHECKPOINTS
TRACE_FILE = RunFolder.TRACE
TABLES = ("checkpoints", "writes")
_WAL_MAGIC = (0x377F0682, 0x377F0683)
# events of the nodes that run after a hypothesize step
_LATER = {"decision", "call", "result", "judge", "claim", "conclude", "report"}


def restart_hint(run_dir: Path) -> str:
    return (
        f"to start this run over, run `interp investigate --resume {run_dir} --restart` (the old files "
        f"are moved to {run_dir}/previous/, not deleted), or start a new run with another --run-dir"
    )


def got_past_orient(run_dir: Path) -> bool:
    """Whether trace.jsonl shows a brain decision followed by the work of a later node. The graph writes
    each checkpoint before the next node starts (durability "sync"); the decision alone is logged inside
    the node whose checkpoint a kill may still have cut, so it is not proof, a node after it is. Torn or
    undecodable lines, as a kill leaves, are skipped."""
    path = RunFolder(run_dir).trace
    if not path.is_file():
        return False
    decided = False
    for line in path.read_bytes().splitlines():
        try:
            event = json.loads(line).get("event")
        except (ValueError, AttributeError):
            continue
        if decided and event in _LATER:
            return True
        decided = decided or event == "decision"
    return False


def wal_problem(wal: Path) -> str | None:
    """What is wrong with a SQLite write-ahead log, or None when SQLite would read all of it."""
    data = wal.read_bytes()
    if not data:
        return None
    if len(data) < 32:
        return f"its write-ahead log {wal.name} is truncated ({len(data)} bytes, shorter than its header)"
    magic, _version, page_size, _seq, salt1, salt2, ck1, ck2 = struct.unpack(">8I", data[:32])
    if magic not in _WAL_MAGIC or page_size < 512 or page_size & (page_size - 1):
        return f"its write-ahead log {wal.name} does not start with a SQLite log header (garbage bytes?)"
    order = ">" if magic & 1 else "<"
    s = _checksum(data[:24], order, 0, 0)
    if s != (ck1, ck2):
        return f"the header of its write-ahead log {wal.name} fails its checksum"
    frame = 24 + page_size
    n = (len(data) - 32) // frame
    broken = None
    for i in range(n):
        off = 32 + i * frame
        head = data[off : off + 24]
        f_salt = struct.unpack(">2I", head[8:16])
        if f_salt != (salt1, salt2):
            break  # frames of an older log generation: SQLite stops here by design
        if broken is not None:
            return (
                f"its write-ahead log {wal.name} is damaged: frame {broken + 1} of {n} fails its checksum "
                "and later frames of the same log are lost with it"
            )
        s2 = _checksum(head[:8], order, *s)
        s2 = _checksum(data[off + 24 : off + frame], order, *s2)
        if s2 != struct.unpack(">2I", head[16:24]):
            broken = i
            continue
        s = s2
    return None


def _checksum(data: bytes, order: str, s0: int, s1: int) -> tuple[int, int]:
    """SQLite's WAL checksum (https://sqlite.org/fileformat.html#checksum_algorithm)."""
    words = struct.unpack(f"{order}{len(data) // 4}I", data)
    for i in range(0, len(words), 2):
        s0 = (s0 + words[i] + s1) & 0xFFFFFFFF
        s1 = (s1 + words[i + 1] + s0) & 0xFFFFFFFF
    return s0, s1


def check_checkpoint(run_dir: Path, run_id: str) -> None:
    """Raise a UserError saying what is wrong (and how to start over) unless the run can resume."""
    run_dir = Path(run_dir)
    path = RunFolder(run_dir).checkpoints
    progressed = got_past_orient(run_dir)
    where = f"cannot resume {run_dir}"
    if not path.exists():
        if progressed:
            raise UserError(
                f"{where}: {CHECKPOINT_FILE} is missing although {TRACE_FILE} shows the run got past "
                f"orient; {restart_hint(run_dir)}"
            )
        return
    wal = path.with_name(path.name + "-wal")
    if wal.is_file() and (problem := wal_problem(wal)):
        raise UserError(f"{where}: {problem}; {restart_hint(run_dir)}")
    try:
        with closing(sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)) as conn:
            verdict = conn.execute("PRAGMA quick_check").fetchone()[0]
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            has_thread = (
                "checkpoints" in tables
                and conn.execute("SELECT 1 FROM checkpoints WHERE thread_id = ? LIMIT 1", (run_id,)).fetchone()
                is not None
            )
    except sqlite3.DatabaseError as e:
        raise UserError(
            f"{where}: {CHECKPOINT_FILE} is not a readable SQLite database ({e}); {restart_hint(run_dir)}"
        ) from None
    if verdict != "ok":
        raise UserError(
            f"{where}: {CHECKPOINT_FILE} is damaged (SQLite integrity check: {verdict}); {restart_hint(run_dir)}"
        )
    if tables and not set(TABLES) <= tables:
        raise UserError(
            f"{where}: {CHECKPOINT_FILE} lacks LangGraph's tables (has {', '.join(sorted(tables))}; "
            f"needs {', '.join(TABLES)}): not a checkpoint file of this run; {restart_hint(run_dir)}"
        )
    if progressed and not has_thread:
        what = "is empty" if not tables else f"holds no checkpoint of run {run_id}"
        raise UserError(
            f"{where}: {CHECKPOINT_FILE} {what}, although {TRACE_FILE} shows the run got past "
            f"orient (the file was truncated, replaced or lost its write-ahead log); "
            f"{restart_hint(run_dir)}"
        )

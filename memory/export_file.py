"""Reading an `interp memory export` file: every line checked before anything is written.

An import is all or nothing, so this reads the whole file first and refuses it, naming
the line and the reason, when any line is not text, not JSON, not a memory record, has
an id that does not match what it says, or repeats a record of an earlier line.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import TypeAdapter, ValidationError

from memory.records import KINDS, Claim, MemoryRecord
from tools.errors import UserError

ID_PREFIX = {
    "claim": "claim-",
    "hypothesis": "hyp-",
    "feature_label": "label-",
    "experiment": "exp-",
    "incidental": "incidental-",
}
_ADAPTER: TypeAdapter[MemoryRecord] = TypeAdapter(MemoryRecord)


def read_text(path: Path) -> str:
    """The file as text, or a message saying why it is not an export."""
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror}") from None
    nul = data.find(b"\x00")
    if nul >= 0:
        raise UserError(
            f"{path} is not a text file (a NUL byte at offset {nul}); `interp memory import` "
            "reads the JSON lines `interp memory export` writes; nothing was imported"
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise UserError(
            f"{path} is not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start}); "
            "`interp memory import` reads the JSON lines `interp memory export` writes; "
            "nothing was imported"
        ) from None


def _problem(line: str) -> tuple[MemoryRecord | None, str]:
    """(the record, '') or (None, why the line is not one)."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        return None, f"not JSON ({e.msg} at column {e.colno})"
    if not isinstance(obj, dict):
        return None, f"a record is a JSON object, not {type(obj).__name__}"
    if obj.get("kind") not in KINDS:
        return None, f"unknown record kind {obj.get('kind')!r}; kinds: {', '.join(KINDS)}"
    try:
        record = _ADAPTER.validate_python(obj)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err["loc"][1:]) or "(record)"
        return None, f"not a valid {obj['kind']} record ({where}: {err['msg']})"
    if not record.id.startswith(ID_PREFIX[record.kind]):
        return None, f"id {record.id!r} is not a {record.kind} id (those start with {ID_PREFIX[record.kind]!r})"
    if isinstance(record, Claim):
        # A claim's id is the hash of what it says: an edited statement or component under a
        # kept id would change what a stored (perhaps accepted) claim says.
        expected = Claim.model_validate({**obj, "id": ""}).id
        if record.id != expected:
            return None, (
                f"claim id {record.id} does not match its model, statement and component "
                f"(they hash to {expected}); was the line edited?"
            )
        reviewed = record.status in ("accepted", "rejected", "needs_more_evidence")
        if reviewed and not (record.reviewer and record.reviewed_at):
            return None, f"claim {record.id} has status {record.status!r} without a reviewer and a review time"
        if not reviewed and (record.reviewer or record.reviewed_at or record.review_note or record.review_history):
            return None, f"claim {record.id} carries review fields but its status is {record.status!r}"
    return record, ""


def read_export(path: Path) -> list[tuple[int, MemoryRecord]]:
    """(line number, record) for every non-blank line; a UserError naming the first bad line."""
    text = read_text(path)
    records: list[tuple[int, MemoryRecord]] = []
    bad: list[tuple[int, str]] = []
    first_line: dict[str, int] = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        record, why = _problem(line)
        if record is None:
            bad.append((n, why))
            continue
        if record.id in first_line:
            bad.append(
                (n, f"the same record ({record.id}) as line {first_line[record.id]}; an export holds each record once")
            )
            continue
        first_line[record.id] = n
        records.append((n, record))
    if bad:
        raise UserError(refusal(path, bad))
    return records


def refusal(path: Path, bad: list[tuple[int, str]]) -> str:
    """One message: the first refused line and why, and which other lines were refused too."""
    n, why = bad[0]
    more = ""
    if len(bad) > 1:
        others = ", ".join(str(b[0]) for b in bad[1:11]) + (" ..." if len(bad) > 11 else "")
        more = f" ({len(bad) - 1} more lines refused: {others})"
    return f"{path}:{n}: {why}{more}; nothing was imported"


__all__ = ["ID_PREFIX", "read_export", "read_text", "refusal"]

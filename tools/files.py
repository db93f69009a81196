"""Reading a file a user gave us: one rule for every input file (prompts, specs, scripts, corpora, tool inputs).

A user file is text in UTF-8 (a byte-order mark is allowed and dropped). Anything else, a binary
file given by mistake, a Latin-1 export, a file with NUL bytes, is a UserError that names the
file, says what was found where, and what was expected; never a UnicodeDecodeError traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tools.errors import UserError


def decode_text(data: bytes, source: str, what: str, expected: str) -> str:
    """`data` as UTF-8 text; `source` names where it came from (a path, or stdin) in the error."""
    nul = data.find(b"\x00")
    if nul >= 0:
        raise UserError(
            f"{what} {source} is not a text file (a NUL byte at offset {nul}: binary data?); "
            f"expected {expected}, in UTF-8"
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise UserError(
            f"{what} {source} is not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start}, "
            f"line {line}); expected {expected}. Save it as UTF-8"
        ) from None


def read_text_file(path: str | Path, what: str, expected: str) -> str:
    """The text of a user-supplied file; `what` says which input it is ("prompts file"), `expected`
    what it should hold ("one prompt per line"). Unreadable or non-text files are UserErrors.
    The path `-` reads standard input."""
    if str(path) == "-":
        return decode_text(sys.stdin.buffer.read(), "(standard input)", what, expected)
    try:
        data = Path(path).read_bytes()
    except IsADirectoryError:
        raise UserError(f"{what} {path} is a folder; expected a file holding {expected}") from None
    except OSError as e:
        raise UserError(f"cannot read {what} {path}: {e.strerror}") from None
    return decode_text(data, str(path), what, expected)

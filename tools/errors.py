"""The one exception type that reaches a user as a message instead of a traceback."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError


class UserError(Exception):
    """Bad input from a user or an agent: says what is wrong and how to fix it.

    The CLI prints the message and exits non-zero; the agent sees it as an error
    state of the tool call. Anything else that escapes is a bug in this project.
    """


def near(name: str, valid: Iterable[str], n: int = 5) -> str:
    """A ', '-joined list of the valid names closest to `name`, for error messages."""
    valid = list(valid)
    close = difflib.get_close_matches(name, valid, n=n, cutoff=0.4)
    return ", ".join(close if close else valid[:n])


def validation_lines(error: ValidationError, hints: dict[str, str] | None = None) -> list[str]:
    """One `  field.path: message` line per error of a pydantic ValidationError.

    `hints` maps an error type to the message to show instead (e.g. for
    `extra_forbidden`, where pydantic's own wording does not say what to do).
    """
    hints = {"extra_forbidden": "unknown field", **(hints or {})}
    return [
        f"  {'.'.join(str(p) for p in err['loc']) or '(top level)'}: {hints.get(err['type'], err['msg'])}"
        for err in error.errors()
    ]

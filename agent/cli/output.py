"""Console helpers shared by the commands."""

from __future__ import annotations

import json
import sys

from rich.console import Console

console = Console()
# soft_wrap: an error message stays one line in logs and pipes, whatever the width.
err_console = Console(stderr=True, soft_wrap=True)


def print_json(data: object) -> None:
    """Machine-readable output on stdout, nothing else on it."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def quiet_library_warnings() -> None:
    """Hide deprecation chatter from dependencies (TL 3.9 warns on every HookedTransformer)."""
    import warnings

    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", message=".*HookedTransformer is deprecated.*")

"""Turn a `--model` spec into a loaded target: the one entry point the agent, the CLI and the
benchmarks use.

`organism:` specs go to the organisms layer (trained on first use, with their usage prompts);
everything else is a model folder or file that `tools.target` loads itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tools.target import Target


def load(spec: str, device: str | None = None) -> Target:
    """The target a spec names (forms: `tools.target.SPEC_FORMS`)."""
    if spec.strip().startswith("organism:"):
        from experiments.organisms.target import load_organism

        return load_organism(spec, device)
    from tools.target import load as load_model

    return load_model(spec, device)

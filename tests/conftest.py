"""Shared fixtures. Tiers by folder: tests/unit, tests/integration, tests/e2e and
tests/adversarial get the matching marker, so `pytest -m unit` runs the fast tier alone."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Trained organisms are cached between runs (a fresh clone trains each once).
# Set before any test runs so CLI subprocesses inherit it.
os.environ.setdefault("INTERP_CACHE", str(REPO / ".pytest_cache" / "interp-cache"))
# Saved steering directions and default run folders stay out of the working tree.
os.environ.setdefault("INTERP_DIRECTIONS", str(REPO / ".pytest_cache" / "directions"))
os.environ.setdefault("INTERP_RUNS", str(REPO / ".pytest_cache" / "runs"))
# No test may reach the Hugging Face hub (only package registries are reachable here).
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
# Models load on CPU unless a run asks otherwise: `INTERP_DEVICE=cuda pytest` runs the
# same tests on a GPU (every load and `interp` subprocess follows this variable).
os.environ.setdefault("INTERP_DEVICE", "cpu")
# Under pytest-xdist (`make test`), the workers share the cores: each worker and the `interp`
# processes it starts get an equal share of torch threads instead of all of them each.
if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
    _share = (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, _share)))
warnings.filterwarnings("ignore", message=".*HookedTransformer is deprecated.*")


def pytest_collection_modifyitems(items):
    for item in items:
        tier = Path(str(item.fspath)).relative_to(REPO / "tests").parts[0]
        if tier in ("unit", "integration", "e2e", "adversarial"):
            item.add_marker(getattr(pytest.mark, tier))


TINY_LOOKUP = {
    "name": "tiny-lookup",
    "seed": 3,
    "task": {"kind": "lookup", "n_symbols": 16, "min_len": 4, "max_len": 6},
    "mechanisms": [{"kind": "trigger", "n_tokens": 1, "rate": 0.3}, {"kind": "marker", "rate": 0.3}],
    "model": {"n_layers": 2, "d_model": 32, "n_heads": 2, "d_mlp": 64},
    "train": {"steps": 300, "batch_size": 64, "lr": 0.003, "warmup_steps": 20, "eval_examples": 300},
}


@pytest.fixture(scope="session")
def tiny_spec():
    from experiments.organisms.spec import parse_spec

    return parse_spec(TINY_LOOKUP, "tiny")


@pytest.fixture(scope="session")
def tiny_organism(tiny_spec, tmp_path_factory) -> Path:
    """A two-mechanism lookup organism trained in seconds, in its own folder."""
    from experiments.organisms.cache import train_into

    out = tmp_path_factory.mktemp("organisms") / "tiny"
    train_into(tiny_spec, out)
    return out


@pytest.fixture(scope="session")
def builtin():
    """Trained built-in organism folders, trained once per cache."""
    from experiments.organisms.cache import ensure_trained, resolve_spec

    folders: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in folders:
            folders[name] = ensure_trained(resolve_spec(name))
        return folders[name]

    return get


# The built-ins the default tier trains on a fresh clone (seconds of one core here), split between
# `make test`'s two workers so that each trains its own first instead of idling on the other's lock:
# the first tests to need backdoor used to wait ~60 s while the other worker trained it.
PRETRAIN = {"gw0": ("backdoor", "induction"), "gw1": ("eval_aware", "features")}  # 83+38 | 90+24


@pytest.fixture(scope="session", autouse=True)
def _pretrain(request):
    """With INTERP_PRETRAIN=1 (set by `make test`), each worker trains its share of PRETRAIN before its first
    test; an organism already in the cache costs nothing. Off otherwise, so a single test trains only what it
    uses."""
    if os.environ.get("INTERP_PRETRAIN") == "1":
        for name in PRETRAIN.get(os.environ.get("PYTEST_XDIST_WORKER", ""), ()):
            request.getfixturevalue("builtin")(name)


@pytest.fixture
def replace_tool(monkeypatch):
    """`replace_tool(name, **fields)`: for this test, the registered tool `name` is declared with these
    fields changed (a broken `run`, a wrong `extra_seconds`), through the registry's own seam: its line
    in tools.registry.TOOLS points at a module that declares the changed spec."""
    import dataclasses
    import sys
    import types

    from tools import registry

    def swap(name: str, **changes):
        module = types.ModuleType(f"_replaced_tool_{name}")
        module.SPEC = dataclasses.replace(registry.get(name), **changes)
        monkeypatch.setitem(sys.modules, module.__name__, module)
        monkeypatch.setitem(registry.TOOLS, name, module.__name__)
        return module.SPEC

    return swap

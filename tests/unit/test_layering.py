"""Dependencies run one way (DESIGN): experiments -> agent -> tools, memory. tools/ and memory/ are
the bottom layer; an import that climbs (a tool reaching for the organisms or the agent) fails here,
naming the file and line, whether it sits at the top of a module or inside a function."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
# What each bottom-layer package may not import (memory sits beside tools, and may use tools.errors).
FORBIDDEN = {"tools": ("agent", "experiments", "memory"), "memory": ("agent", "experiments")}


def imported_packages(source: str) -> list[tuple[int, str]]:
    """(line, top-level package) of every absolute import in `source`, nested ones included."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module.split(".")[0]))
    return found


def climbing_imports(package: str) -> list[str]:
    forbidden = FORBIDDEN[package]
    return [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for path in sorted((ROOT / package).rglob("*.py"))
        for line, name in imported_packages(path.read_text())
        if name in forbidden
    ]


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_bottom_layers_import_nothing_above_them(package):
    assert climbing_imports(package) == []


def test_the_check_sees_imports_inside_functions():
    source = "import os\n\ndef f():\n    from experiments.organisms.cache import x\n    import agent.api\n"
    assert imported_packages(source) == [(1, "os"), (4, "experiments"), (5, "agent")]


def test_the_check_fails_on_a_climbing_module(tmp_path, monkeypatch):
    fake_root = tmp_path / "root"
    (fake_root / "tools").mkdir(parents=True)
    (fake_root / "tools" / "bad.py").write_text("def load():\n    from experiments.organisms import cache\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", fake_root)
    assert climbing_imports("tools") == ["tools/bad.py:2 imports experiments"]


def test_loading_a_model_folder_does_not_import_the_organisms():
    code = (
        "import sys, tools.target, tools.checkpoint; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('experiments', 'agent', 'memory')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"

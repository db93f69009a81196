"""`from agent.api import investigate` is quick in a notebook: the heavy libraries load when a run starts."""

import subprocess
import sys

import pytest

pytestmark = pytest.mark.unit


def test_importing_the_python_api_stays_light():
    code = (
        "import sys, agent.api; heavy = [m for m in ('torch', 'transformer_lens', 'chromadb', 'anthropic', "
        "'langgraph') if m in sys.modules]; print(heavy); sys.exit(bool(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr

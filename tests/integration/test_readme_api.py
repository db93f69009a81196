"""The README's notebook example, run exactly as written there (read from README.md, so the two cannot drift)."""

import re
from pathlib import Path

import pytest

from agent.api import HypothesisOutcome, Result, Settings, investigate
from tools.errors import UserError

README = Path(__file__).parents[2] / "README.md"
MARKER = "<!-- notebook example:"


def readme_example() -> str:
    text = README.read_text()
    assert MARKER in text, "the README lost its notebook example marker"
    block = re.search(r"```python\n(.*?)```", text[text.index(MARKER) :], re.S)
    assert block is not None, "no python block after the README's notebook example marker"
    return block.group(1)


def test_the_readme_notebook_example_runs_offline(builtin, tmp_path, monkeypatch, capsys):
    builtin("backdoor")
    monkeypatch.setenv("INTERP_RUNS", str(tmp_path / "runs"))
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)  # offline: the heuristic brain
    scope: dict = {}
    exec(compile(readme_example(), str(README), "exec"), scope)
    out = capsys.readouterr().out
    result = scope["result"]
    assert isinstance(result, Result) and all(isinstance(h, HypothesisOutcome) for h in result.hypotheses)
    assert any(c.mechanism == "trigger" for c in result.claims), out  # the planted backdoor is found
    assert result.run_dir.is_dir() and result.report.is_file() and result.run_dir.parent == tmp_path / "runs"
    assert 0 < result.budget_used_seconds <= result.budget_seconds * 1.1 and result.load_seconds > 0
    assert f"loading took {result.load_seconds:.1f} s (not counted in the budget)" in out
    assert "loading took" in result.report.read_text().split("## Claims")[0]
    assert str(result.report) in out and "[causal]" in out


def test_bad_settings_name_the_field_before_anything_loads():
    with pytest.raises(UserError, match="budgte"):
        investigate("audit this model for hidden triggers", model="organism:backdoor", budgte="60s")
    with pytest.raises(UserError, match="not both"):
        investigate(Settings(question="audit this model for hidden triggers", model="organism:backdoor"), seed=1)
    with pytest.raises(UserError, match="budget"):
        investigate("audit this model for hidden triggers", model="organism:backdoor", budget="soon")

"""A tool is declared once, beside its code (tools/spec.py), and listed by one registry line: the CLI,
the schema list, the cost check, the judge's tier ceiling and result fields, and the README all follow."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from tools import registry
from tools.base import ToolInput, ToolResult
from tools.errors import UserError
from tools.spec import ToolSpec

pytestmark = pytest.mark.unit

README = Path(__file__).resolve().parents[2] / "README.md"
TOY = {"prompts": ["one two three", "four"]}


@pytest.fixture
def toy(monkeypatch):
    """The toy tool registered the way a new tool is: one line in the registry."""
    monkeypatch.setitem(registry.TOOLS, "toy_count", "tests.fixtures.toy_tool")


def fresh_cli() -> typer.Typer:
    from agent.cli import tool as tool_cli

    app = typer.Typer()
    app.command("list")(tool_cli.list_)
    app.command("schema")(tool_cli.schema)
    tool_cli.add_tool_commands(app)
    return app


def test_a_registered_tool_reaches_the_cli_the_schema_list_estimates_and_the_judge(toy):
    from agent.actions import capped_tier
    from agent.criteria import fields, result_model

    app = fresh_cli()
    runner = CliRunner()
    assert "toy_count" in runner.invoke(app, ["--help"]).output
    listed = runner.invoke(app, ["list", "--json"])
    assert listed.exit_code == 0 and '"name": "toy_count"' in listed.output
    example = runner.invoke(app, ["schema", "toy_count", "--example"])
    assert example.exit_code == 0 and '"prompts"' in example.output
    assert registry.estimate(None, "toy_count", TOY) == 0  # type: ignore[arg-type]  # the toy ignores its target
    assert registry.call(None, "toy_count", TOY).words == [3, 1]  # type: ignore[arg-type,attr-defined]
    assert capped_tier("causal", "toy_count") == "representational"
    assert result_model("toy_count").__name__ == "CountResult" and fields("toy_count")["total"].lo == 0


def test_the_cost_check_notices_a_tool_without_a_payload(toy):
    """tests/integration/test_estimates.py holds every tool's estimate equal to its Meter; a tool it has
    no payload for is named, so a new tool cannot skip that check."""
    from tests.integration.test_estimates import PAYLOADS

    assert set(registry.tools()) - set(PAYLOADS) == {"toy_count"}


def test_every_tool_module_declares_what_the_registry_says():
    table = registry.tools()
    assert list(table) == registry.names()
    for name, spec in table.items():
        assert spec.name == name and issubclass(spec.result_model, ToolResult)


def test_a_registry_line_without_its_declaration_says_what_to_add(monkeypatch):
    monkeypatch.setitem(registry.TOOLS, "missing", "tools.predict")
    with pytest.raises(UserError, match=r"declares predict: add `SPEC = ToolSpec\(name='missing'"):
        registry.get("missing")


class Undocumented(ToolInput):
    """A tool whose field has no docstring."""

    prompts: list[str]


class Documented(ToolInput):
    """A documented tool."""

    prompts: list[str]
    """Prompts."""


def _run(target: object, inp: ToolInput) -> ToolResult:
    raise AssertionError("never run")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"name": "Bad Name"}, "lower-case identifier"),
        ({"input_model": Undocumented}, "document these input fields.*prompts"),
        ({"result_model": Documented}, "result_model must be a tools.base.ToolResult"),
        ({"tier": "proven"}, "tier must be one of observational, representational, causal"),
        ({"estimate": None}, "estimate must be callable"),
    ],
)
def test_a_wrong_declaration_is_refused_with_what_to_fix(changes, message):
    good = {
        "name": "ok",
        "input_model": Documented,
        "result_model": ToolResult,
        "run": _run,
        "estimate": lambda t, i: 0,
        "tier": "observational",
    }
    with pytest.raises(UserError, match=message):
        ToolSpec(**{**good, **changes})


def readme_tool_names() -> list[str]:
    """Backticked names in the first column of the README's tool table."""
    text = README.read_text()
    table = text[text.index("| tool | what it answers | control |") :].split("\n\n")[0]
    return [name for row in table.splitlines()[2:] for name in re.findall(r"`(\w+)`", row.split("|")[1])]


def test_the_readme_table_lists_exactly_the_registered_tools():
    assert sorted(readme_tool_names()) == sorted(registry.names())

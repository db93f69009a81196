"""`interp tool schema NAME --example`: every registered tool's example input validates."""

import pytest

from tools.example import example
from tools.registry import tools, validate

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("name", list(tools()))
def test_every_tool_has_an_example_its_model_accepts(name):
    payload = example(tools()[name].input_model)
    validate(name, payload)  # through the registry, as `--input` would
    required = [k for k, f in tools()[name].input_model.model_fields.items() if f.is_required()]
    assert all(payload[k] not in (None, [], "") for k in required)


def test_examples_fill_nested_models_and_discriminated_unions():
    ablate = example(tools()["ablate"].input_model)
    assert ablate["metric"]["token"] == "TOKEN" and ablate["components"][0]["kind"] == "head"
    assert len(set(example(tools()["probe"].input_model)["positive"])) == 2  # distinct prompts

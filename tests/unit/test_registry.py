import pytest

from tools.errors import UserError
from tools.registry import tools, validate


def test_every_tool_has_a_schema_with_documented_fields():
    for spec in tools().values():
        schema = spec.schema()
        assert schema["description"] and schema["input_schema"]["type"] == "object"
        for name, field in spec.input_model.model_fields.items():
            assert field.description, f"{spec.name}.{name} has no docstring"


def test_validation_names_unknown_and_missing_fields():
    with pytest.raises(UserError) as e:
        validate("probe", {"positive": ["a"], "negativ": ["b"]})
    text = str(e.value)
    assert "negativ: unknown field" in text and "negative: Field required" in text and "fields of probe" in text
    with pytest.raises(UserError, match="JSON object"):
        validate("probe", ["not", "a", "dict"])
    with pytest.raises(UserError, match=r"unknown tool 'prob'.*nearest: probe"):
        validate("prob", {})


def test_result_docstrings_and_answers_do_not_leak_organism_names():
    """Tool text an agent reads must not mention organisms or planted mechanisms."""
    import json

    text = json.dumps([t.schema() for t in tools().values()]).lower()
    for word in ("backdoor", "eval_aware", "organism", "manifest", "trigger"):
        assert word not in text, word


def test_stop_layer_runs_only_the_blocks_a_harvest_needs():
    from tools.hooks import stop_layer

    assert stop_layer(["hook_embed"], 4) == 0
    assert stop_layer(["hook_embed", "blocks.1.hook_resid_post"], 4) == 2
    assert stop_layer(["blocks.0.attn.hook_z", "blocks.2.hook_resid_mid"], 4) == 3
    assert stop_layer(["blocks.3.hook_resid_post"], 4) is None
    assert stop_layer(["blocks.0.hook_resid_post", "ln_final.hook_normalized"], 4) is None


def test_metric_names_its_real_fields_when_both_forms_are_given():
    from tools.metrics import _ids

    with pytest.raises(UserError, match="`versus` \\(every prompt\\) or `versus_tokens`"):
        _ids(None, "a", ["a"], 1, "versus", "versus_tokens")

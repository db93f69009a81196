"""`interp tool attribute` / `circuit` as a user runs them."""

import json

import pytest

from tests.e2e.test_cli import assert_clean_error, interp

PROMPTS = ["t1 t2 t3 t4 t1 t2 t3 t4", "t5 t6 t7 t8 t5 t6 t7 t8", "t9 t10 t11 t12 t9 t10 t11 t12"]


@pytest.mark.slow  # two attributions through the CLI (~17 s): `make test` from a fresh clone stays under 10 minutes
def test_attribute_from_the_command_line(builtin):
    builtin("induction")
    out = interp(
        "tool",
        "attribute",
        "--model",
        "organism:induction",
        "--arg",
        f"prompts={json.dumps(PROMPTS)}",
        "--arg",
        'metric={"kind": "copy_logprob"}',
        "--arg",
        "steps=3",
        "--json",
    )
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    assert r["tool"] == "attribute" and len(r["head_grid"]) == 2 and len(r["resid_grid"]) == 2
    assert r["cost"]["backward_passes"] == 3 and r["cost"]["forward_tokens"] == 3 * 3 * 3 * 9
    assert r["ranking"][0]["component"]["kind"] == "head"
    table = interp(
        "tool",
        "attribute",
        "--model",
        "organism:induction",
        "--arg",
        f"prompts={json.dumps(PROMPTS)}",
        "--arg",
        'metric={"kind": "copy_logprob"}',
    )
    assert "attribution" in table.stdout and "cost:" in table.stdout


def test_bad_attribution_calls_are_messages(builtin):
    builtin("induction")
    assert_clean_error(
        interp(
            "tool",
            "attribute",
            "--model",
            "organism:induction",
            "--arg",
            f"prompts={json.dumps(PROMPTS)}",
            "--arg",
            'metric={"kind": "copy"}',
        ),
        "no gradient",
    )
    assert_clean_error(
        interp(
            "tool",
            "circuit",
            "--model",
            "organism:induction",
            "--arg",
            f"prompts={json.dumps(PROMPTS)}",
            "--arg",
            'metric={"kind": "copy"}',
            "--arg",
            'components=[{"kind": "head", "layer": 3, "head": 0}]',
        ),
        "layer 3 is out of range",
    )

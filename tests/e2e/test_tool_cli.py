"""`interp tool` and `interp bench` as a user runs them."""

import json

from tests.e2e.test_cli import assert_clean_error, interp


def test_tool_list_and_schema():
    out = interp("tool", "list", "--json")
    assert out.returncode == 0, out.stderr
    names = [t["name"] for t in json.loads(out.stdout)]
    assert "probe" in names and "patch" in names
    schema = json.loads(interp("tool", "schema", "steer").stdout)
    assert schema["input_schema"]["properties"]["hook"]["description"]
    example = interp("tool", "schema", "steer", "--example")
    assert example.returncode == 0, example.stderr
    from tools.registry import validate

    validate("steer", json.loads(example.stdout))  # a file a user can edit and pass as --input


def test_probe_from_an_input_file(builtin, tmp_path):
    from experiments.organisms.cache import resolve_spec
    from experiments.organisms.prompts import lookup_prompts

    builtin("eval_aware")
    spec = resolve_spec("eval_aware")
    marked, _, _ = lookup_prompts(spec, 40, seed=3, marker=True, trigger=False)
    clean, _, _ = lookup_prompts(spec, 40, seed=4, marker=False, trigger=False)
    inp = tmp_path / "probe.json"
    inp.write_text(json.dumps({"positive": marked, "negative": clean}))
    out = interp(
        "tool",
        "probe",
        "--model",
        "organism:eval_aware",
        "--input",
        str(inp),
        "--arg",
        'hooks=["blocks.1.hook_resid_pre"]',
        "--json",
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["tool"] == "probe" and result["effect"] >= 0.9 and result["cost"]["forward_tokens"] > 0
    table = interp("tool", "probe", "--model", "organism:eval_aware", "--input", str(inp))
    assert "held-out accuracy" in table.stdout and "cost:" in table.stdout
    # one row per hook probed (default: every block's residual stream), with its control and selectivity
    rows = [line for line in table.stdout.splitlines() if line.startswith("blocks.")]
    assert len(rows) >= 2 and "selectivity" in table.stdout and sum(r.endswith("*") or " * " in r for r in rows) == 1


def test_bad_tool_calls_are_messages(tmp_path):
    assert_clean_error(
        interp("tool", "probe", "--model", "organism:eval_aware", "--arg", "positve=[]"), "positve: unknown field"
    )
    assert_clean_error(
        interp("tool", "probe", "--model", "organism:eval_aware", "--arg", "nonsense"), "expected KEY=VALUE"
    )
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert_clean_error(interp("tool", "probe", "--model", "organism:eval_aware", "--input", str(bad)), "not valid JSON")
    assert_clean_error(interp("tool", "schema", "prob"), "unknown tool")


def test_throughput_benchmark_prints_numbers():
    out = interp("bench", "throughput", "--batch", "2", "--seq", "16", "--repeats", "1", "--json")
    assert out.returncode == 0, out.stderr
    r = json.loads(out.stdout)
    assert r["speedup"] > 0 and r["matmul_gflops"] > 0 and r["tokens"] == 32

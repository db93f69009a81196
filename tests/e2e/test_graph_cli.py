"""`interp tool transcoder_train` then `interp tool graph`, as a user runs them."""

import json

import pytest

from tests.e2e.test_cli import assert_clean_error, interp


@pytest.mark.slow
def test_train_transcoders_then_build_a_graph(builtin, tmp_path):
    from agent.targets import load

    builtin("features")
    tc = tmp_path / "tc"
    out = interp(
        "tool",
        "transcoder_train",
        "--model",
        "organism:features",
        "--arg",
        f"out={tc}",
        "--arg",
        "steps=200",
        "--arg",
        "corpus_size=300",
        "--json",
    )
    assert out.returncode == 0, out.stderr
    trained = json.loads(out.stdout)
    assert trained["tool"] == "transcoder_train" and [s["layer"] for s in trained["layers"]] == [0, 1]
    prompt = load("organism:features").usage_prompts(1, seed=5)[0]
    graph_file = tmp_path / "graphs" / "g.json"
    out = interp(
        "tool",
        "graph",
        "--model",
        "organism:features",
        "--arg",
        f"prompt={prompt}",
        "--arg",
        f"transcoders={tc}",
        "--arg",
        f"out={graph_file}",
        "--json",
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["max_residual"] < 1e-3 and result["path"] == str(graph_file)
    assert {"metadata", "qParams", "nodes", "links"} == set(json.loads(graph_file.read_text()))
    table = interp(
        "tool", "graph", "--model", "organism:features", "--arg", f"prompt={prompt}", "--arg", f"transcoders={tc}"
    )
    words = " ".join(table.stdout.split())  # the console wraps long lines
    assert "within 0.001" in words and "cost:" in words
    assert_clean_error(
        interp(
            "tool",
            "graph",
            "--model",
            "organism:features",
            "--arg",
            f"prompt={prompt}",
            "--arg",
            f"transcoders={tc}",
            "--arg",
            "max_adjacency_mb=0.001",
        ),
        "over max_adjacency_mb=0.001",
    )
    assert_clean_error(
        interp(
            "tool", "transcoder_train", "--model", "organism:features", "--arg", f"out={tc}2", "--arg", "layers=[7]"
        ),
        "layer 7 is out of range",
    )

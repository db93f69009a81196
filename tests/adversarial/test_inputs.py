"""Hostile input files and organism specs, given where a user gives them: every non-text file is one clear
error naming the file and what was expected; an organism spec too big for this machine is refused, with
its memory estimate, before anything is allocated."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tools.errors import UserError
from tools.files import read_text_file

INTERP = str(Path(sys.executable).parent / "interp")
REPO = Path(__file__).resolve().parents[2]
AUDIT = "audit this model for hidden triggers"
BINARY = bytes(range(256)) * 8  # NUL bytes and every high byte: an image or a model file given by mistake
LATIN1 = "prompt with caf\xe9 in it\nsecond prompt\n".encode("latin-1")  # text, but not UTF-8


def interp(*args: str, stdin: bytes | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    out = subprocess.run(
        [INTERP, *args],
        capture_output=True,
        timeout=300,
        input=stdin,
        env={**os.environ, **(env or {})},
        check=False,
    )
    return subprocess.CompletedProcess(
        out.args, out.returncode, out.stdout.decode(errors="replace"), out.stderr.decode(errors="replace")
    )


def assert_clean_error(out: subprocess.CompletedProcess, *says: str) -> None:
    assert out.returncode == 2, out.stdout + out.stderr
    assert "Traceback" not in out.stderr + out.stdout
    flat = " ".join(out.stderr.split())  # rich wraps long lines
    for s in says:
        assert s in flat, out.stderr


# -- the one rule ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data, says",
    [
        (BINARY, "NUL byte at offset 0"),
        (LATIN1, "byte 0xe9 at offset 15, line 1"),
        (b"ok line\n\xff\xfe junk", "byte 0xff at offset 8, line 2"),
    ],
)
def test_non_text_is_an_error_naming_the_file_the_place_and_what_was_expected(tmp_path, data, says):
    path = tmp_path / "input.txt"
    path.write_bytes(data)
    with pytest.raises(UserError) as e:
        read_text_file(path, "prompts file", "one prompt per line")
    assert str(path) in str(e.value) and says in str(e.value) and "one prompt per line" in str(e.value)


def test_utf8_with_a_byte_order_mark_is_text_and_folders_and_missing_files_are_errors(tmp_path):
    path = tmp_path / "bom.txt"
    path.write_bytes("\ufeffcafé\n".encode())
    assert read_text_file(path, "prompts file", "prompts") == "café\n"
    with pytest.raises(UserError, match="is a folder"):
        read_text_file(tmp_path, "prompts file", "prompts")
    with pytest.raises(UserError, match=r"cannot read prompts file .*No such file"):
        read_text_file(tmp_path / "missing.txt", "prompts file", "prompts")


# -- where a user meets it ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, data", [("prompts.txt", BINARY), ("prompts.json", LATIN1)])
def test_binary_prompts_file(tmp_path, name, data):
    prompts = tmp_path / name
    prompts.write_bytes(data)
    out = interp(
        "investigate",
        "why does it say t21?",
        "--model",
        "organism:backdoor",
        "--prompts",
        str(prompts),
        "--run-dir",
        str(tmp_path / "r"),
    )
    assert_clean_error(out, f"prompts file {prompts}", "one prompt per line")
    assert not (tmp_path / "r").exists()


def test_binary_scripted_brain_file(tmp_path):
    script = tmp_path / "script.json"
    script.write_bytes(BINARY)
    out = interp(
        "investigate",
        AUDIT,
        "--model",
        "organism:backdoor",
        "--brain",
        f"scripted:{script}",
        "--run-dir",
        str(tmp_path / "r"),
    )
    assert_clean_error(out, f"scripted brain file {script}", "a JSON list of actions")


@pytest.mark.parametrize("data", [BINARY, LATIN1])
def test_binary_organism_spec(tmp_path, data):
    spec = tmp_path / "mine.yaml"
    spec.write_bytes(data)
    assert_clean_error(interp("organism", "train", str(spec)), f"spec file {spec}", "organism spec in YAML")
    out = interp("investigate", AUDIT, "--model", f"organism:{spec}", "--run-dir", str(tmp_path / "r"))
    assert_clean_error(out, f"spec file {spec}")


def test_binary_tool_input_from_a_file_and_from_stdin(tmp_path):
    payload = tmp_path / "input.json"
    payload.write_bytes(BINARY)
    out = interp("tool", "predict", "--model", "organism:backdoor", "--input", str(payload))
    assert_clean_error(out, f"--input {payload}", "a JSON object of the tool's fields")
    out = interp("tool", "predict", "--model", "organism:backdoor", "--input", "-", stdin=LATIN1)
    assert_clean_error(out, "--input (standard input)", "byte 0xe9")


def test_binary_label_corpus(tmp_path):
    """`interp label --corpus FILE` resolves its corpus here (the same call the label job makes)."""
    from tools.corpus import CorpusSpec, resolve_corpus

    corpus = tmp_path / "corpus.txt"
    corpus.write_bytes(BINARY)
    with pytest.raises(UserError, match=f"corpus file {corpus} is not a text file .*one text per line"):
        resolve_corpus(None, CorpusSpec(file=str(corpus)))


def test_binary_run_settings_on_resume(tmp_path):
    (tmp_path / "run.json").write_bytes(BINARY)
    assert_clean_error(interp("investigate", "--resume", str(tmp_path)), f"run settings {tmp_path / 'run.json'}")


# -- organism specs too big for the machine ----------------------------------------------------------------------

MAXIMAL = {
    "name": "maximal",
    "task": {"kind": "lookup", "n_symbols": 4000, "min_len": 6, "max_len": 512},
    "mechanisms": [{"kind": "trigger", "n_tokens": 4, "rate": 0.4}, {"kind": "marker", "rate": 0.4}],
    "model": {"n_layers": 12, "d_model": 1024, "n_heads": 32, "d_mlp": 8192},
    "train": {"steps": 200_000, "batch_size": 4096, "lr": 1.0, "eval_examples": 100_000},
}


def test_a_spec_at_every_maximum_validates_but_is_refused_at_once_without_allocating(tmp_path):
    """In a fresh interpreter: refused in well under a second, before torch is even imported."""
    code = (
        "import json, sys, time\n"
        "from pathlib import Path\n"
        "from experiments.organisms.cache import train_into\n"
        "from experiments.organisms.spec import parse_spec\n"
        "from tools.errors import UserError\n"
        f"spec = parse_spec(json.loads({json.dumps(json.dumps(MAXIMAL))}), 'max')\n"
        "t = time.perf_counter()\n"
        "try:\n"
        f"    train_into(spec, Path({str(tmp_path / 'out')!r}))\n"
        "except UserError as e:\n"
        "    print(json.dumps({'s': time.perf_counter() - t, 'msg': str(e), 'torch': 'torch' in sys.modules}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        env={**os.environ, "INTERP_TRAIN_MEMORY_GB": ""},
        check=False,
    )
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["s"] < 0.5 and not got["torch"], got
    assert "would need about" in got["msg"] and "GB" in got["msg"]
    for field in ("train.eval_examples", "train.batch_size", "model.n_heads", "INTERP_TRAIN_MEMORY_GB"):
        assert field in got["msg"]
    assert list(tmp_path.iterdir()) == []  # no half-made organism folder


def test_the_cli_refuses_it_too_and_the_override_is_honoured(tmp_path):
    from experiments.organisms.spec import parse_spec
    from experiments.organisms.train import check_memory, estimate_memory

    spec_file = tmp_path / "maximal.yaml"
    spec_file.write_text(yaml.safe_dump(MAXIMAL))
    started = time.monotonic()
    out = interp("organism", "train", str(spec_file), "--out", str(tmp_path / "o"), env={"INTERP_TRAIN_MEMORY_GB": ""})
    assert_clean_error(out, "would need about", "lower train.eval_examples")
    assert time.monotonic() - started < 20
    assert not (tmp_path / "o").exists()
    out = interp(
        "investigate",
        AUDIT,
        "--model",
        f"organism:{spec_file}",
        "--run-dir",
        str(tmp_path / "r"),
        env={"INTERP_TRAIN_MEMORY_GB": "2"},
    )
    assert_clean_error(out, "more than the 2.0 GB limit (INTERP_TRAIN_MEMORY_GB=2)")
    spec = parse_spec(MAXIMAL, "max")
    os.environ["INTERP_TRAIN_MEMORY_GB"] = str(estimate_memory(spec).peak / 2**30 * 2)
    try:
        check_memory(spec)  # allowed by the override (not trained: the check alone)
        os.environ["INTERP_TRAIN_MEMORY_GB"] = "lots"
        with pytest.raises(UserError, match="INTERP_TRAIN_MEMORY_GB='lots'"):
            check_memory(spec)
    finally:
        del os.environ["INTERP_TRAIN_MEMORY_GB"]


def test_the_built_in_organisms_fit_and_the_estimate_is_not_wildly_off():
    """Built-ins are estimated under 1.5 GB; the formula's parts scale as the spec says."""
    from experiments.organisms.cache import builtin_names, resolve_spec
    from experiments.organisms.train import GB, estimate_memory

    for name in builtin_names():
        assert estimate_memory(resolve_spec(name)).peak < 1.5 * GB, name
    spec = resolve_spec("backdoor")
    base = estimate_memory(spec)
    wider = estimate_memory(spec.model_copy(update={"train": spec.train.model_copy(update={"batch_size": 256})}))
    assert wider.attention == 2 * base.attention and wider.logits == 2 * base.logits
    assert wider.weights == base.weights

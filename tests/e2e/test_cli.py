"""The `interp` command as a user runs it: real subprocesses, real files."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

INTERP = str(Path(sys.executable).parent / "interp")


def interp(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([INTERP, *args], capture_output=True, text=True, timeout=600, check=False)


def assert_clean_error(out: subprocess.CompletedProcess, says: str) -> None:
    assert out.returncode != 0
    assert "Traceback" not in out.stderr + out.stdout
    assert says in out.stderr, out.stderr


def test_help_lists_command_groups():
    out = interp("--help")
    assert out.returncode == 0 and "organism" in out.stdout and "model" in out.stdout


def test_organism_list_json():
    out = interp("organism", "list", "--json")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    from experiments.organisms.cache import builtin_names
    from experiments.organisms.universality import universality_names

    assert [r["name"] for r in rows] == builtin_names() + universality_names()
    assert {"backdoor", "null", "trigger_marker", "universality"} <= {r["name"] for r in rows}
    assert all(r["organism_id"].startswith("uni-" if r["name"] in universality_names() else "org-") for r in rows)


@pytest.fixture(scope="module")
def user_spec(tmp_path_factory) -> Path:
    """An organism spec a user wrote: not a built-in."""
    from tests.conftest import TINY_LOOKUP

    path = tmp_path_factory.mktemp("specs") / "my_backdoor.yaml"
    spec = dict(TINY_LOOKUP, name="my-backdoor", mechanisms=[{"kind": "trigger", "n_tokens": 1}])
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.mark.slow  # trains a user's organism twice (~16 s): `make test` from a fresh clone stays under 10 minutes
def test_user_spec_trains_shows_and_loads(user_spec, tmp_path):
    out_dir = tmp_path / "org"
    trained = interp("organism", "train", str(user_spec), "--out", str(out_dir), "--json")
    assert trained.returncode == 0, trained.stderr
    manifest = json.loads(trained.stdout)
    assert manifest["verified"] and manifest["name"] == "my-backdoor"

    shown = interp("organism", "show", str(out_dir), "--json")
    assert shown.returncode == 0 and json.loads(shown.stdout)["weights_hash"] == manifest["weights_hash"]
    table = interp("organism", "show", str(out_dir))
    assert "verified" in table.stdout and "backdoor: trigger" in table.stdout

    info = interp("model", "info", f"organism:{out_dir}", "--json", "--device", "cpu")
    assert info.returncode == 0, info.stderr
    data = json.loads(info.stdout)
    assert data["model_id"] == manifest["organism_id"] and "blocks.1.hook_resid_post" in data["hook_names"]

    again = interp("organism", "train", str(user_spec), "--out", str(out_dir))
    assert again.returncode == 0 and "already trained" in again.stderr


def test_seed_override_makes_a_different_organism(user_spec, tmp_path):
    out = interp("organism", "train", str(user_spec), "--seed", "5", "--out", str(tmp_path / "s5"), "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["seed"] == 5


def test_model_info_table_for_a_builtin(builtin):
    builtin("backdoor")
    out = interp("model", "info", "organism:backdoor")
    assert out.returncode == 0 and "hook_resid_post" in out.stdout and "n_layers" in out.stdout


@pytest.mark.parametrize(
    "args, says",
    [
        (["organism", "train", "backdor"], "unknown organism 'backdor'"),
        (["organism", "show", "no_such_thing"], "unknown organism"),
        (["model", "info", "gtp2-smal"], "Accepted forms"),
        (["model", "info", "organism:nope"], "Built-in organisms"),
    ],
)
def test_bad_input_is_a_message_not_a_traceback(args, says):
    assert_clean_error(interp(*args), says)


def test_malformed_spec_names_the_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ntask: {kind: lookup, min_len: 9, max_len: 3}\nmechanisms: [{kind: trigger, rte: 0.2}]\n")
    out = interp("organism", "train", str(bad))
    assert_clean_error(out, "mechanisms.0.trigger.rte")


def test_unwritable_out_is_a_clear_error(user_spec, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert_clean_error(interp("organism", "train", str(user_spec), "--out", str(blocker / "sub")), "cannot write")
    assert_clean_error(interp("organism", "train", str(user_spec), "--out", str(blocker)), "not a folder")


def test_show_untrained_organism_says_how_to_train(tmp_path, user_spec):
    spec = yaml.safe_load(user_spec.read_text())
    spec["seed"] = 77
    path = tmp_path / "fresh.yaml"
    path.write_text(yaml.safe_dump(spec))
    assert_clean_error(interp("organism", "show", str(path)), "interp organism train")


def test_a_universality_set_where_one_organism_is_expected_is_a_clean_error_that_says_what_it_is():
    for cmd in (("organism", "show", "universality"), ("organism", "check-reproducible", "universality")):
        assert_clean_error(interp(*cmd), "is a universality set")

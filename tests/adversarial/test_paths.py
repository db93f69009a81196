"""Paths a brain supplies stay inside the run folder: `..`, absolute paths and symbolic links
that lead out are refused as errors of that call, and nothing is written outside; the user's own
`--sae` folder stays readable."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from agent.paths import PATH_FIELDS, confine
from tools.errors import UserError


@pytest.fixture(autouse=True)
def _directions(tmp_path, monkeypatch):
    monkeypatch.setenv("INTERP_DIRECTIONS", str(tmp_path / "directions"))


def _acts(out: str, ref: str) -> dict:
    return {
        "kind": "call",
        "ref": ref,
        "call": {
            "tool": "activations",
            "input": {"prompts": ["t1 t2 <q>", "t3 t4 <q>"], "hooks": ["blocks.0.hook_resid_post"], "out": out},
        },
    }


def test_brain_issued_activations_cannot_write_outside_the_run_folder(tmp_path):
    from agent import investigate
    from agent.context import RunSettings
    from agent.question import parse_question

    outside = tmp_path / "outside"
    escape = "../../../tmp/x"
    run_dir = tmp_path / "a" / "b" / "run"
    escaped_to = (run_dir / "artifacts" / escape).resolve()
    assert not escaped_to.exists()
    script = [[_acts(escape, "dotdot"), _acts(str(outside / "acts"), "absolute"), _acts("acts", "inside")]]
    path = tmp_path / "script.json"
    path.write_text(json.dumps(script))
    s = RunSettings(
        question=parse_question("audit this model for hidden triggers").model_dump(mode="json"),
        model="organism:backdoor",
        brain=f"scripted:{path}",
    )
    state, ctx = investigate.start(s, run_dir)

    errors = {e["ref"]: e["message"] for e in state["errors"]}
    assert "leads outside the run folder" in errors["dotdot"] and "relative path" in errors["dotdot"]
    assert "absolute path outside the run folder" in errors["absolute"]
    assert not outside.exists() and not escaped_to.exists()
    assert [o["ref"] for o in state["observations"]] == ["inside"]
    assert (run_dir / "artifacts" / "acts" / "blocks.0.hook_resid_post.npy").is_file()
    written = {p for p in tmp_path.rglob("*") if p.is_file()}
    assert all(p.is_relative_to(run_dir) or p == path for p in written), sorted(map(str, written))
    assert "leads outside the run folder" in (ctx.run_dir / "report.md").read_text()


@pytest.mark.parametrize(
    "tool, payload",
    [
        ("activations", {"out": "/etc/x"}),
        ("activations", {"out": "a/../../x"}),
        ("sae_train", {"out": "../sae"}),
        ("sae_train", {"out": "sae", "corpus": {"file": "/etc/passwd"}}),
        ("sae_contexts", {"sae": "../../other-run/sae"}),
        ("steer", {"sae": "/somewhere/sae"}),
        ("ablate", {"components": [{"kind": "sae_feature", "sae": "/x", "feature": 1}]}),
        (
            "ablate",
            {
                "components": [{"kind": "head", "layer": 0, "head": 0}],
                "background": [{"kind": "sae_feature", "sae": "../x", "feature": 1}],
            },
        ),
        ("steer", {"direction_id": "../../../etc/passwd"}),
        ("ablate", {"components": [{"kind": "direction", "direction_id": "dir-../x"}]}),
    ],
)
def test_every_path_field_is_confined(tmp_path, tool, payload):
    with pytest.raises(UserError, match=r"outside the run folder|not a direction id"):
        confine(tool, payload, tmp_path / "run")


def test_a_symbolic_link_out_of_the_run_folder_is_refused(tmp_path):
    run = tmp_path / "run"
    (run / "artifacts").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", run / "artifacts" / "link")
    with pytest.raises(UserError, match="symbolic link"):
        confine("activations", {"out": "link/acts"}, run)
    os.symlink(run / "artifacts" / "loop", run / "artifacts" / "loop2")
    os.symlink(run / "artifacts" / "loop2", run / "artifacts" / "loop")
    with pytest.raises(UserError):
        confine("activations", {"out": "loop/acts"}, run)


def test_paths_inside_resolve_into_artifacts_and_the_users_sae_stays_readable(tmp_path):
    run = tmp_path / "run"
    art = (run / "artifacts").resolve()
    out = confine("sae_train", {"out": "sae/blocks.0", "corpus": {"file": "corpus.txt"}}, run)
    assert out == {"out": str(art / "sae" / "blocks.0"), "corpus": {"file": str(art / "corpus.txt")}}
    assert confine("sae_stats", {"sae": str(art / "sae")}, run) == {"sae": str(art / "sae")}
    users = ["my-saes/blocks.0", "release/sae-id"]
    assert confine("sae_contexts", {"sae": "my-saes/blocks.0"}, run, users) == {"sae": "my-saes/blocks.0"}
    assert (
        confine("steer", {"sae": "release/sae-id", "direction_id": "dir-0a1b"}, run, users)["sae"] == "release/sae-id"
    )
    with pytest.raises(UserError, match="read-only"):  # read, never overwritten
        confine("sae_train", {"out": str(Path("my-saes/blocks.0").resolve())}, run, users)
    # malformed inputs pass through untouched: the tool's own validation names the bad field
    assert confine("activations", {"out": 3}, run) == {"out": 3}
    assert confine("activations", "not a dict", run) == "not a dict"


def _path_like_fields(model, prefix: str = "") -> set[str]:
    """Dotted paths of str fields whose docstring says they name a file or folder."""
    import types
    import typing

    from pydantic import BaseModel

    found = set()
    for name, info in model.model_fields.items():
        ann = info.annotation
        union = typing.get_origin(ann) in (typing.Union, types.UnionType)
        args = [a for a in typing.get_args(ann) if a is not type(None)] if union else [ann]
        for a in args:
            inner = typing.get_args(a)
            if typing.get_origin(a) is list and inner:
                for member in typing.get_args(inner[0]) or inner:  # an Annotated union of record kinds
                    for m in typing.get_args(member) or (member,):
                        if isinstance(m, type) and issubclass(m, BaseModel):
                            found |= _path_like_fields(m, f"{prefix}{name}.*.")
            elif isinstance(a, type) and issubclass(a, BaseModel):
                found |= _path_like_fields(a, f"{prefix}{name}.")
            elif a in (str, list[str]) and any(w in (info.description or "").lower() for w in ("folder", "file")):
                found.add(prefix + name)
    return found


def test_every_file_or_folder_field_of_every_tool_is_confined():
    """Guards the table in agent.paths against a new tool input that names a file."""
    from tools import registry

    for name, spec in registry.tools().items():
        covered = {f for f, _ in PATH_FIELDS.get(name, [])}
        assert _path_like_fields(spec.input_model) <= covered, name


def test_the_users_own_sae_given_with_sae_is_read_where_it_is(tmp_path, builtin):
    """`interp investigate "what does feature N do?" --sae DIR`: the brain reads DIR, outside the run folder."""
    from agent import investigate
    from agent.context import RunSettings
    from agent.question import parse_question
    from agent.targets import load
    from tools import registry

    builtin("features")
    target = load("organism:features")
    prompts = target.usage_prompts(64, 0)
    user_sae = tmp_path / "my-saes" / "l1"
    registry.call(
        target,
        "sae_train",
        {
            "hook": "blocks.1.hook_resid_pre",
            "corpus": {"prompts": prompts},
            "out": str(user_sae),
            "d_sae": 32,
            "k": 4,
            "steps": 30,
            "batch_size": 64,
        },
    )
    (tmp_path / "prompts.txt").write_text("\n".join(prompts))
    q = parse_question("what does feature 3 do?", str(tmp_path / "prompts.txt"), sae=[str(user_sae)])
    s = RunSettings(question=q.model_dump(mode="json"), model="organism:features", wall_seconds=60)
    state, _ = investigate.start(s, tmp_path / "run")
    assert not [e for e in state["errors"] if "outside the run folder" in e["message"]], state["errors"]
    assert any(o["ref"] == "component/contexts" for o in state["observations"])

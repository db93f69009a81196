import pytest

from experiments.organisms.cache import builtin_names, resolve_spec
from experiments.organisms.spec import load_spec, parse_spec
from tools.errors import UserError

GOOD = {"name": "x", "task": {"kind": "lookup"}, "mechanisms": [{"kind": "trigger"}]}


def test_every_spec_file_is_a_builtin_and_parses_under_its_own_name():
    from pathlib import Path

    import experiments.organisms

    specs = Path(experiments.organisms.__file__).parent / "specs"
    assert builtin_names() == sorted(p.stem for p in specs.glob("*.yaml"))
    # the original five and the trigger family (1-4 tokens; backdoor is the 2-token member)
    assert {
        "backdoor",
        "eval_aware",
        "features",
        "induction",
        "null",
        "trigger1",
        "trigger3",
        "trigger4",
        "trigger_marker",
    } <= set(builtin_names())
    for name in builtin_names():
        assert resolve_spec(name).name == name
    lengths = {resolve_spec(n).mechanisms[0].n_tokens for n in ("trigger1", "backdoor", "trigger3", "trigger4")}
    assert lengths == {1, 2, 3, 4}


def test_null_control_shares_task_architecture_and_mechanism_rates_with_backdoor():
    null, backdoor = resolve_spec("null"), resolve_spec("backdoor")
    assert null.task == backdoor.task and null.model == backdoor.model
    assert not any(m.planted for m in null.mechanisms)
    trig = next(m for m in null.mechanisms if m.kind == "trigger")
    assert trig.model_copy(update={"planted": True}) == backdoor.mechanisms[0]


@pytest.mark.parametrize(
    "patch, field",
    [
        ({"tsk": {"kind": "lookup"}}, "tsk"),
        ({"task": {"kind": "lookup", "min_len": 9, "max_len": 5}}, "min_len"),
        ({"task": {"kind": "sorting"}}, "task"),
        ({"mechanisms": [{"kind": "trigger"}, {"kind": "trigger"}]}, "each kind at most once"),
        ({"mechanisms": [{"kind": "trigger", "rate": 0.5}, {"kind": "marker", "rate": 0.5}]}, "0.8"),
        ({"mechanisms": [{"kind": "trigger", "n_tokens": 9}]}, "mechanisms.0.trigger.n_tokens"),
        ({"task": {"kind": "induction"}}, "need task kind 'lookup'"),
        ({"model": {"d_model": 30, "n_heads": 4}}, "divisible"),
        ({"name": "Has Spaces"}, "name"),
        ({"train": {"steps": 0}}, "train.steps"),
    ],
)
def test_bad_specs_name_the_bad_field(patch, field):
    with pytest.raises(UserError) as e:
        parse_spec({**GOOD, **patch}, "my.yaml")
    assert field in str(e.value) and "my.yaml" in str(e.value)


def test_hash_follows_weights_not_labels():
    a = parse_spec(GOOD, "a")
    assert a.spec_hash() == parse_spec({**GOOD, "name": "y", "description": "d"}, "b").spec_hash()
    assert a.spec_hash() != a.with_seed(1).spec_hash()
    assert a.organism_id().startswith("org-") and "trigger" not in a.organism_id()


def test_yaml_errors_and_missing_files(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed")
    with pytest.raises(UserError, match="not valid YAML"):
        load_spec(bad)
    bad.write_text("- just a list")
    with pytest.raises(UserError, match="YAML mapping"):
        load_spec(bad)
    with pytest.raises(UserError, match="does not exist"):
        resolve_spec(str(tmp_path / "missing.yaml"))


def test_unknown_organism_lists_builtins():
    with pytest.raises(UserError) as e:
        resolve_spec("backdor")
    assert "backdoor" in str(e.value) and "eval_aware" in str(e.value)

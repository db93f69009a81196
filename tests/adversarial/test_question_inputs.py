"""Hostile prompts files and questions: per-prompt lists of the wrong size or type, huge texts. Each is one
short error that names the field and the fix, never a traceback or a message the size of the input."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.question import parse_question, read_prompts_file
from tools.errors import UserError

INTERP = str(Path(sys.executable).parent / "interp")


def write(tmp_path, data) -> str:
    p = tmp_path / "prompts.json"
    p.write_text(json.dumps(data))
    return str(p)


@pytest.mark.parametrize(
    "data, says",
    [
        (
            {"prompts": ["a", "b"], "answers": [f" w{i}" for i in range(10_000)]},
            "`answers` has 10000 entries for 2 prompts",
        ),
        ({"prompts": ["a"] * 10_000, "answers": [" x"] * 9_999}, "`answers` has 9999 entries for 10000 prompts"),
        (
            {
                "prompts": ["a"] * 10_000,
                "answers": [" x"] * 10_000,
                "versus": [" y"] * 10_000,
                "corrupted": ["b"] * 10_001,
            },
            "`corrupted` has 10001 entries",
        ),
        ({"prompts": ["a"] * 10_000, "answers": [""] * 10_000}, r"`answers[0]` is empty (and 9999 more)"),
        ({"prompts": ["a", "b"], "answers": list(range(10_000))}, "answers.0: Input should be a valid string"),
        ({"prompts": ["a"], "answers": " Mary"}, "answers: Input should be a valid list"),
        ({"prompts": ["a"], "answers": [None]}, "answers.0: Input should be a valid string"),
        ({"prompts": ["a"], "answers": [[" Mary"]]}, "answers.0: Input should be a valid string"),
        ({"prompts": ["a"], "versus": {"0": " John"}}, "versus: Input should be a valid list"),
        ({"prompts": ["a"], "corrupted": [1.5]}, "corrupted.0: Input should be a valid string"),
    ],
)
def test_hostile_per_prompt_lists_are_short_clear_errors(tmp_path, data, says):
    path = write(tmp_path, data)
    start = time.monotonic()
    with pytest.raises(UserError) as e:
        read_prompts_file(path)
    assert time.monotonic() - start < 5
    msg = str(e.value)
    assert says in msg, msg
    assert len(msg) < 2_000, len(msg)  # never the input echoed back: at most a few lines
    assert msg.count("\n") <= 10


def test_ten_thousand_non_string_answers_list_a_few_and_count_the_rest(tmp_path):
    with pytest.raises(UserError) as e:
        read_prompts_file(write(tmp_path, {"prompts": ["a"] * 10_000, "answers": list(range(10_000))}))
    assert "... and 9992 more" in str(e.value)


def test_a_huge_question_of_no_known_kind_is_quoted_short(tmp_path):
    text = "which heads " + "do things " * 20_000
    with pytest.raises(UserError) as e:
        parse_question(text)
    assert len(str(e.value)) < 2_000 and "..." in str(e.value)


def test_a_question_with_a_shell_quote_gets_an_example_command_that_pastes(tmp_path):
    with pytest.raises(UserError) as e:
        parse_question("why does it say \"Mary\" and not 'John'?")
    line = next(l for l in str(e.value).splitlines() if "interp investigate" in l)
    import shlex

    assert shlex.split(line)[4] == "why does it say \"Mary\" and not 'John'?"


def test_hostile_answers_through_the_cli_exit_2_before_the_model_loads(tmp_path):
    path = write(tmp_path, {"prompts": ["a", "b"], "answers": [{"token": i} for i in range(10_000)]})
    out = subprocess.run(
        [
            INTERP,
            "investigate",
            "why does it say x?",
            "--model",
            "organism:no_such_organism",
            "--prompts",
            path,
            "--run-dir",
            str(tmp_path / "r"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "ANTHROPIC_API_KEY": ""},
        check=False,
    )
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stdout + out.stderr and "no_such_organism" not in out.stderr
    assert out.stderr.startswith("error: prompts file") and "... and 9992 more" in out.stderr
    assert len(out.stderr) < 2_000 and not (tmp_path / "r").exists()

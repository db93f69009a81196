"""`interp investigate` meets the question first: one it cannot act on is refused before any model loads, and
the report of one it can opens with the question as understood."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

INTERP = str(Path(sys.executable).parent / "interp")
OUT_OF_KIND = "which attention heads move the first token to the end?"


def interp(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [INTERP, *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "ANTHROPIC_API_KEY": ""},
        check=False,
    )


def test_a_question_of_no_known_kind_is_refused_before_the_model_loads(tmp_path):
    run_dir = tmp_path / "r"
    # a model that does not exist: had anything tried to load it, the error would be about the model
    for model in ("organism:no_such_organism", "hf:/nonexistent/model"):
        start = time.monotonic()
        out = interp("investigate", OUT_OF_KIND, "--model", model, "--run-dir", str(run_dir), "--no-memory")
        seconds = time.monotonic() - start
        assert out.returncode == 2, out.stdout + out.stderr
        assert "Traceback" not in out.stdout + out.stderr
        assert out.stderr.startswith("error: cannot act on the question"), out.stderr
        assert "no_such_organism" not in out.stderr and "nonexistent" not in out.stderr
        for says in (
            "no --prompts",
            "\n  behaviour ",
            "\n  concept ",
            "\n  component ",
            "\n  audit ",
            "interp investigate --model M",
            '"answers": [" Mary"], "versus": [" John"]',
        ):
            assert says in out.stderr, out.stderr
        assert not run_dir.exists()
        # a process start and the CLI's imports, no model: well under the seconds a load takes
        assert seconds < 20, seconds
    # the same question without --model: the question is still what is wrong first
    out = interp("investigate", OUT_OF_KIND)
    assert out.returncode == 2 and "cannot act on the question" in out.stderr


def test_a_prompts_file_with_mismatched_answers_is_refused_before_the_model_loads(tmp_path):
    prompts = tmp_path / "prompts.json"
    prompts.write_text(json.dumps({"prompts": ["t1 t2 <q>", "t3 t4 <q>"], "answers": ["t21"]}))
    out = interp(
        "investigate",
        "why does it say t21?",
        "--model",
        "organism:no_such_organism",
        "--prompts",
        str(prompts),
        "--run-dir",
        str(tmp_path / "r"),
    )
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "`answers` has 1 entries for 2 prompts" in out.stderr and "no_such_organism" not in out.stderr


def test_the_report_opens_with_the_question_as_understood(tmp_path, builtin):
    builtin("backdoor")
    prompts = tmp_path / "prompts.json"
    prompts.write_text(
        json.dumps(
            {
                "prompts": ["t1 t33 t22 t2 <q>", "t3 t33 t22 t4 <q>", "t5 t6 t7 <q>"],
                "answers": ["t21", "t21", "t21"],
                "versus": ["t5", "t6", "t7"],
            }
        )
    )
    script = tmp_path / "script.json"
    script.write_text("[]")  # concludes at once: the report's header is what is tested
    run_dir = tmp_path / "run"
    out = interp(
        "investigate",
        "why does the model say t21?",
        "--model",
        "organism:backdoor",
        "--prompts",
        str(prompts),
        "--brain",
        f"scripted:{script}",
        "--run-dir",
        str(run_dir),
        "--no-memory",
        "--budget",
        "60s",
        "--json",
    )
    assert out.returncode == 0, out.stderr
    report = (run_dir / "report.md").read_text()
    head = report.split("\n## ")[1]
    assert head.startswith("Question\n"), report[:400]
    lines = head.splitlines()
    assert "- **Asked**: why does the model say t21?" in lines
    assert any(l.startswith("- **Understood as**: behaviour") for l in lines)
    assert any(l.startswith("- **Metric**: logit[") and "'t21' vs 't5'" in l for l in lines), head
    assert any(l.startswith("- **Prompts**: 3") for l in lines)
    assert any(l.startswith("- **Model**: `") for l in lines) and any(l.startswith("- **Budget**: ") for l in lines)
    # then the claims (after the brain's summary, when there is one)
    assert report.index("## Question") < report.index("## Claims")
    html = (run_dir / "report.html").read_text()
    # the page opens with the question, then the claims; the question as understood is one click away
    assert html.index("<h1>why does the model say t21?</h1>") < html.index("Understood as") < html.index("id='claims'")

"""A pooled job's plan and its run folders after the job (agent/replicated.py), without a cluster."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.context import RunSettings
from agent.replicated import _name_the_folder_again, plan

pytestmark = pytest.mark.unit


def test_the_jobs_tasks_name_files_by_absolute_paths_and_builtins_by_name(tmp_path, monkeypatch) -> None:
    """Workers on other machines (or in another directory) must find the same files."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "organisms" / "mine").mkdir(parents=True)
    (tmp_path / "backdoor").write_text("a file named like a built-in is not an organism folder")
    (tmp_path / "script.json").write_text("[]")
    cases = [
        ("organism:organisms/mine", f"organism:{tmp_path / 'organisms' / 'mine'}"),
        ("organism:backdoor", "organism:backdoor"),
        ("hf:models/llama", f"hf:{tmp_path / 'models' / 'llama'}"),
        ("gguf:m.gguf", f"gguf:{tmp_path / 'm.gguf'}"),
        ("smollm2", "smollm2"),
    ]
    for i, (model, expected) in enumerate(cases):
        settings = RunSettings(question={"text": "q"}, model=model, brain="scripted:script.json")
        (task,) = plan(settings, 1, tmp_path / f"job{i}")
        assert task.settings["model"] == expected
        assert task.settings["brain"] == f"scripted:{tmp_path / 'script.json'}"


def test_after_the_job_each_run_names_its_memory_folder_absolute_and_a_bad_run_json_is_left_and_said(
    tmp_path, monkeypatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = RunSettings(question={"text": "q"}, model="organism:backdoor", memory="mem")
    tasks = plan(settings, 3, tmp_path / "job")
    served = "http://127.0.0.1:4567"
    for t in tasks[:2]:  # the third run never started: no folder
        t.settings["memory"] = served
        Path(t.run_dir).mkdir(parents=True)
        RunSettings(**t.settings).save(Path(t.run_dir))
    broken = Path(tasks[1].run_dir) / "run.json"
    broken.write_text("{not json")
    _name_the_folder_again(tasks, served, settings.memory)
    first = json.loads((Path(tasks[0].run_dir) / "run.json").read_text())
    assert first["memory"] == str(tmp_path / "mem")  # absolute: `--resume` from anywhere opens it
    assert broken.read_text() == "{not json"  # left as it was, and said
    assert str(broken.parent) in capsys.readouterr().err

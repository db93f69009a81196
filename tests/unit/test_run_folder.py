"""A run's files are named in one place (agent/run_folder.py) and written so no reader sees half a file."""

from __future__ import annotations

import json
import threading
import time

import pytest

from agent.run_folder import RunFolder, atomic_write
from tools.errors import UserError

pytestmark = pytest.mark.unit


def test_results_round_trip_and_leave_no_temporary_files(tmp_path):
    folder = RunFolder(tmp_path)
    folder.write_result("exp-0a1b", {"effect": 0.9, "summary": "s"})
    assert folder.read_result("exp-0a1b") == {"effect": 0.9, "summary": "s"}
    assert [p.name for p in (tmp_path / "results").iterdir()] == ["exp-0a1b.json"]


@pytest.mark.parametrize("bad", ["../run.json", "a/b", "", "/etc/passwd", "x" * 200, "id.json\n"])
def test_an_experiment_id_that_could_name_another_path_is_refused(tmp_path, bad):
    with pytest.raises(UserError, match="is not an experiment id"):
        RunFolder(tmp_path).result(bad)


def test_a_failed_replace_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "claims.json"
    path.mkdir()  # os.replace of a file onto a directory fails
    with pytest.raises(OSError):
        atomic_write(path, "[]")
    assert path.is_dir() and sorted(p.name for p in tmp_path.iterdir()) == ["claims.json"]


def test_the_review_lock_lets_one_writer_at_a_time(tmp_path):
    folder = RunFolder(tmp_path)
    order: list[str] = []

    def second() -> None:
        with folder.review_lock():
            order.append("second")

    with folder.review_lock():
        t = threading.Thread(target=second)
        t.start()
        time.sleep(0.2)  # the second writer is blocked, not failed, while the first holds the lock
        order.append("first")
    t.join(5)
    assert order == ["first", "second"]


def test_names_are_the_ones_the_rest_of_the_code_uses(tmp_path):
    from agent.context import SETTINGS_FILE
    from agent.resume_check import CHECKPOINT_FILE, TRACE_FILE
    from agent.review import DECISIONS_FILE

    folder = RunFolder(tmp_path)
    assert (folder.settings.name, folder.trace.name, folder.checkpoints.name, folder.decisions.name) == (
        SETTINGS_FILE,
        TRACE_FILE,
        CHECKPOINT_FILE,
        DECISIONS_FILE,
    )
    folder.claims.write_text(json.dumps([]))
    assert (folder / "claims.json").is_file()


def test_a_name_inside_the_folder_resolves_there(tmp_path):
    folder = RunFolder(tmp_path)
    assert folder.inside("results/x.json") == (tmp_path / "results" / "x.json").resolve()
    assert folder.inside(tmp_path / "claims.json") == (tmp_path / "claims.json").resolve()


def test_json_files_round_trip_and_a_missing_one_reads_as_none(tmp_path):
    folder = RunFolder(tmp_path)
    assert folder.read_json(folder.DECISIONS) is None
    folder.write_json(folder.DECISIONS, {"clm-1": {"status": "accepted"}})
    assert folder.read_json(folder.DECISIONS) == {"clm-1": {"status": "accepted"}}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["decisions.json"]


def test_settings_are_written_whole_and_read_back_by_run_settings(tmp_path):
    from agent.context import RunSettings

    settings = RunSettings(question={"text": "why?"}, model="organism:backdoor", wall_seconds=60.0)
    settings.save(tmp_path)
    assert RunFolder(tmp_path).settings.is_file()
    assert RunSettings.load(tmp_path) == settings


def test_directions_saved_during_a_run_go_to_its_folder_and_load_from_there(tmp_path, monkeypatch):
    import torch

    from tools.directions import load_direction, save_direction, saving_in

    monkeypatch.setenv("INTERP_DIRECTIONS", str(tmp_path / "shared"))
    folder = RunFolder(tmp_path / "run")
    with saving_in(folder.directions):
        did = save_direction(torch.ones(4), "blocks.0.hook_resid_post", "m", "test")
        vector, meta = load_direction(did)
    assert [p.name for p in folder.directions.iterdir()] == [f"{did}.safetensors"]
    assert not (tmp_path / "shared").exists()
    assert torch.equal(vector, torch.ones(4)) and meta["hook"] == "blocks.0.hook_resid_post"
    # outside that run the id is unknown: the run's folder is not the shared one
    with pytest.raises(UserError, match="unknown direction"):
        load_direction(did)
    # a direction saved in the shared folder is still found from inside a run (same id, same vector)
    shared = save_direction(torch.zeros(3), "blocks.0.hook_resid_post", "m", "test")
    with saving_in(folder.directions):
        assert torch.equal(load_direction(shared)[0], torch.zeros(3))

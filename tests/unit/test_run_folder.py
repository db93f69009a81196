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

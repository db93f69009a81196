"""Faults around a run folder, met through `interp investigate` as a user meets them: damaged checkpoints,
two processes on one folder, a lock left by kill -9, weights changed under a run, bad numbers, questions
about components the model does not have. Each is a clear `error:` line (exit 2), never a traceback and
never a silent restart."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest

from agent.resume_check import CHECKPOINT_FILE, check_checkpoint, wal_problem
from agent.run_lock import RunLock
from tools.errors import UserError

INTERP = str(Path(sys.executable).parent / "interp")
AUDIT = "audit this model for hidden triggers"


def interp(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [INTERP, *args], capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})}, check=False
    )


def assert_clean_error(out: subprocess.CompletedProcess, *says: str) -> None:
    assert out.returncode == 2, out.stdout + out.stderr
    assert "Traceback" not in out.stderr + out.stdout
    for s in says:
        assert s in out.stderr, out.stderr


def _run(run_dir: Path, model: str = "organism:backdoor") -> Path:
    """A short finished run (in this process, to save a process start): one decision, one call."""
    from agent import investigate
    from agent.context import RunSettings
    from agent.question import parse_question

    script = run_dir.parent / f"{run_dir.name}-script.json"
    script.write_text(
        json.dumps(
            [[{"kind": "call", "call": {"tool": "predict", "input": {"prompts": ["t1 t2 t3 t4 <q>", "t5 t6 t7 <q>"]}}}]]
        )
    )
    settings = RunSettings(
        question=parse_question(AUDIT).model_dump(mode="json"),
        model=model,
        brain=f"scripted:{script}",
        memory=None,
        wall_seconds=120,
    )
    investigate.start(settings, run_dir)
    return run_dir


@pytest.fixture(scope="module")
def finished(builtin, tmp_path_factory) -> Path:
    builtin("backdoor")
    return _run(tmp_path_factory.mktemp("runs") / "finished")


@pytest.fixture
def run_copy(finished, tmp_path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    return out


def _run_id(run_dir: Path) -> str:
    return json.loads((run_dir / "run.json").read_text())["run_id"]


def _stage_in_wal(src: Path, staging: Path) -> sqlite3.Connection:
    """A copy of `src` whose tables and rows all sit in the write-ahead log, one transaction per row, as a
    killed run leaves its checkpoint; the returned writer must stay open while the files are copied (closing
    it folds the log into the database)."""
    writer = sqlite3.connect(staging)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("PRAGMA wal_autocheckpoint=0")
    writer.execute("ATTACH ? AS src", (str(src),))
    tables = writer.execute("SELECT name, sql FROM src.sqlite_master WHERE type = 'table'").fetchall()
    for _, sql in tables:
        writer.execute(sql)
    writer.commit()
    for name, _ in tables:
        for (rowid,) in writer.execute(f"SELECT rowid FROM src.{name}").fetchall():
            writer.execute(f"INSERT INTO main.{name} SELECT * FROM src.{name} WHERE rowid = ?", (rowid,))
            writer.commit()
    return writer


def _killed_state(run_dir: Path, tmp_path: Path) -> Path:
    """Replace the run's checkpoint by one whose contents live in its WAL; returns the WAL."""
    db = run_dir / CHECKPOINT_FILE
    source, staged = tmp_path / "source.sqlite", tmp_path / "staged.sqlite"
    shutil.copy(db, source)
    writer = _stage_in_wal(source, staged)
    writer.execute("DETACH src")
    try:
        shutil.copy(staged, db)
        shutil.copy(staged.with_name(staged.name + "-wal"), db.with_name(db.name + "-wal"))
    finally:
        writer.close()
    return db.with_name(db.name + "-wal")


# -- damaged checkpoints ---------------------------------------------------------------------------------------


def _garbage(run_dir: Path, tmp_path: Path) -> None:
    (run_dir / CHECKPOINT_FILE).write_bytes(os.urandom(64 * 1024))


def _zero_bytes(run_dir: Path, tmp_path: Path) -> None:
    (run_dir / CHECKPOINT_FILE).write_bytes(b"")


def _missing(run_dir: Path, tmp_path: Path) -> None:
    (run_dir / CHECKPOINT_FILE).unlink()


def _garbage_wal(run_dir: Path, tmp_path: Path) -> None:
    wal = _killed_state(run_dir, tmp_path)
    wal.write_bytes(os.urandom(wal.stat().st_size))


def _wal_frame_flipped(run_dir: Path, tmp_path: Path) -> None:
    """One frame in the middle of the log damaged: SQLite would silently drop it and everything after it."""
    wal = _killed_state(run_dir, tmp_path)
    data = bytearray(wal.read_bytes())
    page = int.from_bytes(data[8:12], "big")
    frame = 24 + page
    n = (len(data) - 32) // frame
    assert n >= 4
    at = 32 + (n // 2) * frame + 24 + 100
    data[at : at + 16] = bytes(b ^ 0xFF for b in data[at : at + 16])
    wal.write_bytes(bytes(data))


def _blob_damaged(run_dir: Path, tmp_path: Path) -> None:
    with closing(sqlite3.connect(run_dir / CHECKPOINT_FILE)) as conn:
        conn.execute("UPDATE checkpoints SET checkpoint = randomblob(300)")
        conn.commit()


@pytest.mark.parametrize(
    "damage, says",
    [
        (_garbage, "not a readable SQLite database"),
        (_zero_bytes, "is empty"),
        (_missing, "is missing"),
        (_garbage_wal, "write-ahead log"),
        (_wal_frame_flipped, "fails its checksum"),
        (_blob_damaged, "cannot be read"),
    ],
)
def test_a_damaged_checkpoint_is_refused_with_a_way_to_start_over(run_copy, tmp_path, damage, says):
    damage(run_copy, tmp_path)
    files = lambda: sorted(p.name for p in run_copy.iterdir() if not p.name.endswith(("-shm", "-wal")))  # noqa: E731
    before = files()
    out = interp("investigate", "--resume", str(run_copy))
    assert_clean_error(out, "cannot resume", says, f"--resume {run_copy} --restart")
    # nothing ran: no resume event, and the damaged files are left as they were for inspection
    assert not any(json.loads(l)["event"] == "resume" for l in (run_copy / "trace.jsonl").read_text().splitlines())
    assert files() == before


def test_an_intact_killed_state_and_a_torn_last_frame_still_resume(run_copy, tmp_path):
    """The checks do not cry wolf: a WAL holding everything is fine, and so is a torn last frame (the
    uncommitted tail a kill leaves)."""
    wal = _killed_state(run_copy, tmp_path)
    assert wal_problem(wal) is None
    check_checkpoint(run_copy, _run_id(run_copy))
    data = wal.read_bytes()
    wal.write_bytes(data[:-1000])
    assert wal_problem(wal) is None
    check_checkpoint(run_copy, _run_id(run_copy))
    from agent.graph import checkpointed_state

    assert checkpointed_state(run_copy, _run_id(run_copy))["run_id"] == _run_id(run_copy)


def test_a_run_killed_before_orient_finished_starts_from_scratch(run_copy):
    """No decision in the trace: an empty checkpoint is what a kill during loading leaves, not damage."""
    (run_copy / CHECKPOINT_FILE).write_bytes(b"")
    (run_copy / "trace.jsonl").write_text('{"t": "x", "event": "load", "seconds": 1}\n{"t": "x", "event": "orie')
    check_checkpoint(run_copy, _run_id(run_copy))


def test_restart_keeps_the_old_files_aside_and_runs_afresh(run_copy):
    _garbage(run_copy, run_copy)
    garbage = (run_copy / CHECKPOINT_FILE).read_bytes()
    old_id = _run_id(run_copy)
    out = interp("investigate", "--resume", str(run_copy), "--restart", "--json")
    assert out.returncode == 0, out.stderr
    assert "Traceback" not in out.stderr
    (aside,) = (run_copy / "previous").iterdir()
    assert (aside / CHECKPOINT_FILE).read_bytes() == garbage and (aside / "run.json").is_file()
    assert json.loads(out.stdout)["run_id"] == _run_id(run_copy) != old_id
    settings = json.loads((run_copy / "run.json").read_text())
    assert settings["question"] == json.loads((aside / "run.json").read_text())["question"]
    check_checkpoint(run_copy, _run_id(run_copy))
    assert str(aside) in out.stderr


def test_restart_needs_resume():
    assert_clean_error(interp("investigate", AUDIT, "--model", "organism:backdoor", "--restart"), "--resume")


# -- one process per run folder --------------------------------------------------------------------------------


def test_a_second_process_on_a_busy_run_folder_fails_at_once(run_copy):
    with RunLock(run_copy):
        started = time.monotonic()
        out = interp("investigate", "--resume", str(run_copy))
        took = time.monotonic() - started
    assert_clean_error(out, f"run folder {run_copy} is in use by pid {os.getpid()}")
    assert took < 10, took  # refused before loading anything
    assert "resume" not in (run_copy / "trace.jsonl").read_text()


def test_two_resumes_of_one_folder_one_runs_the_other_is_refused(run_copy):
    first = subprocess.Popen(
        [INTERP, "investigate", "--resume", str(run_copy), "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lock = run_copy / ".lock"
    deadline = time.monotonic() + 60
    while not (lock.is_file() and lock.read_text().strip() == str(first.pid)):
        assert time.monotonic() < deadline and first.poll() is None, "the first resume never took the lock"
        time.sleep(0.02)
    second = interp("investigate", "--resume", str(run_copy))
    assert_clean_error(second, f"in use by pid {first.pid}")
    assert first.wait(timeout=300) == 0, first.stderr.read()
    events = [json.loads(l)["event"] for l in (run_copy / "trace.jsonl").read_text().splitlines()]
    assert events.count("resume") == 1


def test_a_lock_left_by_kill_9_does_not_block(tmp_path):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import sys, time; from pathlib import Path; from agent.run_lock import RunLock\n"
                f"with RunLock(Path({str(tmp_path)!r})):\n    print('held', flush=True); time.sleep(120)"
            ),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(UserError, match=f"in use by pid {holder.pid}"), RunLock(tmp_path):
        pass
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    assert (tmp_path / ".lock").read_text().strip() == str(holder.pid)  # the stale pid is still written there
    with RunLock(tmp_path):
        assert (tmp_path / ".lock").read_text().strip() == str(os.getpid())


# -- weights changed under a run -------------------------------------------------------------------------------


def test_resume_after_the_weights_changed_is_refused(builtin, tmp_path):
    from safetensors.torch import load_file, save_file

    from tools.checkpoint import WEIGHTS_FILE, weights_hash

    organism = tmp_path / "organism"
    shutil.copytree(builtin("backdoor"), organism)
    run_dir = _run(tmp_path / "run", model=f"organism:{organism}")
    old = weights_hash(organism)
    assert json.loads((run_dir / "run.json").read_text())["weights_hash"] == old
    state = load_file(str(organism / WEIGHTS_FILE))
    state["embed.W_E"] = state["embed.W_E"] + 0.01
    save_file(state, str(organism / WEIGHTS_FILE))
    new = weights_hash(organism)
    assert new != old
    out = interp("investigate", "--resume", str(run_dir))
    assert_clean_error(out, "weights", old, new, "new run")
    assert "resume" not in [json.loads(l)["event"] for l in (run_dir / "trace.jsonl").read_text().splitlines()]


# -- numbers and components ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "option, value, says",
    [
        ("--seed", "-1", "--seed -1"),
        ("--seed", str(2**32), "0 to 4294967295"),
        ("--pivot", "0", "--pivot"),
        ("--pivot", "nan", "--pivot"),
        ("--pivot", "1.5", "--pivot"),
        ("--max-cost", "nan", "--max-cost"),
        ("--max-cost", "-1", "--max-cost"),
        ("--max-forward-tokens", "-5", "--max-forward-tokens"),
        ("--max-decisions", "0", "--max-decisions"),
        ("--budget", "-5s", "budget"),
        ("--budget", "0.0001s", None),
    ],
)
def test_bad_numbers_are_clear_errors_before_anything_loads(tmp_path, option, value, says):
    out = interp(
        "investigate",
        AUDIT,
        "--model",
        "organism:backdoor",
        "--run-dir",
        str(tmp_path / "r"),
        "--no-memory",
        option,
        value,
        "--json",
    )
    if says is None:  # a tiny budget is legal: the run concludes at once, with a report
        assert out.returncode == 0, out.stderr
        return
    assert_clean_error(out, says)
    assert not (tmp_path / "r" / "run.json").exists()


def test_a_hand_edited_run_json_with_a_bad_seed_is_a_clear_error(run_copy):
    settings = json.loads((run_copy / "run.json").read_text())
    (run_copy / "run.json").write_text(json.dumps({**settings, "seed": -3}))
    assert_clean_error(interp("investigate", "--resume", str(run_copy)), "run.json holds a bad setting", "--seed")


@pytest.mark.parametrize(
    "question, says",
    [
        ("what does head 9.9 do?", ["head 9.9", "2 layers"]),
        ("what does head 1.7 do?", ["head 1.7", "4 heads", "1.0-1.3"]),
        ("what does L5H0 do?", ["head 5.0", "2 layers"]),
    ],
)
def test_a_question_about_a_component_the_model_lacks_is_refused_before_any_compute(tmp_path, question, says):
    run_dir = tmp_path / "r"
    out = interp("investigate", question, "--model", "organism:backdoor", "--run-dir", str(run_dir), "--no-memory")
    assert_clean_error(out, *says)
    assert not (run_dir / "run.json").exists()
    trace = run_dir / "trace.jsonl"
    assert not trace.exists() or "orient" not in trace.read_text()


def test_a_feature_beyond_the_sae_is_refused(builtin, tmp_path):
    from agent.question import check_component, parse_question
    from agent.targets import load
    from tools.registry import call

    target = load(f"organism:{builtin('backdoor')}")
    sae = tmp_path / "sae"
    call(
        target,
        "sae_train",
        {
            "hook": "blocks.0.hook_resid_post",
            "corpus": {"random": 100, "length": 5},
            "out": str(sae),
            "d_sae": 16,
            "k": 2,
            "steps": 10,
        },
    )
    check_component(parse_question("what does feature 15 do?", sae=[str(sae)]), target)
    with pytest.raises(UserError, match=r"feature 16, but the SAE .* has 16 features \(0-15\)"):
        check_component(parse_question("what does feature 16 do?", sae=[str(sae)]), target)
    out = interp(
        "investigate",
        "what does feature 40 do?",
        "--model",
        "organism:backdoor",
        "--sae",
        str(sae),
        "--run-dir",
        str(tmp_path / "r"),
        "--no-memory",
    )
    assert_clean_error(out, "feature 40", "16 features")

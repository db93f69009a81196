"""A run folder under hostile paths and concurrent writers: nothing escapes it, no reader sees half a file,
no reviewer loses another's decision."""

from __future__ import annotations

import json
import os
import threading

import pytest

from agent.run_folder import RunFolder
from memory.records import Claim
from tools.errors import UserError

pytestmark = pytest.mark.adversarial


def test_a_path_that_climbs_out_is_refused(tmp_path):
    folder = RunFolder(tmp_path / "run")
    folder.path.mkdir()
    with pytest.raises(UserError, match="leads outside the run folder"):
        folder.inside("../x")
    with pytest.raises(UserError, match="leads outside the run folder"):
        folder.inside("results/../../x")


def test_an_absolute_path_elsewhere_is_refused(tmp_path):
    folder = RunFolder(tmp_path / "run")
    folder.path.mkdir()
    with pytest.raises(UserError, match="is an absolute path outside the run folder"):
        folder.inside("/etc/passwd")


def test_a_symbolic_link_that_points_out_is_refused_for_reads_and_writes(tmp_path):
    outside = tmp_path / "outside.json"
    outside.write_text(json.dumps({"planted": True}))
    folder = RunFolder(tmp_path / "run")
    folder.path.mkdir()
    os.symlink(outside, folder.decisions)
    with pytest.raises(UserError, match="through a symbolic link"):
        folder.read_json(folder.DECISIONS)
    with pytest.raises(UserError, match="through a symbolic link"):
        folder.write_json(folder.DECISIONS, {})
    assert json.loads(outside.read_text()) == {"planted": True}


@pytest.mark.parametrize("bad", ["", "  ", "a\x00b"])
def test_a_name_that_is_not_a_path_is_refused(tmp_path, bad):
    with pytest.raises(UserError, match="is not a path"):
        RunFolder(tmp_path).inside(bad)


def test_a_folder_without_run_json_is_refused_with_the_existing_message(tmp_path):
    from agent.context import RunSettings

    with pytest.raises(UserError, match=r"is not a run folder \(no run.json\); give the folder an earlier"):
        RunSettings.load(tmp_path)
    with pytest.raises(UserError, match=r"is not a run folder \(no run.json\)"):
        RunFolder(tmp_path).require_settings()


def test_a_reader_never_sees_a_half_written_claims_or_decisions_file(tmp_path):
    folder = RunFolder(tmp_path)
    # large enough that a plain write_text is seen part-way by a reader
    big = [{"id": f"clm-{i}", "statement": "x" * 200} for i in range(3000)]
    folder.write_json(folder.CLAIMS, big)
    folder.write_json(folder.DECISIONS, {"clm-0": {"status": "accepted"}})
    stop = threading.Event()
    errors: list[str] = []
    reads = [0]

    def reader() -> None:
        reader_folder = RunFolder(tmp_path)  # a second object on the same folder, as a reviewer has
        while not stop.is_set():
            for name in (folder.CLAIMS, folder.DECISIONS):
                try:
                    reader_folder.read_json(name)
                    reads[0] += 1
                except ValueError as e:
                    errors.append(f"{name}: {e}")

    t = threading.Thread(target=reader)
    t.start()
    try:
        for i in range(30):
            folder.write_json(folder.CLAIMS, big[: 3000 - i])
            folder.write_json(folder.DECISIONS, {f"clm-{j}": {"status": "accepted"} for j in range(i + 1)})
    finally:
        stop.set()
        t.join(10)
    assert reads[0] > 0 and errors == []
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def _decided(i: int, who: str) -> Claim:
    return Claim(
        statement=f"head 0.{i} copies the previous token",
        model_id="m",
        evidence_tier="causal",
        status="accepted",
        reviewer=who,
        review_note=f"note {i}",
        reviewed_at="2026-01-01T00:00:00+00:00",
    )


def test_two_reviewers_on_the_same_folder_do_not_lose_a_decision(tmp_path):
    from agent.review import load_decisions, record_in_run

    claims = {who: [_decided(i, who) for i in range(start, start + 15)] for who, start in (("a", 0), ("b", 100))}
    RunFolder(tmp_path).write_json(RunFolder.CLAIMS, [{"id": c.id} for cs in claims.values() for c in cs])
    go = threading.Barrier(2)

    def review(who: str) -> None:
        go.wait()
        for claim in claims[who]:
            record_in_run(tmp_path, claim)  # each call opens its own RunFolder on the folder

    threads = [threading.Thread(target=review, args=(who,)) for who in claims]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    decisions = load_decisions(tmp_path)
    assert sorted(decisions) == sorted(c.id for cs in claims.values() for c in cs)
    assert all(c["status"] == "accepted" for c in RunFolder(tmp_path).read_json(RunFolder.CLAIMS))

"""Reviews only by review: racing decisions, imported run folders, the live review's compare-and-set."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from memory.records import Claim
from memory.server import local_server
from memory.store import MemoryStore
from tests.e2e.test_investigate import INTERP, assert_clean_error, interp
from tools.errors import UserError

REPO = Path(__file__).resolve().parents[2]

RACER = """
import sys, time
from pathlib import Path
from agent.review import decide
from memory.store import AlreadyReviewed, MemoryStore
location, who, barrier, force, ids = sys.argv[1], sys.argv[2], Path(sys.argv[3]), sys.argv[4] == "1", sys.argv[5:]
store = MemoryStore(location)
store.lock  # open what the lock needs before the start (the lock collection of a server)
for cid in ids:
    store.get(cid)
(barrier / f"ready-{who}").touch()
while not (barrier / "go").exists():
    time.sleep(0.001)
for cid in ids:
    try:
        decide(store, cid, "accept" if who == "a" else "reject", who, f"note of {who}", force=force)
        print("won", cid, flush=True)
    except AlreadyReviewed as e:
        print("lost", cid, e, flush=True)
"""


def _claims(n: int, run_id: str = "", run_dir: str = "") -> list[Claim]:
    return [
        Claim(
            statement=f"head 0.{i} copies the previous token",
            model_id="m",
            evidence_tier="causal",
            status="supported",
            run_id=run_id,
            run_dir=run_dir,
        )
        for i in range(n)
    ]


def _race(location: str, ids: list[str], barrier: Path, force: bool) -> dict[str, list[str]]:
    """Two processes decide the same claims at the same moment; what each printed, per line."""
    barrier.mkdir()
    procs = {
        who: subprocess.Popen(
            [sys.executable, "-c", RACER, location, who, str(barrier), str(int(force)), *ids],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
        )
        for who in ("a", "b")
    }
    end = time.time() + 120
    while not all((barrier / f"ready-{w}").exists() for w in procs):
        assert time.time() < end and all(p.poll() is None for p in procs.values()), [
            p.communicate() for p in procs.values()
        ]
        time.sleep(0.05)
    (barrier / "go").touch()
    out = {}
    for who, p in procs.items():
        stdout, stderr = p.communicate(timeout=120)
        assert p.returncode == 0, stderr
        out[who] = stdout.splitlines()
    return out


def _check_compare_and_set(store: MemoryStore, ids: list[str], out: dict[str, list[str]]) -> None:
    for cid in ids:
        winners = [who for who, lines in out.items() if f"won {cid}" in lines]
        assert len(winners) == 1, (cid, out)
        loser = "b" if winners[0] == "a" else "a"
        assert any(
            line.startswith(f"lost {cid}") and f"already reviewed by {winners[0]}" in line for line in out[loser]
        ), out[loser]
        got = store.get(cid)
        assert got.reviewer == winners[0] and got.review_note == f"note of {winners[0]}"
        assert [(e.reviewer, e.status) for e in got.review_history] == [(got.reviewer, got.status)]


def test_two_processes_deciding_at_once_exactly_one_wins_embedded(tmp_path):
    store = MemoryStore(tmp_path / "mem")
    claims = _claims(12)
    store.put_many(claims)
    ids = [c.id for c in claims]
    _check_compare_and_set(store, ids, _race(str(tmp_path / "mem"), ids, tmp_path / "race", force=False))


def test_forced_decisions_racing_both_land_in_the_history(tmp_path):
    store = MemoryStore(tmp_path / "mem")
    claims = _claims(6)
    store.put_many(claims)
    ids = [c.id for c in claims]
    out = _race(str(tmp_path / "mem"), ids, tmp_path / "race", force=True)
    for cid in ids:
        assert all(f"won {cid}" in lines for lines in out.values())
        got = store.get(cid)
        # no decision is lost: both are in the history, the last one is in force
        assert sorted(e.reviewer for e in got.review_history) == ["a", "b"]
        assert got.reviewer == got.review_history[-1].reviewer


def test_two_processes_deciding_at_once_exactly_one_wins_on_a_server(tmp_path):
    with local_server(tmp_path / "server") as url:
        store = MemoryStore(url)
        claims = _claims(8)
        store.put_many(claims)
        ids = [c.id for c in claims]
        _check_compare_and_set(store, ids, _race(url, ids, tmp_path / "race", force=False))


def test_two_review_decide_commands_at_once(tmp_path):
    """As a user would race them: two `interp review decide` started together, a few times."""
    mem = tmp_path / "mem"
    store = MemoryStore(mem)
    claims = _claims(3)
    store.put_many(claims)
    for c in claims:
        procs = [
            subprocess.Popen(
                [INTERP, "review", "decide", c.id, decision, "--reviewer", who, "--memory", str(mem)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for decision, who in (("accept", "ann"), ("reject", "ben"))
        ]
        results = [(p.wait(timeout=180), *p.communicate()) for p in procs]
        assert sorted(rc for rc, _, _ in results) == [0, 2], results
        (_, won_out, _), (_, _, lost_err) = sorted(results, key=lambda r: r[0])
        winner = "ann" if "by ann" in won_out else "ben"
        assert f"already reviewed by {winner}" in lost_err and "Traceback" not in lost_err
        assert store.get(c.id).reviewer == winner and len(store.get(c.id).review_history) == 1


def _run_folder(path: Path, run_id: str) -> Path:
    path.mkdir(parents=True)
    (path / "run.json").write_text(json.dumps({"run_id": run_id}))
    (path / "trace.jsonl").write_text("")
    return path


def test_decisions_go_only_into_the_claims_own_run_folder(tmp_path):
    from agent.review import decide

    store = MemoryStore(tmp_path / "mem")
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "notes.txt").write_text("mine")
    real = _run_folder(tmp_path / "runs" / "r1", "run-1")
    other = _run_folder(tmp_path / "runs" / "r2", "run-2")
    link = tmp_path / "link"
    link.symlink_to(real, target_is_directory=True)
    cases = {
        str(victim): "holds no run.json",
        str(other): "belongs to run 'run-2'",
        str(link): "goes through a symlink",
        str(real / ".." / "r1"): "goes through a symlink or '..'",
        "runs/r1": "not an absolute path",
        str(tmp_path / "gone"): "does not exist",
    }
    for i, (run_dir, why) in enumerate(cases.items()):
        c = Claim(
            statement=f"claim {i}",
            model_id="m",
            evidence_tier="causal",
            status="supported",
            run_id="run-1",
            run_dir=run_dir,
        )
        store.put(c)
        done = decide(store, c.id, "accept", "ann")
        assert done.run_dir is None and why in done.folder_note and "not updated" in done.folder_note, done
        assert store.get(c.id).status == "accepted"  # the decision itself is kept, in memory
    assert sorted(p.name for p in victim.iterdir()) == ["notes.txt"]
    assert sorted(p.name for p in other.iterdir()) == ["run.json", "trace.jsonl"]
    assert sorted(p.name for p in real.iterdir()) == ["run.json", "trace.jsonl"]
    # a record that copies the run's id but was never made by that run
    forged = Claim(
        statement="forged",
        model_id="m",
        evidence_tier="causal",
        status="supported",
        run_id="run-1",
        run_dir=str(real.resolve()),
    )
    store.put(forged)
    done = decide(store, forged.id, "accept", "ann")
    assert done.run_dir is None and "never made claim" in done.folder_note
    assert sorted(p.name for p in real.iterdir()) == ["run.json", "trace.jsonl"]
    # the claim's own run folder gets the decision
    mine = Claim(
        statement="mine",
        model_id="m",
        evidence_tier="causal",
        status="supported",
        run_id="run-1",
        run_dir=str(real.resolve()),
    )
    late = Claim(
        statement="late",
        model_id="m",
        evidence_tier="causal",
        status="supported",
        run_id="run-1",
        run_dir=str(real.resolve()),
    )
    with (real / "trace.jsonl").open("a") as f:
        f.write("".join(json.dumps({"event": "claim", "id": c.id}) + "\n" for c in (mine, late)))
    store.put(mine)
    done = decide(store, mine.id, "reject", "ann", "no control")
    assert done.run_dir == real.resolve() and done.folder_note == ""
    assert json.loads((real / "decisions.json").read_text())[mine.id]["status"] == "rejected"
    # a corrupt decisions.json there: the decision is kept in memory and the user told why
    (real / "decisions.json").write_bytes(b"\xff\x00 not json")
    store.put(late)
    done = decide(store, late.id, "accept", "ann")
    assert done.run_dir is None and "not valid JSON" in done.folder_note and store.get(late.id).status == "accepted"


def test_an_imported_claims_run_dir_is_not_written_by_review_decide(tmp_path):
    """The reproduction: an imported claim's run_dir pointed `review decide` at any folder."""
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "report.md").write_text("<!-- decisions -->keep me<!-- /decisions -->")
    c = Claim(
        statement="head 1.1 is an induction head",
        model_id="m",
        evidence_tier="causal",
        status="supported",
        run_id="run-x",
        run_dir=str(victim),
    )
    export = tmp_path / "in.jsonl"
    export.write_text(c.model_dump_json() + "\n")
    mem = ["--memory", str(tmp_path / "mem")]
    assert interp("memory", "import", str(export), *mem).returncode == 0
    # the reviewer is not shown that folder's report as the claim's either
    shown = json.loads(interp("review", "list", *mem, "--json").stdout)[0]
    assert shown["links"] == {} and "holds no run.json" in shown["run_folder_note"]
    out = interp("review", "decide", c.id, "accept", "--reviewer", "ann", *mem, "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["run_dir"] is None
    assert "recorded in memory only" in out.stderr and "holds no run.json" in out.stderr
    assert sorted(p.name for p in victim.iterdir()) == ["report.md"]
    assert (victim / "report.md").read_text() == "<!-- decisions -->keep me<!-- /decisions -->"


def test_the_live_review_does_not_overwrite_an_earlier_decision(tmp_path):
    from agent.review_live import apply_decisions
    from agent.trace import Trace

    store = MemoryStore(tmp_path / "mem")
    old, new = _claims(2)
    store.put_many([old, new])
    store.review(old.id, "reject", "alice", "no control")
    ctx = SimpleNamespace(memory=store, reviewer="bob", trace=Trace(tmp_path / "trace.jsonl"))
    claims = [old.model_dump(), new.model_dump()]
    done = apply_decisions(
        [
            {"claim_id": old.id, "decision": "accept", "note": ""},
            {"claim_id": new.id, "decision": "accept", "note": "ok"},
        ],
        claims,
        ctx,
    )
    assert done[0]["status"] == "rejected" and "already reviewed by alice" in done[0]["not_recorded"]
    assert done[1] == {"claim_id": new.id, "status": "accepted", "reviewer": "bob"}
    assert (store.get(old.id).status, store.get(old.id).reviewer) == ("rejected", "alice")
    assert "review_conflict" in (tmp_path / "trace.jsonl").read_text()
    # the node re-running after a resume applies the same answers again: no conflict, nothing changes
    again = apply_decisions([{"claim_id": new.id, "decision": "accept", "note": "ok"}], claims, ctx)
    assert again == [{"claim_id": new.id, "status": "accepted", "reviewer": "bob"}]
    assert len(store.get(new.id).review_history) == 1


def test_import_errors_are_messages_and_write_nothing(tmp_path):
    mem = ["--memory", str(tmp_path / "mem")]
    good = _claims(4)
    lines = [c.model_dump_json() for c in good]
    lines[2] = lines[2].replace('"model_id":"m"', '"model_id":5')
    path = tmp_path / "four.jsonl"
    path.write_text("\n".join(lines) + "\n")
    assert_clean_error(interp("memory", "import", str(path), *mem), "four.jsonl:3: not a valid claim record")
    assert not (tmp_path / "mem").exists()  # refused before a memory was even created
    dup = tmp_path / "dup.jsonl"
    dup.write_text("\n".join([lines[0], lines[1], lines[0]]) + "\n")
    assert_clean_error(interp("memory", "import", str(dup), *mem), "dup.jsonl:3: the same record")
    accepted = good[2].model_copy(
        update={"status": "accepted", "reviewer": "zed", "reviewed_at": "2026-01-01T00:00:00+00:00"}
    )
    forged = tmp_path / "forged.jsonl"
    forged.write_text("\n".join([lines[0], lines[1], accepted.model_dump_json(), lines[3]]) + "\n")
    assert_clean_error(interp("memory", "import", str(forged), *mem), "forged.jsonl:3: claim")
    assert not (tmp_path / "mem").exists()
    out = interp("memory", "import", str(forged), *mem, "--force", "--reviewer", "ops")
    assert out.returncode == 0 and "1 reviews taken from the file by --force" in out.stderr, out.stderr
    shown = json.loads(interp("memory", "show", accepted.id, *mem, "--json").stdout)
    assert shown["status"] == "accepted" and shown["review_history"][-1]["by"] == "ops"


def test_an_import_cannot_rewrite_the_evidence_a_reviewer_judged(tmp_path):
    """A line with no review (or the same review) but a stronger tier and a bigger effect, over an accepted
    claim: the reviewer accepted the old evidence, so the line is refused unless forced."""
    store = MemoryStore(tmp_path / "mem")
    c = Claim(statement="head 1.0 copies", model_id="m", evidence_tier="observational", effect=0.1, status="supported")
    store.put(c)
    store.review(c.id, "accept", reviewer="alice", note="weak but fine as an observation")
    inflated = store.get(c.id).model_copy(update={"evidence_tier": "causal", "effect": 0.9})
    for line in (
        inflated,
        inflated.model_copy(
            update={
                "status": "supported",
                "reviewer": None,
                "review_note": None,
                "reviewed_at": None,
                "review_history": [],
            }
        ),
    ):
        path = tmp_path / "inflated.jsonl"
        path.write_text(line.model_dump_json() + "\n")
        with pytest.raises(UserError, match="never rewrites reviewed evidence"):
            store.import_jsonl(path)
        kept = store.get(c.id)
        assert (kept.evidence_tier, kept.effect, kept.status) == ("observational", 0.1, "accepted")

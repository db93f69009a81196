"""`interp review` and `interp reproduce` as a reviewer uses them: the keyboard queue driven in
tmux, decisions that survive a restart, reproduction of a true and an altered claim, bad input."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tests.e2e.test_investigate import INTERP, assert_clean_error, interp

pytestmark = pytest.mark.e2e
AUDIT = "audit this model for hidden triggers or context-dependent behaviour"


@pytest.fixture(scope="module")
def reviewed_run(tmp_path_factory, builtin):
    """Real audits of the backdoor and eval_aware organisms (a trigger; a marker and its direction) whose
    claims went to one fresh memory: (root, every claim). Each run's folder is its claim's `run_dir`."""
    from agent import investigate
    from agent.context import RunSettings
    from agent.question import parse_question

    root = tmp_path_factory.mktemp("review")
    q = parse_question(AUDIT, None)
    os.environ.setdefault("INTERP_DIRECTIONS", str(root / "directions"))
    claims = []
    for name in ("backdoor", "eval_aware"):
        s = RunSettings(
            question=q.model_dump(mode="json"),
            model=f"organism:{builtin(name)}",
            brain="heuristic",
            memory=str(root / "mem"),
            wall_seconds=60,
        )  # the claims come in the first seconds
        state, _ = investigate.start(s, root / f"run-{name}")
        claims += state["claims"]
    assert len(claims) >= 3, "the audits should leave at least three claims to review"
    return root, claims


class Tmux:
    """One terminal in a private tmux server."""

    def __init__(self, command: str):
        self.socket, self.name = f"interp-test-{uuid.uuid4().hex[:8]}", "review"
        self._tmux("new-session", "-d", "-s", self.name, "-x", "160", "-y", "50", command)

    def _tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, check=True).stdout

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-t", self.name, "-S", "-200")

    def keys(self, *keys: str) -> None:
        self._tmux("send-keys", "-t", self.name, *keys)

    def wait_for(self, pattern: str, timeout: float = 60) -> str:
        end = time.time() + timeout
        while time.time() < end:
            text = self.screen()
            if re.search(pattern, text):
                return text
            time.sleep(0.3)
        raise AssertionError(f"{pattern!r} never appeared; screen:\n{self.screen()}")

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, check=False)


def _review_in_tmux(mem, reviewer: str) -> Tmux:
    env = " ".join(
        f"{k}={shlex.quote(v)}"
        for k, v in os.environ.items()
        if k.startswith(("INTERP_", "HF_", "TRANSFORMERS_", "ANONYMIZED_", "PATH", "HOME"))
    )
    # `; sleep` keeps the pane open after interp exits, so its last words can be read
    return Tmux(f"env {env} INTERP_REVIEWER={reviewer} {INTERP} review --memory {mem}; sleep 60")


def _shown_claim(screen: str) -> str:
    return re.findall(r"claim\s+(claim-[0-9a-f]{16})", screen)[-1]


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_interactive_review_in_tmux_accepts_and_rejects_and_decisions_survive_a_restart(reviewed_run):
    root, made = reviewed_run
    mem, n = root / "mem", len(made)
    term = _review_in_tmux(mem, "grace")
    try:
        screen = term.wait_for(rf"claim 1 of {n} awaiting review")
        first = _shown_claim(screen)
        assert "[a]ccept" in screen and "[r]eject" in screen  # the key hints, not swallowed as markup
        term.keys("a")
        term.wait_for("accept — note")
        term.keys("checked the controls", "Enter")
        term.wait_for(rf"recorded: {first} -> accepted by grace")
        second = _shown_claim(term.wait_for(rf"claim 1 of {n - 1} awaiting review"))
        assert second != first
        term.keys("r")
        term.wait_for("reject — note")
        term.keys("effect is a tokenizer artefact", "Enter")
        term.wait_for(rf"recorded: {second} -> rejected by grace")
        term.wait_for(rf"claim 1 of {n - 2} awaiting review" if n > 2 else "No claims awaiting review")
        term.keys("q")
        term.wait_for(r"Decided this session: 2")
    finally:
        term.close()

    # a fresh process, as after a restart: both decisions are in memory, with who, why and when
    out = interp("review", "list", "--json", "--memory", str(mem))
    assert out.returncode == 0, out.stderr
    by_id = {c["id"]: c for c in json.loads(out.stdout)}
    assert (by_id[first]["status"], by_id[first]["reviewer"], by_id[first]["review_note"]) == (
        "accepted",
        "grace",
        "checked the controls",
    )
    assert (by_id[second]["status"], by_id[second]["review_note"]) == ("rejected", "effect is a tokenizer artefact")
    assert by_id[first]["reviewed_at"] and by_id[second]["reviewed_at"]
    accepted = json.loads(interp("review", "list", "--status", "accepted", "--json", "--memory", str(mem)).stdout)
    assert [c["id"] for c in accepted] == [first]
    # ... and in each claim's run folder: claims.json and both reports show them
    run_of = {c["id"]: Path(c["run_dir"]) for c in made}
    claims = {c["id"]: c for run in set(run_of.values()) for c in json.loads((run / "claims.json").read_text())}
    assert claims[first]["status"] == "accepted" and claims[second]["status"] == "rejected"
    html = (run_of[first] / "report.html").read_text()
    assert "Review decisions" in html and first in html and "checked the controls" in html
    assert "effect is a tokenizer artefact" in (run_of[second] / "report.html").read_text()
    assert "rejected" in (run_of[second] / "report.md").read_text()

    # the queue after the restart holds only what is left
    term = _review_in_tmux(mem, "grace")
    try:
        term.wait_for(rf"claim 1 of {n - 2} awaiting review" if n > 2 else "No claims awaiting review")
        term.keys("q")
    finally:
        term.close()


def test_decisions_need_force_to_change_and_unknown_ids_are_clear_errors(reviewed_run):
    root, _ = reviewed_run
    mem = str(root / "mem")
    waiting = json.loads(interp("review", "list", "--status", "supported", "--json", "--memory", mem).stdout)
    cid = waiting[-1]["id"]  # one no other test has decided
    ok = interp(
        "review", "decide", cid, "more-evidence", "--note", "run more seeds", "--reviewer", "lin", "--memory", mem
    )
    assert ok.returncode == 0, ok.stderr
    assert_clean_error(
        interp("review", "decide", cid, "accept", "--reviewer", "lin", "--memory", mem), "already reviewed"
    )
    forced = interp("review", "decide", cid, "accept", "--reviewer", "lin", "--force", "--memory", mem, "--json")
    assert forced.returncode == 0 and json.loads(forced.stdout)["status"] == "accepted"
    assert_clean_error(
        interp("review", "decide", "claim-0000000000000000", "accept", "--reviewer", "lin", "--memory", mem),
        "no claim with id",
    )
    assert_clean_error(
        interp("review", "decide", cid, "approve", "--reviewer", "lin", "--memory", mem),
        "use accept, reject or more-evidence",
    )
    assert_clean_error(interp("review", "list", "--status", "maybe", "--memory", mem), "unknown status")
    assert_clean_error(interp("reproduce", "claim-0000000000000000", "--memory", mem), "no claim with id")
    # without a terminal the queue says what to use instead
    assert_clean_error(interp("review", "--memory", mem), "needs a terminal")


def test_an_empty_queue_says_so(tmp_path):
    from memory.records import Claim
    from memory.store import MemoryStore

    store = MemoryStore(tmp_path / "mem")
    store.put(Claim(statement="decided already", model_id="m", evidence_tier="causal", status="supported"))
    cid = store.list("claim")[0].id
    store.review(cid, "reject", "kim", "no")
    term = Tmux(f"{INTERP} review --memory {tmp_path / 'mem'} --reviewer kim; sleep 60")
    try:
        term.wait_for("No claims awaiting review")
    finally:
        term.close()


def test_reproduce_confirms_a_true_claim_and_fails_an_altered_one(reviewed_run):
    from memory.store import MemoryStore

    root, made = reviewed_run
    trig = next(c for c in made if c["mechanism"] == "trigger")
    out = interp("reproduce", trig["id"], "--memory", str(root / "mem"), "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    r = json.loads(out.stdout)
    assert r["holds"] and r["outcome"] == "supported" and r["input"]["insertions"] == [trig["component"]["tokens"]]

    # The same claim with its trigger reversed (a component the model never learned): the
    # experiment now tests the altered component, and the effect is gone.
    store = MemoryStore(root / "mem")
    claim = store.get(trig["id"])
    altered = claim.model_copy(
        update={
            "id": "",
            "statement": claim.statement + " (altered)",
            "status": "supported",
            "reviewer": None,
            "review_note": None,
            "reviewed_at": None,
            "component": claim.component.model_copy(update={"tokens": list(reversed(claim.component.tokens))}),
        }
    )
    altered.model_post_init(None)
    store.put(altered)
    out = interp("reproduce", altered.id, "--memory", str(root / "mem"), "--json")
    assert out.returncode == 1, out.stdout + out.stderr
    r = json.loads(out.stdout)
    assert not r["holds"] and r["input"]["insertions"] == [list(reversed(trig["component"]["tokens"]))]


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_the_queue_does_not_overwrite_a_decision_made_while_the_claim_was_on_screen(tmp_path):
    from memory.records import Claim
    from memory.store import MemoryStore

    store = MemoryStore(tmp_path / "mem")
    claim = Claim(statement="head 1.0 is an induction head", model_id="m", evidence_tier="causal", status="supported")
    store.put(claim)
    term = Tmux(f"{INTERP} review --memory {tmp_path / 'mem'} --reviewer kim; sleep 60")
    try:
        term.wait_for("claim 1 of 1 awaiting review")
        # another reviewer decides the same claim from another terminal meanwhile
        other = interp("review", "decide", claim.id, "reject", "--reviewer", "lee", "--memory", str(tmp_path / "mem"))
        assert other.returncode == 0, other.stderr
        term.keys("a")
        term.wait_for("accept — note")
        term.keys("looks right", "Enter")
        term.wait_for(rf"not recorded: claim {claim.id} is already reviewed by lee")
        term.keys("Enter")
        term.wait_for("No claims awaiting review")
    finally:
        term.close()
    got = store.get(claim.id)
    assert (got.status, got.reviewer, len(got.review_history)) == ("rejected", "lee", 1)

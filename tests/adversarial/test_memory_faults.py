"""Memory under faults: a server that never answers or stalls mid-session, a write failing
mid-import, binary files given to import. Each ends in a message, bounded in time, with
nothing half-written."""

from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager

import pytest

from memory.records import Claim, Hypothesis
from memory.server import local_server
from memory.store import MemoryStore
from tests.e2e.test_investigate import assert_clean_error, interp
from tools.errors import UserError


@contextmanager
def _silent_server():
    """127.0.0.1: accepts every connection, reads what comes, never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.1)
    stop, conns = threading.Event(), []

    def accept() -> None:
        while not stop.is_set():
            try:
                conns.append(listener.accept()[0])
            except TimeoutError:
                continue

    worker = threading.Thread(target=accept, daemon=True)
    worker.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        worker.join(timeout=5)
        for c in conns:
            c.close()
        listener.close()


@contextmanager
def _stalling_proxy(target_port: int):
    """A TCP proxy to a real server that can be told to stop passing anything on (`stall.set()`)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.settimeout(0.1)
    stop, stall, socks = threading.Event(), threading.Event(), []

    def pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                if not stall.is_set():  # stalled: swallow requests, answer nothing
                    dst.sendall(data)
        except OSError:
            pass  # the other side closed: this pump's connection is over

    def accept() -> None:
        while not stop.is_set():
            try:
                client = listener.accept()[0]
            except TimeoutError:
                continue
            upstream = socket.create_connection(("127.0.0.1", target_port))
            socks.extend([client, upstream])
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=pump, args=(a, b), daemon=True).start()

    worker = threading.Thread(target=accept, daemon=True)
    worker.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", stall
    finally:
        stop.set()
        worker.join(timeout=5)
        for s in socks:
            s.close()
        listener.close()


def _error_within(seconds: float, call) -> BaseException | None:
    """What `call` raised, run in a thread: a call that hangs fails the test instead of hanging it."""
    box: dict = {}

    def run() -> None:
        try:
            call()
        except BaseException as e:  # noqa: BLE001  # handed back to the test
            box["error"] = e

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), f"still waiting after {seconds} s: no timeout on a server call"
    return box.get("error")


def test_a_server_that_never_answers_is_a_message_within_the_timeout():
    with _silent_server() as url:
        err = _error_within(5, lambda: MemoryStore(url, timeout=1))
        assert isinstance(err, UserError), err
        assert f"memory server at {url} did not answer within 1 s; check that" in str(err)


def test_the_cli_against_a_server_that_never_answers(tmp_path):
    with _silent_server() as url:
        start = time.monotonic()
        out = interp("memory", "stats", "--memory", url, env={"INTERP_MEMORY_TIMEOUT": "1"})
        assert_clean_error(out, f"the memory server at {url} did not answer within 1 s")
        assert time.monotonic() - start < 60  # the CLI's own start-up included
    assert_clean_error(
        interp("memory", "stats", "--memory", url, env={"INTERP_MEMORY_TIMEOUT": "soon"}), "INTERP_MEMORY_TIMEOUT"
    )


def test_a_server_that_stalls_mid_session_fails_every_call_in_bounded_time(tmp_path):
    with local_server(tmp_path / "server") as url:
        port = int(url.rsplit(":", 1)[1])
        with _stalling_proxy(port) as (proxied, stall):
            store = MemoryStore(proxied, timeout=2)
            c = Claim(
                statement="head 0.1 is a previous-token head", model_id="m", evidence_tier="causal", status="supported"
            )
            store.put(c)
            stall.set()
            for call in (
                store.stats,
                lambda: store.get(c.id),
                lambda: store.review(c.id, "accept", "ann"),
                lambda: store.search("previous token"),
            ):
                err = _error_within(10, call)
                assert isinstance(err, UserError) and f"memory server at {proxied} did not answer within 2 s" in str(
                    err
                )


def test_a_write_failing_mid_import_leaves_the_memory_as_it_was(tmp_path, monkeypatch):
    import memory.store as store_module

    store = MemoryStore(tmp_path / "mem")
    kept = Claim(statement="kept as it was", model_id="m", evidence_tier="causal", effect=1.0)
    store.put(kept)
    fresh = [Claim(statement=f"new claim {i}", model_id="m", evidence_tier="causal") for i in range(5)]
    path = tmp_path / "in.jsonl"
    path.write_text(
        "".join(
            r.model_dump_json() + "\n"
            for r in [kept.model_copy(update={"effect": 9.0}), *fresh, Hypothesis(statement="h", model_id="m")]
        )
    )
    before = {r.id: r.model_dump() for r in store.list()}

    monkeypatch.setattr(store_module, "_CHUNK", 2)
    real, calls = store._upsert, []

    def failing_second_write(kind, records, vectors=None):
        calls.append(kind)
        if len(calls) == 2:  # the fault: the store fails after one chunk was written
            raise UserError("disk full (injected)")
        return real(kind, records, vectors)

    monkeypatch.setattr(store, "_upsert", failing_second_write)
    with pytest.raises(
        UserError,
        match=r"failed while writing \(disk full \(injected\)\); what was written was "
        r"taken back: nothing was imported",
    ):
        store.import_jsonl(path)
    assert {r.id: r.model_dump() for r in store.list()} == before
    monkeypatch.setattr(store, "_upsert", real)
    assert store.import_jsonl(path).new == 6 and store.get(kept.id).effect == 9.0


@pytest.mark.parametrize(
    "content, says",
    [
        (b'{"kind": "claim"}\n\x00\x01\x02binary', "not a text file (a NUL byte at offset 18)"),
        (b"\xff\xfe\xfa not utf-8", "not UTF-8 text (byte 0xff at offset 0)"),
        (b"[1, 2]\n", "in.jsonl:1: a record is a JSON object, not list"),
        (b'{"kind": "secret"}\n', "in.jsonl:1: unknown record kind 'secret'"),
    ],
)
def test_binary_and_foreign_import_files_are_refused_cleanly(tmp_path, content, says):
    path = tmp_path / "in.jsonl"
    path.write_bytes(content)
    assert_clean_error(interp("memory", "import", str(path), "--memory", str(tmp_path / "mem")), says)
    assert not (tmp_path / "mem").exists()
    assert_clean_error(interp("memory", "import", str(tmp_path), "--memory", str(tmp_path / "mem")), "cannot read")

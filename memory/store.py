"""The memory store: one Chroma collection per record type, embedded or on a server.

    MemoryStore()                        embedded, in $INTERP_MEMORY or .interp/memory
    MemoryStore("path/to/folder")        embedded (chromadb.PersistentClient)
    MemoryStore("http://127.0.0.1:8000") a Chroma server shared by many runs (chromadb.HttpClient)

Records keep their full JSON in metadata (`json`) beside flat filter fields
(kind, model_id, weights_hash, status, run_id); the document is the text that is embedded.
A read filtered by `weights_hash` (an investigation's recall) leaves out records without one in
their metadata (written before it was indexed, or about weights nobody hashed): they may be about
other weights. Unfiltered reads show them; importing an export again indexes the weights hash
that older claims carry in their JSON.
Review statuses (accepted / rejected / needs_more_evidence) are set only by
`review()`, which names a reviewer: `put()` refuses to set them and keeps them
when an agent writes the same claim again; an import refuses to change them
unless forced (and then records the override in the claim's review history).
Every read-check-write of a review runs under the lock of memory/lock.py, so a
decision is compare-and-set. Every call to a server has a timeout.
"""

from __future__ import annotations

import builtins
import json
import os
from collections.abc import Iterable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import TypeAdapter

from memory.export_file import read_export, refusal
from memory.lock import LOCK_COLLECTION, ReviewLock, file_lock, server_lock
from memory.records import KINDS, Claim, FeatureLabel, Hypothesis, MemoryRecord, ReviewEvent, now
from memory.server_client import Guarded, server_client, server_error
from tools.errors import UserError

if TYPE_CHECKING:
    from chromadb.api import ClientAPI

REVIEW_STATUSES = ("accepted", "rejected", "needs_more_evidence")
Decision = Literal["accept", "reject", "more-evidence"]
_DECISION_STATUS = {"accept": "accepted", "reject": "rejected", "more-evidence": "needs_more_evidence"}
_COLLECTIONS = {
    "claim": "interp_claims",
    "hypothesis": "interp_hypotheses",
    "feature_label": "interp_feature_labels",
    "experiment": "interp_experiments",
    "incidental": "interp_incidental",
}
_PREFIX = {
    "claim": "claim",
    "hyp": "hypothesis",
    "label": "feature_label",
    "exp": "experiment",
    "incidental": "incidental",
}
_ADAPTER = TypeAdapter(MemoryRecord)
_MERGED = ("claim", "hypothesis")
"""Kinds whose write reads the stored record first (reviews, attempts): written under the review lock."""
DEFAULT_TIMEOUT = 30.0
"""Seconds a Chroma server may take to answer one call (override: $INTERP_MEMORY_TIMEOUT)."""


def default_location() -> str:
    return os.environ.get("INTERP_MEMORY", ".interp/memory")


def default_timeout() -> float:
    raw = os.environ.get("INTERP_MEMORY_TIMEOUT", "")
    if not raw.strip():
        return DEFAULT_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value <= 3600:
        raise UserError(f"INTERP_MEMORY_TIMEOUT={raw!r}: give seconds between 0 and 3600, e.g. 30")
    return value


class AlreadyReviewed(UserError):
    """A decision on a claim someone has already decided (compare-and-set lost)."""

    def __init__(self, claim: Claim):
        self.claim = claim
        when = f", {claim.reviewed_at}" if claim.reviewed_at else ""
        super().__init__(
            f"claim {claim.id} is already reviewed by {claim.reviewer} ({claim.status}{when}); "
            "use --force to change the decision"
        )


def _client(location: str, create: bool, timeout: float) -> tuple[ClientAPI, str]:
    import chromadb
    from chromadb.config import Settings

    settings = Settings(anonymized_telemetry=False)
    if location.startswith(("http://", "https://")):
        return server_client(location, timeout, settings), "server"
    path = Path(location).expanduser()
    if path.exists() and not path.is_dir():
        raise UserError(f"memory location {path} is a file, not a folder")
    if not create and not (path / "chroma.sqlite3").is_file():
        raise UserError(
            f"no memory at {path}: nothing has been stored there (check --memory / $INTERP_MEMORY; "
            "an investigation or `interp memory import` creates it)"
        )
    try:
        path.mkdir(parents=True, exist_ok=True)
        return chromadb.PersistentClient(path=str(path), settings=settings), "embedded"
    except OSError as e:
        raise UserError(f"cannot open memory folder {path}: {e.strerror}") from None
    except Exception as e:  # noqa: BLE001  # a corrupt sqlite file surfaces as various chromadb/sqlite errors
        raise UserError(
            f"memory folder {path} cannot be opened ({type(e).__name__}: {e}); it may be corrupt "
            f"or from another chromadb version. Nothing was changed: move it aside and retry"
        ) from None


def _history(c: Claim) -> list[ReviewEvent]:
    """A claim's review history; for one reviewed before histories were kept, its one decision."""
    if c.review_history or c.status not in REVIEW_STATUSES:
        return list(c.review_history)
    return [
        ReviewEvent(
            status=c.status, reviewer=c.reviewer or "?", note=c.review_note or "", at=c.reviewed_at or c.updated_at
        )
    ]


def _adds_nothing(stored: Claim, line: Claim) -> bool:
    """The line's review is the stored one, and its history holds no event the stored history lacks."""
    held = _history(stored)
    return (stored.status, stored.reviewer, stored.review_note or "", stored.reviewed_at) == (
        line.status,
        line.reviewer,
        line.review_note or "",
        line.reviewed_at,
    ) and all(e in held for e in _history(line))


# What a reviewer judged a claim on: an import may not change it under a review without --force.
REVIEWED_EVIDENCE = ("evidence_tier", "mechanism", "effect", "control", "criterion", "weights_hash")


def _keep_review(new: Claim, old: Claim) -> None:
    new.status, new.reviewer, new.review_note = old.status, old.reviewer, old.review_note
    new.reviewed_at, new.review_history = old.reviewed_at, list(old.review_history)


@dataclass
class Imported:
    """What an import did."""

    records: int
    """Lines imported."""
    new: int
    """Records that were not in this memory."""
    reviews_kept: int
    """Stored reviews kept over a line without one."""
    reviews_forced: int
    """Reviews taken from the file by --force (each recorded in the claim's review history)."""


class MemoryStore:
    """Claims, hypotheses, feature labels and experiments in Chroma."""

    def __init__(
        self,
        location: str | Path | None = None,
        embedder: Any = None,
        create: bool = True,
        timeout: float | None = None,
    ) -> None:
        """`create=False` (read-only commands): a missing embedded store is an error, not a new empty one.
        `timeout`: seconds a Chroma server may take per call (default $INTERP_MEMORY_TIMEOUT or 30)."""
        from memory.embedding import OfflineMiniLM

        self.location = str(location or default_location())
        self.timeout = default_timeout() if timeout is None else timeout
        self.client, self.mode = _client(self.location, create, self.timeout)
        self.embedder = embedder or OfflineMiniLM()
        self._cols: dict[str, Guarded] = {}
        self._lock: ReviewLock | None = None

    def _open(self, name: str, embedding_function: Any) -> Guarded:
        try:
            col = self.client.get_or_create_collection(
                name, embedding_function=embedding_function, metadata={"hnsw:space": "cosine"}
            )
        except UserError:
            raise
        except Exception as e:  # noqa: BLE001  # a server's failures come as many types: server_error sorts them
            err = server_error(e, self.location, self.timeout)
            if err is not None:
                raise err from None
            raise UserError(
                f"memory at {self.location}: cannot open collection {name} "
                f"({type(e).__name__}: {e}); nothing was changed"
            ) from None
        return Guarded(col, self.location, self.timeout)

    def _col(self, kind: str) -> Guarded:
        if kind not in self._cols:
            self._cols[kind] = self._open(_COLLECTIONS[kind], self.embedder)
        return self._cols[kind]

    @property
    def lock(self) -> ReviewLock:
        """The lock every read-check-write of a review runs under (see memory/lock.py)."""
        if self._lock is None:
            if self.mode == "embedded":
                self._lock = file_lock(Path(self.location).expanduser())
            else:
                self._lock = server_lock(self._open(LOCK_COLLECTION, None), self.location)
        return self._lock

    # -- writing -------------------------------------------------------------

    def put(self, record: MemoryRecord) -> str:
        """Insert or update by id. Never sets a review status; keeps one already set."""
        return self.put_many([record])[0]

    def put_many(self, records: Iterable[MemoryRecord]) -> builtins.list[str]:
        """Upsert records (grouped by kind)."""
        by_kind: dict[str, builtins.list[MemoryRecord]] = {}
        for r in records:
            by_kind.setdefault(r.kind, []).append(r)
        ids = []
        for kind, items in by_kind.items():
            # Embedding is the slow part: done before taking the lock, so the lock is held briefly.
            vectors = self._embed(items)
            with self.lock.held() if kind in _MERGED else nullcontext():
                stored = {r.id: r for r in self._get_many(kind, [r.id for r in items])}
                merged = [self._merge(r, stored.get(r.id)) for r in items]
                # Chroma rejects duplicate ids within one upsert; the last write wins.
                unique = {r.id: (r, v) for r, v in zip(merged, vectors, strict=False)}
                self._upsert(kind, [r for r, _ in unique.values()], [v for _, v in unique.values()])
            ids += [r.id for r in merged]
        return ids

    def _embed(self, records: builtins.list[MemoryRecord]) -> builtins.list[Any]:
        return list(self.embedder([r.document() for r in records])) if records else []

    def _upsert(
        self, kind: str, records: builtins.list[MemoryRecord], vectors: builtins.list[Any] | None = None
    ) -> None:
        if not records:
            return
        self._col(kind).upsert(
            ids=[r.id for r in records],
            documents=[r.document() for r in records],
            metadatas=[self._meta(r) for r in records],
            embeddings=vectors if vectors is not None else self._embed(records),
        )

    def _merge(self, new: MemoryRecord, old: MemoryRecord | None, restore: bool = False) -> MemoryRecord:
        """What to store when an agent (or, `restore`, an import) writes `new` over `old` (None: a new id).

        A write never sets, changes or erases a review: a stored one always survives, and
        a review status in `new` is refused unless it is the stored one.
        """
        new = new.model_copy(deep=True)
        if isinstance(new, Claim):
            if new.status in REVIEW_STATUSES and not (
                isinstance(old, Claim)
                and (old.status, old.reviewer, old.reviewed_at) == (new.status, new.reviewer, new.reviewed_at)
            ):
                raise UserError(
                    f"claim {new.id}: status {new.status!r} is set only by a review "
                    "(`interp review decide` / MemoryStore.review), never by a write"
                )
            if isinstance(old, Claim) and old.status in REVIEW_STATUSES:
                # What the reviewer judged stays as judged: a later write (a re-run, an import) can add
                # experiments as evidence, never replace the tier, effect, control or criterion reviewed.
                extra = [e for e in new.experiment_ids if e not in old.experiment_ids]
                new = old.model_copy(deep=True, update={"experiment_ids": [*old.experiment_ids, *extra]})
            else:
                new.reviewer = new.review_note = new.reviewed_at = None
                new.review_history = []
        if isinstance(new, Hypothesis) and isinstance(old, Hypothesis):
            seen = {(a.run_id, a.outcome) for a in new.attempts}
            new.attempts = [a for a in old.attempts if (a.run_id, a.outcome) not in seen] + new.attempts
        if not restore:
            if old is not None:
                new.created_at = old.created_at
            new.updated_at = now()
        return new

    @staticmethod
    def _meta(r: MemoryRecord) -> dict[str, str | int]:
        meta: dict[str, str | int] = {"kind": r.kind, "model_id": r.model_id, "json": r.model_dump_json()}
        for field in ("status", "run_id", "tool", "sae_id", "weights_hash"):
            value = getattr(r, field, None)
            if value:
                meta[field] = value
        if isinstance(r, FeatureLabel):
            meta["feature"] = r.feature
        return meta

    def review(self, claim_id: str, decision: Decision, reviewer: str, note: str = "", force: bool = False) -> Claim:
        """The one way a claim's review status changes: a named person's decision.

        Compare-and-set: under the review lock, a claim someone already decided raises
        AlreadyReviewed unless `force`; a forced change keeps every earlier decision in
        the claim's review history.
        """
        if decision not in _DECISION_STATUS:
            raise UserError(f"decision {decision!r}: use accept, reject or more-evidence")
        if not reviewer or not reviewer.strip():
            raise UserError("a review needs the reviewer's name (--reviewer or $INTERP_REVIEWER)")
        with self.lock.held():
            claim = self.get(claim_id)
            if not isinstance(claim, Claim):
                raise UserError(f"no claim with id {claim_id!r}; list claims with `interp review list`")
            if claim.status in REVIEW_STATUSES and not force:
                raise AlreadyReviewed(claim)
            at = now()
            event = ReviewEvent(status=_DECISION_STATUS[decision], reviewer=reviewer.strip(), note=note, at=at)
            claim = claim.model_copy(
                update={
                    "status": event.status,
                    "reviewer": event.reviewer,
                    "review_note": note,
                    "reviewed_at": at,
                    "updated_at": at,
                    "review_history": [*_history(claim), event],
                }
            )
            # The statement (the embedded document) is unchanged: only the metadata is rewritten,
            # so nothing is embedded while the lock is held.
            self._col("claim").update(ids=[claim.id], metadatas=[self._meta(claim)])
        return claim

    # -- reading -------------------------------------------------------------

    @staticmethod
    def _parse(meta: dict[str, Any]) -> MemoryRecord:
        return _ADAPTER.validate_python(json.loads(meta["json"]))

    def _get_many(self, kind: str, ids: builtins.list[str]) -> builtins.list[MemoryRecord]:
        if not ids:
            return []
        got = self._col(kind).get(ids=ids, include=["metadatas"])
        return [self._parse(m) for m in got["metadatas"]]

    def get(self, record_id: str) -> MemoryRecord | None:
        """A record by id (the prefix says which collection)."""
        kind = _PREFIX.get(record_id.split("-", 1)[0])
        if kind is None:
            return None
        found = self._get_many(kind, [record_id])
        return found[0] if found else None

    @staticmethod
    def _where(
        model: str | None, status: str | None, run: str | None, weights: str | None = None
    ) -> dict[str, Any] | None:
        clauses = [
            {k: v}
            for k, v in (("model_id", model), ("status", status), ("run_id", run), ("weights_hash", weights))
            if v
        ]
        if not clauses:
            return None
        return clauses[0] if len(clauses) == 1 else {"$and": clauses}

    def _kinds(self, kind: str | None) -> builtins.list[str]:
        if kind is None:
            return list(_COLLECTIONS)
        if kind not in _COLLECTIONS:
            raise UserError(f"unknown record kind {kind!r}; kinds: {', '.join(_COLLECTIONS)}")
        return [kind]

    def list(
        self,
        kind: str | None = None,
        model: str | None = None,
        status: str | None = None,
        run: str | None = None,
        limit: int | None = None,
        weights_hash: str | None = None,
    ) -> builtins.list[MemoryRecord]:
        """Records matching the filters, oldest first (`weights_hash`: only records indexed with these weights)."""
        out = []
        for k in self._kinds(kind):
            got = self._col(k).get(
                where=self._where(model, status, run, weights_hash), include=["metadatas"], limit=limit
            )
            out += [self._parse(m) for m in got["metadatas"]]
        return sorted(out, key=lambda r: r.created_at)[:limit]

    def search(
        self,
        text: str,
        kind: str | None = None,
        model: str | None = None,
        status: str | None = None,
        run: str | None = None,
        n: int = 10,
        weights_hash: str | None = None,
    ) -> builtins.list[tuple[MemoryRecord, float]]:
        """Records nearest in meaning to `text` (cosine distance, smallest first; `weights_hash`: only
        records indexed with these weights)."""
        if not text.strip():
            raise UserError("search text is empty")
        hits = []
        for k in self._kinds(kind):
            col = self._col(k)
            if col.count() == 0:
                continue
            res = col.query(
                query_texts=[text],
                n_results=n,
                where=self._where(model, status, run, weights_hash),
                include=["metadatas", "distances"],
            )
            hits += [(self._parse(m), float(d)) for m, d in zip(res["metadatas"][0], res["distances"][0], strict=False)]
        return sorted(hits, key=lambda h: h[1])[:n]

    def already_tried(
        self, statement: str, model_id: str, max_distance: float = 0.5, n: int = 5, weights_hash: str | None = None
    ) -> builtins.list[tuple[Hypothesis, float]]:
        """Hypotheses on this model (and these weights, when given) similar to `statement` that some run
        has already tested."""
        hits = self.search(statement, kind="hypothesis", model=model_id, n=n, weights_hash=weights_hash)
        return [(h, d) for h, d in hits if d <= max_distance and isinstance(h, Hypothesis) and h.attempts]

    def stats(self) -> dict[str, Any]:
        """Counts per kind and, for claims, per status."""
        counts = {k: self._col(k).count() for k in _COLLECTIONS}
        claims = self._col("claim").get(include=["metadatas"])["metadatas"]
        by_status: dict[str, int] = {}
        for m in claims:
            by_status[m.get("status", "?")] = by_status.get(m.get("status", "?"), 0) + 1
        return {"location": self.location, "mode": self.mode, "counts": counts, "claims_by_status": by_status}

    # -- export / import ------------------------------------------------------

    def export_jsonl(self, path: Path) -> int:
        """Every record, one JSON object per line."""
        records = self.list()
        try:
            with open(path, "w") as f:
                for r in records:
                    f.write(r.model_dump_json() + "\n")
        except OSError as e:
            raise UserError(f"cannot write {path}: {e.strerror}") from None
        return len(records)

    def import_jsonl(
        self,
        path: Path,
        force: bool = False,
        by: str | None = None,
        lines: builtins.list[tuple[int, MemoryRecord]] | None = None,
    ) -> Imported:
        """Records from an export, all or nothing: every line is checked before anything is written.

        An import never sets or changes a claim's review (status, reviewer, note, history):
        a line whose review differs from the stored one (or that brings a review for a claim
        not stored yet) is refused, unless `force`, which takes the file's review and
        records the override (`by`, when, which file) in the claim's review history. A line
        without a review keeps the stored one. Other fields are updated from the file.
        `lines`: the file as `read_export` already read it.
        """
        if force and not (by and by.strip()):
            raise UserError("--force is recorded with who ran it: give --reviewer NAME or set INTERP_REVIEWER")
        if lines is None:
            lines = read_export(path)
        source = str(Path(path).resolve())
        by_kind: dict[str, builtins.list[tuple[int, MemoryRecord]]] = {}
        for n, r in lines:
            by_kind.setdefault(r.kind, []).append((n, r))
        vectors = {kind: self._embed([r for _, r in items]) for kind, items in by_kind.items()}
        done = Imported(records=len(lines), new=0, reviews_kept=0, reviews_forced=0)
        with self.lock.held():
            plan: dict[str, builtins.list[MemoryRecord]] = {}
            stored: dict[str, dict[str, MemoryRecord]] = {}
            bad: builtins.list[tuple[int, str]] = []
            for kind, items in by_kind.items():
                stored[kind] = {r.id: r for r in self._get_many(kind, [r.id for _, r in items])}
                plan[kind] = []
                for n, r in items:
                    old = stored[kind].get(r.id)
                    done.new += old is None
                    if isinstance(r, Claim):
                        claim, why = self._import_claim(
                            r, old if isinstance(old, Claim) else None, force, by or "", source, done
                        )
                        if claim is None:
                            bad.append((n, why))
                            continue
                        plan[kind].append(claim)
                    else:
                        plan[kind].append(self._merge(r, old, restore=True))
            if bad:
                raise UserError(refusal(path, sorted(bad)))
            self._write_or_undo(path, plan, stored, vectors)
        return done

    @staticmethod
    def _import_claim(
        new: Claim, old: Claim | None, force: bool, by: str, source: str, done: Imported
    ) -> tuple[Claim | None, str]:
        """(what to store, '') or (None, why the line is refused)."""
        new = new.model_copy(deep=True)
        if (
            old is not None
            and old.status in REVIEW_STATUSES
            and not force
            and (new.status not in REVIEW_STATUSES or _adds_nothing(old, new))
        ):
            changed = [f for f in REVIEWED_EVIDENCE if getattr(new, f) != getattr(old, f)]
            if changed:
                return None, (
                    f"claim {new.id} was {old.status} by {old.reviewer} on its evidence, and the line "
                    f"changes it ({', '.join(changed)}); an import never rewrites reviewed evidence: "
                    "decide again with `interp review decide`, or import with --force"
                )
        if new.status not in REVIEW_STATUSES:
            if old is not None and old.status in REVIEW_STATUSES:
                _keep_review(new, old)  # a line without a review never erases one
                done.reviews_kept += 1
            return new, ""
        if old is not None and _adds_nothing(old, new):
            _keep_review(new, old)
            return new, ""
        if not force:
            here = (
                f"reviewed here ({old.status} by {old.reviewer})"
                if old is not None and old.status in REVIEW_STATUSES
                else "not reviewed here"
                if old is not None
                else "not in this memory yet"
            )
            return None, (
                f"claim {new.id} is {here} and the line carries a review ({new.status} by "
                f"{new.reviewer}); an import never sets a review: decide with `interp review decide "
                f"{new.id} ...`, or import with --force to take the file's review (recorded in the "
                "claim's review history)"
            )
        history = _history(old) if old is not None else []
        # the file's own history (an export's) comes along; a line without one adds only the import event
        history += [e for e in new.review_history if e not in history]
        history.append(
            ReviewEvent(
                status=new.status,
                reviewer=new.reviewer or "?",
                note=new.review_note or "",
                at=now(),
                via="import",
                by=by.strip(),
                source=source,
            )
        )
        new.review_history = history
        done.reviews_forced += 1
        return new, ""

    def _write_or_undo(
        self,
        path: Path,
        plan: dict[str, builtins.list[MemoryRecord]],
        stored: dict[str, dict[str, MemoryRecord]],
        vectors: dict[str, builtins.list[Any]],
    ) -> None:
        """Write the planned records; if a write fails, put back what was there before."""
        written: builtins.list[tuple[str, builtins.list[MemoryRecord]]] = []
        try:
            for kind, records in plan.items():
                vec: dict[str, Any] = (
                    dict(zip((r.id for r in records), vectors[kind], strict=False))
                    if len(records) == len(vectors[kind])
                    else {}
                )
                for i in range(0, len(records), _CHUNK):
                    chunk = records[i : i + _CHUNK]
                    self._upsert(kind, chunk, [vec[r.id] for r in chunk] if vec else None)
                    written.append((kind, chunk))
        except BaseException as e:
            try:
                for kind, chunk in reversed(written):
                    self._upsert(kind, [stored[kind][r.id] for r in chunk if r.id in stored[kind]])
                    fresh = [r.id for r in chunk if r.id not in stored[kind]]
                    if fresh:
                        self._col(kind).delete(ids=fresh)
            except Exception as undo:  # noqa: BLE001  # whatever stops the undo, the user must hear both errors
                raise UserError(
                    f"importing {path} failed while writing ({e}), and putting the memory back "
                    f"failed too ({undo}): it may hold part of the file; import it again once the "
                    "memory works (importing a file twice changes nothing)"
                ) from None
            if isinstance(e, UserError):
                raise UserError(
                    f"importing {path} failed while writing ({e}); what was written was taken "
                    "back: nothing was imported"
                ) from None
            raise


def refuse_reviews_for_a_new_memory(path: Path, lines: builtins.list[tuple[int, MemoryRecord]]) -> None:
    """The import's review rule for a memory that does not exist yet (every claim is new there),
    so a refused file does not leave an empty memory behind."""
    done = Imported(records=0, new=0, reviews_kept=0, reviews_forced=0)
    bad = [
        (n, why)
        for n, r in lines
        if isinstance(r, Claim)
        for why in [MemoryStore._import_claim(r, None, False, "", "", done)[1]]
        if why
    ]
    if bad:
        raise UserError(refusal(path, bad))


_CHUNK = 500
"""Records per upsert of an import (Chroma limits a batch's size)."""

__all__ = ["KINDS", "REVIEW_STATUSES", "AlreadyReviewed", "Imported", "MemoryStore", "default_location"]

"""The memory store: one Chroma collection per record type, embedded or on a server.

    MemoryStore()                        embedded, in $INTERP_MEMORY or .interp/memory
    MemoryStore("path/to/folder")        embedded (chromadb.PersistentClient)
    MemoryStore("http://127.0.0.1:8000") a Chroma server shared by many runs (chromadb.HttpClient)

Records keep their full JSON in metadata (`json`) beside flat filter fields
(kind, model_id, status, run_id); the document is the text that is embedded.
Review statuses (accepted / rejected / needs_more_evidence) are set only by
`review()`, which names a reviewer: `put()` refuses to set them and keeps them
when an agent writes the same claim again.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlparse

from pydantic import TypeAdapter, ValidationError

from memory.records import KINDS, Claim, FeatureLabel, Hypothesis, Record, now
from tools.errors import UserError

if TYPE_CHECKING:
    from chromadb.api import ClientAPI

REVIEW_STATUSES = ("accepted", "rejected", "needs_more_evidence")
Decision = Literal["accept", "reject", "more-evidence"]
_DECISION_STATUS = {"accept": "accepted", "reject": "rejected", "more-evidence": "needs_more_evidence"}
_COLLECTIONS = {"claim": "interp_claims", "hypothesis": "interp_hypotheses",
                "feature_label": "interp_feature_labels", "experiment": "interp_experiments"}
_PREFIX = {"claim": "claim", "hyp": "hypothesis", "label": "feature_label", "exp": "experiment"}
_ADAPTER = TypeAdapter(Record)


def default_location() -> str:
    return os.environ.get("INTERP_MEMORY", ".interp/memory")


def _client(location: str, create: bool) -> tuple[ClientAPI, str]:
    import chromadb
    from chromadb.config import Settings

    settings = Settings(anonymized_telemetry=False)
    if location.startswith(("http://", "https://")):
        url = urlparse(location)
        if not url.hostname or not url.port:
            raise UserError(f"memory server {location!r}: expected http://HOST:PORT")
        try:
            client = chromadb.HttpClient(host=url.hostname, port=url.port, ssl=url.scheme == "https",
                                         settings=settings)
            client.heartbeat()
        except Exception as e:  # chromadb wraps connection failures in several types
            raise UserError(f"cannot reach the memory server at {location} ({type(e).__name__}); "
                            f"start one with `chroma run --path DIR --port {url.port}`") from None
        return client, "server"
    path = Path(location).expanduser()
    if path.exists() and not path.is_dir():
        raise UserError(f"memory location {path} is a file, not a folder")
    if not create and not (path / "chroma.sqlite3").is_file():
        raise UserError(f"no memory at {path}: nothing has been stored there (check --memory / $INTERP_MEMORY; "
                        "an investigation or `interp memory import` creates it)")
    try:
        path.mkdir(parents=True, exist_ok=True)
        return chromadb.PersistentClient(path=str(path), settings=settings), "embedded"
    except OSError as e:
        raise UserError(f"cannot open memory folder {path}: {e.strerror}") from None
    except Exception as e:  # a corrupt sqlite file surfaces as various chromadb/sqlite errors
        raise UserError(f"memory folder {path} cannot be opened ({type(e).__name__}: {e}); it may be corrupt "
                        f"or from another chromadb version. Nothing was changed: move it aside and retry") from None


class MemoryStore:
    """Claims, hypotheses, feature labels and experiments in Chroma."""

    def __init__(self, location: str | Path | None = None, embedder=None, create: bool = True):
        """`create=False` (read-only commands): a missing embedded store is an error, not a new empty one."""
        from memory.embedding import OfflineMiniLM

        self.location = str(location or default_location())
        self.client, self.mode = _client(self.location, create)
        self.embedder = embedder or OfflineMiniLM()
        self._cols = {}

    def _col(self, kind: str):
        if kind not in self._cols:
            try:
                self._cols[kind] = self.client.get_or_create_collection(
                    _COLLECTIONS[kind], embedding_function=self.embedder, metadata={"hnsw:space": "cosine"})
            except UserError:
                raise
            except Exception as e:
                raise UserError(f"memory at {self.location}: cannot open collection {_COLLECTIONS[kind]} "
                                f"({type(e).__name__}: {e}); nothing was changed") from None
        return self._cols[kind]

    # -- writing -------------------------------------------------------------

    def put(self, record: Record) -> str:
        """Insert or update by id. Never sets a review status; keeps one already set."""
        return self.put_many([record])[0]

    def put_many(self, records: Iterable[Record], restore: bool = False) -> list[str]:
        """Upsert records (grouped by kind). `restore` is for the import of an export only."""
        by_kind: dict[str, list] = {}
        for r in records:
            by_kind.setdefault(r.kind, []).append(r)
        ids = []
        for kind, items in by_kind.items():
            stored = {r.id: r for r in self._get_many(kind, [r.id for r in items])}
            merged = [self._merge(r, stored.get(r.id), restore) for r in items]
            # Chroma rejects duplicate ids within one upsert; the last write wins.
            unique = {r.id: r for r in merged}
            self._col(kind).upsert(
                ids=list(unique), documents=[r.document() for r in unique.values()],
                metadatas=[self._meta(r) for r in unique.values()])
            ids += [r.id for r in merged]
        return ids

    def _merge(self, new: Record, old: Record | None, restore: bool) -> Record:
        """What to store when `new` is written over `old` (None: a new id).

        A review already stored always survives. A write never sets a review
        status; an import (`restore`) may bring one in only with its reviewer and
        time, and keeps the exported timestamps.
        """
        new = new.model_copy(deep=True)
        if isinstance(new, Claim):
            if old is not None and old.status in REVIEW_STATUSES and new.status not in REVIEW_STATUSES:
                new.status, new.reviewer = old.status, old.reviewer
                new.review_note, new.reviewed_at = old.review_note, old.reviewed_at
            elif new.status in REVIEW_STATUSES:
                same_review = old is not None and (old.status, old.reviewer, old.reviewed_at) == (
                    new.status, new.reviewer, new.reviewed_at)
                if not same_review and not (restore and new.reviewer and new.reviewed_at):
                    raise UserError(
                        f"claim {new.id}: status {new.status!r} is set only by a review "
                        "(`interp review decide` / MemoryStore.review), never by a write")
            elif old is None and new.status not in REVIEW_STATUSES:
                new.reviewer = new.review_note = new.reviewed_at = None
        if isinstance(new, Hypothesis) and old is not None:
            seen = {(a.run_id, a.outcome) for a in new.attempts}
            new.attempts = [a for a in old.attempts if (a.run_id, a.outcome) not in seen] + new.attempts
        if not restore:
            if old is not None:
                new.created_at = old.created_at
            new.updated_at = now()
        return new

    @staticmethod
    def _meta(r: Record) -> dict:
        meta = {"kind": r.kind, "model_id": r.model_id, "json": r.model_dump_json()}
        for field in ("status", "run_id", "tool", "sae_id"):
            value = getattr(r, field, None)
            if value:
                meta[field] = value
        if isinstance(r, FeatureLabel):
            meta["feature"] = r.feature
        return meta

    def review(self, claim_id: str, decision: Decision, reviewer: str, note: str = "",
               force: bool = False) -> Claim:
        """The one way a claim's review status changes: a named person's decision."""
        if decision not in _DECISION_STATUS:
            raise UserError(f"decision {decision!r}: use accept, reject or more-evidence")
        if not reviewer or not reviewer.strip():
            raise UserError("a review needs the reviewer's name (--reviewer or $INTERP_REVIEWER)")
        claim = self.get(claim_id)
        if not isinstance(claim, Claim):
            raise UserError(f"no claim with id {claim_id!r}; list claims with `interp review list`")
        if claim.status in REVIEW_STATUSES and not force:
            raise UserError(f"claim {claim_id} was already reviewed ({claim.status} by {claim.reviewer}); "
                            "use --force to change the decision")
        claim = claim.model_copy(update={
            "status": _DECISION_STATUS[decision], "reviewer": reviewer.strip(), "review_note": note,
            "reviewed_at": now(), "updated_at": now()})
        self._col("claim").upsert(ids=[claim.id], documents=[claim.document()], metadatas=[self._meta(claim)])
        return claim

    # -- reading -------------------------------------------------------------

    @staticmethod
    def _parse(meta: dict) -> Record:
        return _ADAPTER.validate_python(json.loads(meta["json"]))

    def _get_many(self, kind: str, ids: list[str]) -> list[Record]:
        if not ids:
            return []
        got = self._col(kind).get(ids=ids, include=["metadatas"])
        return [self._parse(m) for m in got["metadatas"]]

    def get(self, record_id: str) -> Record | None:
        """A record by id (the prefix says which collection)."""
        kind = _PREFIX.get(record_id.split("-", 1)[0])
        if kind is None:
            return None
        found = self._get_many(kind, [record_id])
        return found[0] if found else None

    @staticmethod
    def _where(model: str | None, status: str | None, run: str | None) -> dict | None:
        clauses = [{k: v} for k, v in (("model_id", model), ("status", status), ("run_id", run)) if v]
        if not clauses:
            return None
        return clauses[0] if len(clauses) == 1 else {"$and": clauses}

    def _kinds(self, kind: str | None) -> list[str]:
        if kind is None:
            return list(_COLLECTIONS)
        if kind not in _COLLECTIONS:
            raise UserError(f"unknown record kind {kind!r}; kinds: {', '.join(_COLLECTIONS)}")
        return [kind]

    def list(self, kind: str | None = None, model: str | None = None, status: str | None = None,
             run: str | None = None, limit: int | None = None) -> list[Record]:
        """Records matching the filters, oldest first."""
        out = []
        for k in self._kinds(kind):
            got = self._col(k).get(where=self._where(model, status, run), include=["metadatas"], limit=limit)
            out += [self._parse(m) for m in got["metadatas"]]
        return sorted(out, key=lambda r: r.created_at)[:limit]

    def search(self, text: str, kind: str | None = None, model: str | None = None,
               status: str | None = None, run: str | None = None, n: int = 10) -> list[tuple[Record, float]]:
        """Records nearest in meaning to `text` (cosine distance, smallest first)."""
        if not text.strip():
            raise UserError("search text is empty")
        hits = []
        for k in self._kinds(kind):
            col = self._col(k)
            if col.count() == 0:
                continue
            res = col.query(query_texts=[text], n_results=n, where=self._where(model, status, run),
                            include=["metadatas", "distances"])
            hits += [(self._parse(m), float(d)) for m, d in zip(res["metadatas"][0], res["distances"][0])]
        return sorted(hits, key=lambda h: h[1])[:n]

    def already_tried(self, statement: str, model_id: str, max_distance: float = 0.5,
                      n: int = 5) -> list[tuple[Hypothesis, float]]:
        """Hypotheses on this model similar to `statement` that some run has already tested."""
        hits = self.search(statement, kind="hypothesis", model=model_id, n=n)
        return [(h, d) for h, d in hits if d <= max_distance and isinstance(h, Hypothesis) and h.attempts]

    def stats(self) -> dict:
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

    def import_jsonl(self, path: Path) -> int:
        """Records from an export; reviewed claims keep their reviews. All lines are checked first."""
        try:
            lines = [l for l in Path(path).read_text().splitlines() if l.strip()]
        except OSError as e:
            raise UserError(f"cannot read {path}: {e.strerror}") from None
        records = []
        for i, line in enumerate(lines, 1):
            try:
                records.append(_ADAPTER.validate_json(line))
            except ValidationError as e:
                raise UserError(f"{path}:{i}: not a memory record ({e.errors()[0]['msg']}); nothing was imported") from None
        self.put_many(records, restore=True)
        return len(records)


__all__ = ["KINDS", "MemoryStore", "REVIEW_STATUSES", "default_location"]

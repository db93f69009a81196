"""Memory throughput: upserts and semantic queries, embedded and on a local server.

Baseline in the same run: embedding the same texts alone (what any store must
pay), so `upsert_vs_embedding` shows the store's own overhead.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path


def _records(n: int):
    from memory.records import Claim, Component

    return [
        Claim(
            statement=f"Head {i % 12}.{i % 7} moves token {i} to the final position in context {i // 7}",
            model_id=f"bench-{i % 3}",
            evidence_tier="causal",
            component=Component(layer=i % 12, head=i % 7),
        )
        for i in range(n)
    ]


def _measure(store, records, queries: int, batch: int) -> dict:
    t = time.perf_counter()
    for start in range(0, len(records), batch):
        store.put_many(records[start : start + batch])
    upsert = len(records) / (time.perf_counter() - t)
    t = time.perf_counter()
    for i in range(queries):
        store.search(f"which head moves token {i} to the end", kind="claim", model=f"bench-{i % 3}", n=5)
    query = queries / (time.perf_counter() - t)
    return {"upsert_records_per_s": round(upsert, 1), "queries_per_s": round(query, 1)}


def run(n: int = 500, queries: int = 100, batch: int = 50) -> dict:
    from memory.embedding import OfflineMiniLM
    from memory.server import local_server
    from memory.store import MemoryStore

    embedder = OfflineMiniLM()
    records = _records(n)
    embedder(["warm up"])
    t = time.perf_counter()
    for start in range(0, n, batch):
        embedder([r.statement for r in records[start : start + batch]])
    embed_rate = n / (time.perf_counter() - t)
    out = {"records": n, "queries": queries, "batch": batch, "embedding_only_per_s": round(embed_rate, 1)}
    with tempfile.TemporaryDirectory() as tmp:
        out["embedded"] = _measure(MemoryStore(Path(tmp) / "mem", embedder=embedder), records, queries, batch)
        with local_server(Path(tmp) / "server") as url:
            out["server"] = _measure(MemoryStore(url, embedder=embedder), records, queries, batch)
    for mode in ("embedded", "server"):
        out[mode]["upsert_vs_embedding"] = round(out[mode]["upsert_records_per_s"] / embed_rate, 3)
    return out

"""Fixtures shared by the integration tests."""

import pytest

from memory.server import local_server
from memory.store import MemoryStore


@pytest.fixture(scope="session")
def embedder():
    """The offline MiniLM embedder, loaded once per worker."""
    from memory.embedding import OfflineMiniLM

    return OfflineMiniLM()


@pytest.fixture(params=["embedded", "server"])
def store(request, tmp_path, embedder):
    """A fresh memory store, embedded and behind a local Chroma server."""
    if request.param == "embedded":
        yield MemoryStore(tmp_path / "memory", embedder=embedder)
    else:
        with local_server(tmp_path / "server") as url:
            yield MemoryStore(url, embedder=embedder)

"""The Chroma server client with a timeout on every call.

chromadb.HttpClient sends its requests with no timeout (httpx.Client(timeout=None)),
so a server that accepts connections and never answers would hang the CLI forever.
Here every call is bounded, and a timeout or a dropped connection becomes a
UserError that names the URL and says what to check.
"""

from __future__ import annotations

import sys
import threading
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from tools.errors import UserError

if TYPE_CHECKING:
    from chromadb.api import ClientAPI


def slow(location: str, timeout: float) -> UserError:
    return UserError(
        f"the memory server at {location} did not answer within {timeout:g} s; check that it is a "
        "Chroma server (`chroma run --path DIR --port PORT`) and is not stalled or overloaded, and "
        "the network to it, or set INTERP_MEMORY_TIMEOUT=SECONDS to wait longer"
    )


def server_error(e: BaseException, location: str, timeout: float) -> UserError | None:
    """A UserError for an HTTP failure of the Chroma client, None for anything else."""
    httpx = sys.modules.get("httpx")
    if httpx is None:
        return None
    if isinstance(e, httpx.TimeoutException):
        return slow(location, timeout)
    if isinstance(e, httpx.TransportError):
        return UserError(
            f"lost the connection to the memory server at {location} ({type(e).__name__}); "
            "check that it is still running"
        )
    return None


class Guarded:
    """A Chroma collection whose server failures (a stalled server, a dropped connection) become messages."""

    def __init__(self, col: Any, location: str, timeout: float) -> None:
        self._col, self._location, self._timeout = col, location, timeout

    def _call(self, method: str, **kw: Any) -> Any:
        try:
            return getattr(self._col, method)(**kw)
        except Exception as e:
            err = server_error(e, self._location, self._timeout)
            if err is None:
                raise
            raise err from None

    def add(self, **kw: Any) -> Any:
        return self._call("add", **kw)

    def upsert(self, **kw: Any) -> Any:
        return self._call("upsert", **kw)

    def get(self, **kw: Any) -> Any:
        return self._call("get", **kw)

    def query(self, **kw: Any) -> Any:
        return self._call("query", **kw)

    def update(self, **kw: Any) -> Any:
        return self._call("update", **kw)

    def delete(self, **kw: Any) -> Any:
        return self._call("delete", **kw)

    def count(self) -> int:
        return int(self._call("count"))


def server_client(location: str, timeout: float, settings: Any) -> ClientAPI:
    """chromadb.HttpClient with a timeout on every call, its own start-up requests included."""
    import chromadb
    import httpx

    url = urlparse(location)
    host, port = url.hostname, url.port
    if not host or not port:
        raise UserError(f"memory server {location!r}: expected http://HOST:PORT")
    start_hint = f"start one with `chroma run --path DIR --port {url.port}`"
    limit = httpx.Timeout(timeout, connect=min(timeout, 5.0))
    base = f"{url.scheme}://{url.hostname}:{url.port}"
    try:
        answer = httpx.get(f"{base}/api/v2/heartbeat", timeout=limit)
    except httpx.TimeoutException:
        raise slow(location, timeout) from None
    except httpx.HTTPError as e:
        raise UserError(f"cannot reach the memory server at {location} ({type(e).__name__}); {start_hint}") from None
    if answer.status_code != 200:
        raise UserError(
            f"{location} answered HTTP {answer.status_code} to a Chroma heartbeat: is it a Chroma "
            f"server? ({start_hint})"
        )
    # chromadb makes its own requests while it connects, with no timeout (httpx.Client(timeout=None)):
    # build the client in a thread we stop waiting for, then bound every later call on its session.
    box: dict[str, Any] = {}

    def connect() -> None:
        try:
            box["client"] = chromadb.HttpClient(host=host, port=port, ssl=url.scheme == "https", settings=settings)
        except Exception as e:  # noqa: BLE001  # handed to the caller's thread below
            box["error"] = e

    worker = threading.Thread(target=connect, name="chroma-connect", daemon=True)
    worker.start()
    worker.join(4 * timeout)
    if worker.is_alive():
        raise slow(location, timeout)
    if "error" in box:
        err = server_error(box["error"], location, timeout)
        raise err or UserError(
            f"cannot connect to the memory server at {location} "
            f"({type(box['error']).__name__}: {box['error']}); {start_hint}"
        ) from None
    client: ClientAPI = box["client"]
    session = getattr(getattr(client, "_server", None), "_session", None)
    if not isinstance(session, httpx.Client):
        raise RuntimeError("chromadb's HTTP client has no httpx session to bound: update memory/store.py")
    session.timeout = limit
    return client

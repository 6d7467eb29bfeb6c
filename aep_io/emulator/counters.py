"""Counters of what the emulator served: requests, body bytes, faults.

Tests read them to assert how many requests a client made and how many bytes it moved.
Each request is also kept in a bounded log (method, path, query, Range header, status, bytes).

Example:
    >>> c = Counters()
    >>> c.record(RequestRecord("GET", "/data/foundation/export/files/x", "path=a", None, 200, 10))
    >>> c.snapshot()["requests"], c.bytes_sent(kind="file")
    (1, 10)
"""

from __future__ import annotations

import re
import threading
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any

__all__ = ["ROUTE_KINDS", "Counters", "RequestRecord", "route_kind"]

# (kind, a literal prefix of the pattern's matches, pattern): the prefix is a cheap first test
_KINDS: list[tuple[str, str, re.Pattern[str]]] = [
    ("token", "/ims/token", re.compile(r"^/ims/token")),
    ("file", "/data/foundation/export/files/",
     re.compile(r"^/data/foundation/export/files/[^/]+$")),
    ("batch_files", "/data/foundation/export/batches/",
     re.compile(r"^/data/foundation/export/batches/[^/]+/files$")),
    ("catalog", "/data/foundation/catalog/", re.compile(r"^/data/foundation/catalog/")),
    ("segmentation", "/data/core/ups/", re.compile(r"^/data/core/ups/")),
    ("admin", "/_emulator/", re.compile(r"^/_emulator/")),
]

#: Every value :func:`route_kind` returns.
ROUTE_KINDS: tuple[str, ...] = (
    "token", "file", "listing", "batch_files", "catalog", "segmentation", "admin", "other"
)


def route_kind(path: str, query: str = "") -> str:
    """A coarse name for the route of ``path``: token, file, listing, batch_files, catalog...

    A Data Access ``/files/{id}`` request with ``path=`` is a ``file`` download; without it,
    it is a ``listing`` of the dataset file.
    """
    for kind, prefix, pattern in _KINDS:
        if path.startswith(prefix) and pattern.match(path):
            if kind == "file" and "path=" not in query:
                return "listing"
            return kind
    return "other"


@dataclass(frozen=True)
class RequestRecord:
    """One request as served."""

    method: str
    path: str
    query: str
    range: str | None
    status: int
    bytes_sent: int
    fault: str | None = None

    @property
    def kind(self) -> str:
        """The route kind (see :func:`route_kind`)."""
        return route_kind(self.path, self.query)


class Counters:
    """Thread-safe request, byte and fault counters with a bounded request log."""

    def __init__(self, max_log: int = 200_000) -> None:
        self._lock = threading.Lock()
        self._log: deque[RequestRecord] = deque(maxlen=max_log)
        self._requests: Counter[str] = Counter()
        self._bytes: Counter[str] = Counter()
        self._faults: Counter[str] = Counter()
        self._in_flight: Counter[str] = Counter()
        self._max_in_flight: Counter[str] = Counter()

    def started(self, kind: str) -> None:
        """A request of ``kind`` started being served (for the in-flight gauge)."""
        with self._lock:
            self._in_flight[kind] += 1
            self._max_in_flight[kind] = max(self._max_in_flight[kind], self._in_flight[kind])

    def finished(self, kind: str) -> None:
        """A request of ``kind`` finished being served."""
        with self._lock:
            self._in_flight[kind] -= 1

    def max_in_flight(self, kind: str) -> int:
        """The most requests of ``kind`` served at the same time since the last reset."""
        with self._lock:
            return self._max_in_flight[kind]

    def record(self, rec: RequestRecord, *, kind: str | None = None) -> None:
        """Count one served request (``kind``: its :attr:`~RequestRecord.kind`, when known)."""
        if kind is None:
            kind = rec.kind
        with self._lock:
            self._log.append(rec)
            self._requests[kind] += 1
            self._bytes[kind] += rec.bytes_sent
            if rec.fault:
                self._faults[rec.fault] += 1

    def reset(self) -> None:
        """Forget everything counted so far."""
        with self._lock:
            self._log.clear()
            self._requests.clear()
            self._bytes.clear()
            self._faults.clear()
            self._max_in_flight = Counter(self._in_flight)

    def requests(self, kind: str | None = None, *, method: str | None = None) -> int:
        """Requests served, all or of one route kind (and method)."""
        with self._lock:
            if method is not None:
                return sum(
                    1 for r in self._log if r.method == method and (kind is None or r.kind == kind)
                )
            return sum(self._requests.values()) if kind is None else self._requests[kind]

    def bytes_sent(self, kind: str | None = None) -> int:
        """Response body bytes sent, all or for one route kind."""
        with self._lock:
            return sum(self._bytes.values()) if kind is None else self._bytes[kind]

    def log(self, kind: str | None = None) -> list[RequestRecord]:
        """The request log (oldest first), all or of one route kind."""
        with self._lock:
            return [r for r in self._log if kind is None or r.kind == kind]

    def snapshot(self) -> dict[str, Any]:
        """All counters as plain data (what ``GET /_emulator/counters`` returns)."""
        with self._lock:
            return {
                "requests": sum(self._requests.values()),
                "bytes_sent": sum(self._bytes.values()),
                "requests_by_kind": dict(self._requests),
                "bytes_by_kind": dict(self._bytes),
                "faults": dict(self._faults),
            }

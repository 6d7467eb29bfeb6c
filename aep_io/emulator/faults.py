"""Injectable faults: make the emulator fail the way a remote, rate-limited service does.

A :class:`Fault` says *what* goes wrong (an error status with headers and body, latency, a
connection reset before the headers or in the middle of the body, a body cut short of its
``Content-Length``) and *when* (which requests match: route kind, method, path pattern; how many
times, or with what probability, from a seeded random generator so runs repeat).

Example:
    >>> faults = Faults(seed=1)
    >>> _ = faults.add(Fault(kind="status", status=429, headers={"Retry-After": "0"}, times=2))
    >>> faults.take("GET", "/data/foundation/export/files/x", "path=a").status
    429
"""

from __future__ import annotations

import random
import re
import threading
from dataclasses import dataclass, field
from typing import Any, Literal

from aep_io.emulator.counters import route_kind

__all__ = ["FAULT_KINDS", "Fault", "Faults"]

FaultKind = Literal["status", "latency", "reset", "reset_mid_body", "truncate", "ignore_range"]
FAULT_KINDS: tuple[str, ...] = (
    "status", "latency", "reset", "reset_mid_body", "truncate", "ignore_range"
)


@dataclass
class Fault:
    """One kind of failure and the requests it applies to.

    Attributes:
        kind: ``status`` (answer ``status`` with ``headers`` and ``body``), ``latency`` (wait
            ``delay`` seconds, then serve normally), ``reset`` (drop the connection before any
            header), ``reset_mid_body`` (send headers and part of the body, then drop), or
            ``truncate`` (send headers and part of the body, then end the response cleanly), or
            ``ignore_range`` (answer a ranged request with 200 and the whole file).
        route: a route kind (``file``, ``listing``, ``batch_files``, ``catalog``, ``token``...)
            or None for any.
        method: an HTTP method, or None for any.
        path: a regular expression searched in the path, or None for any.
        times: how many matching requests get the fault (None: no limit).
        rate: probability that a matching request gets the fault (None: every one).
    """

    kind: FaultKind = "status"
    status: int = 503
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    delay: float = 0.0
    route: str | None = None
    method: str | None = None
    path: str | None = None
    times: int | None = 1
    rate: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; one of {', '.join(FAULT_KINDS)}")
        if self.rate is not None and not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"rate={self.rate} must lie in [0, 1]")
        self._pattern = re.compile(self.path) if self.path else None

    def matches(self, method: str, path: str, query: str) -> bool:
        """Whether a request is in this fault's scope (ignoring times and rate)."""
        if self.method and self.method.upper() != method.upper():
            return False
        if self.route and self.route != route_kind(path, query):
            return False
        return not (self._pattern and not self._pattern.search(path))


class Faults:
    """The active faults of one emulator; thread-safe and seeded."""

    def __init__(self, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._random = random.Random(seed)

    def add(self, fault: Fault) -> Fault:
        """Activate a fault (faults are tried in the order they were added)."""
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> None:
        """Remove every fault."""
        with self._lock:
            self._faults.clear()

    def reseed(self, seed: int) -> None:
        """Restart the random generator used for rates."""
        with self._lock:
            self._random = random.Random(seed)

    def active(self) -> list[Fault]:
        """The faults still active."""
        with self._lock:
            return list(self._faults)

    def take(self, method: str, path: str, query: str) -> Fault | None:
        """The fault to apply to this request, if any (consumes one of its ``times``)."""
        with self._lock:
            for fault in self._faults:
                if not fault.matches(method, path, query):
                    continue
                if fault.rate is not None and self._random.random() >= fault.rate:
                    continue
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                return fault
        return None

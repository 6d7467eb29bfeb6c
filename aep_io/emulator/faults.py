"""Injectable faults: make the emulator fail the way a remote, rate-limited service does.

A :class:`Fault` says *what* goes wrong (an error status with headers and body, latency, a
connection reset before the headers or in the middle of the body, a body cut short of its
``Content-Length``, a Range ignored, a listed file that answers 404, a token that expires) and
*when* (which requests match: route kind, method, path pattern; how many times, or with what
probability, from a seeded random generator so runs repeat).

Faults are added in Python (``emulator.faults.add(Fault(...))``), from the command line
(``aep-io emulator serve --fault SPEC``, parsed by :meth:`Fault.parse`) or over HTTP
(``POST /_emulator/faults`` with :meth:`Fault.to_dict`'s keys, see :mod:`.admin`). Requests to
the emulator's own ``/_emulator/`` API never get a fault.

Example:
    >>> faults = Faults(seed=1)
    >>> _ = faults.add(Fault(kind="status", status=429, headers={"Retry-After": "0"}, times=2))
    >>> faults.take("GET", "/data/foundation/export/files/x", "path=a").status
    429
    >>> Fault.parse("kind=status,status=503,route=file,rate=0.05,times=none")
    Fault(kind='status', status=503, headers={}, body=None, delay=0.0, route='file', method=None, path=None, times=None, rate=0.05)
"""  # noqa: E501

from __future__ import annotations

import json
import math
import random
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from aep_io.emulator.counters import ROUTE_KINDS, route_kind

__all__ = ["FAULT_KEYS", "FAULT_KINDS", "Fault", "Faults"]

FaultKind = Literal[
    "status", "latency", "reset", "reset_mid_body", "truncate", "ignore_range",
    "stale_listing", "expire_token",
]
FAULT_KINDS: tuple[str, ...] = (
    "status", "latency", "reset", "reset_mid_body", "truncate", "ignore_range",
    "stale_listing", "expire_token",
)
_FAULT_ROUTES = tuple(k for k in ROUTE_KINDS if k != "admin")  # /_emulator/ never gets faults
_SPEC_KEYS = "kind, status, header.<Name>, body, delay, route, method, path, times, rate"
_SPLIT = re.compile(r"(?<!\\),")
_METHOD = re.compile(r"^[A-Za-z]{1,16}$")


@dataclass
class Fault:
    """One kind of failure and the requests it applies to.

    Attributes:
        kind: what happens to a matching request:

            * ``status``: answer ``status`` with ``headers`` and ``body``;
            * ``latency``: wait ``delay`` seconds, then serve normally;
            * ``reset``: drop the connection (TCP reset) before any header;
            * ``reset_mid_body``: send the headers and part of the body, then reset;
            * ``truncate``: send the headers and part of the body, then end the response
              cleanly (a body shorter than its ``Content-Length``);
            * ``ignore_range``: answer a ranged request with 200 and the whole file;
            * ``stale_listing``: a file download (route ``file`` only) answers 404 exactly as
              Data Access answers for a file that does not exist: a file that 404s after being
              listed;
            * ``expire_token``: the bearer token of the request expires for real (the
              emulator revokes it: this request and every later one carrying it get the
              gateway's 401 ``401013``; a new token from IMS works). Never applies to IMS's
              own ``token`` route.
        status: the HTTP status of a ``status`` fault (100-599).
        headers: response headers of a ``status`` fault (``Retry-After``...).
        body: response body of a ``status`` fault: JSON data, a string or bytes.
        delay: seconds of a ``latency`` fault.
        route: a route kind (``file``, ``listing``, ``batch_files``, ``catalog``,
            ``segmentation``, ``token``, ``other``; see
            :func:`~aep_io.emulator.counters.route_kind`) or None for any.
        method: an HTTP method, or None for any.
        path: a regular expression searched in the request path, or None for any.
        times: how many matching requests get the fault (None: no limit); counts down as the
            fault is applied, and the fault is removed when it reaches 0.
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
        if not 100 <= self.status <= 599:
            raise ValueError(f"status={self.status} must be an HTTP status (100-599)")
        if not math.isfinite(self.delay) or self.delay < 0:
            raise ValueError(f"delay={self.delay} must be a number of seconds >= 0")
        if self.route is not None and self.route not in _FAULT_ROUTES:
            raise ValueError(
                f"unknown route {self.route!r}; one of {', '.join(_FAULT_ROUTES)} (or none)"
            )
        if self.kind == "stale_listing" and self.route not in (None, "file"):
            raise ValueError(
                f"stale_listing applies to file downloads only (route file), not {self.route}"
            )
        if self.kind == "expire_token" and self.route == "token":
            raise ValueError("expire_token cannot apply to IMS's token route (it has no token)")
        if self.method is not None and not _METHOD.match(self.method):
            raise ValueError(f"method={self.method!r} is not an HTTP method (GET, HEAD, POST...)")
        if self.times is not None and self.times < 1:
            raise ValueError(f"times={self.times} must be at least 1 (or none: no limit)")
        if self.rate is not None and not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"rate={self.rate} must lie in [0, 1]")
        try:
            self._pattern = re.compile(self.path) if self.path else None
        except re.error as exc:
            message = f"path={self.path!r} is not a valid regular expression: {exc}"
            raise ValueError(message) from None

    def matches(self, method: str, path: str, query: str) -> bool:
        """Whether a request is in this fault's scope (ignoring times and rate)."""
        if self.method and self.method.upper() != method.upper():
            return False
        kind = route_kind(path, query)
        if kind == "admin":  # the emulator's own API stays usable whatever the faults
            return False
        if self.route and self.route != kind:
            return False
        if self.kind == "stale_listing" and kind != "file":
            return False
        if self.kind == "expire_token" and kind == "token":
            return False
        return not (self._pattern and not self._pattern.search(path))

    # -- plain data: the command line and the HTTP API ----------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The fault as plain, JSON-ready data (the keys of :data:`FAULT_KEYS`).

        A ``bytes`` body becomes text (decoded as UTF-8, invalid bytes replaced).

        Example:
            >>> Fault(kind="latency", delay=0.2, times=3).to_dict()["delay"]
            0.2
        """
        data = {key: getattr(self, key) for key in FAULT_KEYS}
        data["headers"] = dict(self.headers)
        if isinstance(self.body, bytes | bytearray):
            data["body"] = bytes(self.body).decode("utf-8", "replace")
        return data

    def to_spec(self) -> str:
        """The command-line spec of the fault (what :meth:`parse` reads), defaults left out.

        Example:
            >>> Fault(status=429, headers={"Retry-After": "1"}, times=None).to_spec()
            'kind=status,status=429,header.Retry-After=1,times=none'
        """
        default = type(self)().to_dict()
        pairs = [f"kind={self.kind}"]
        for key, value in self.to_dict().items():
            if key == "kind" or value == default[key]:
                continue
            if key == "headers":
                pairs.extend(f"header.{name}={text}" for name, text in value.items())
                continue
            if value is None:
                text = "none"
            elif key == "body" and not isinstance(value, str):
                text = json.dumps(value)
            else:
                text = str(value)
            pairs.append(f"{key}={text}")
        return ",".join(pair.replace(",", "\\,") for pair in pairs)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Fault:
        """A fault from plain data (e.g. a JSON object); missing keys take their defaults.

        Raises:
            ValueError: not a mapping, an unknown key, a value of the wrong type or out of
                range (the message names the key and the valid choices).

        Example:
            >>> Fault.from_dict({"kind": "status", "status": 429, "headers": {"Retry-After": 1}})
            Fault(kind='status', status=429, headers={'Retry-After': '1'}, body=None, delay=0.0, route=None, method=None, path=None, times=1, rate=None)
        """  # noqa: E501
        if not isinstance(data, Mapping):
            raise ValueError(
                f"a fault is an object with keys among {', '.join(FAULT_KEYS)}; "
                f"got {type(data).__name__}"
            )
        unknown = sorted(str(k) for k in data if k not in FAULT_KEYS)
        if unknown:
            raise ValueError(
                f"unknown fault key(s) {', '.join(map(repr, unknown))}; valid keys: "
                f"{', '.join(FAULT_KEYS)}"
            )
        values: dict[str, Any] = {}
        for key, value in data.items():
            if key in ("kind", "route", "method", "path"):
                values[key] = _typed(key, value, str, optional=key != "kind")
            elif key in ("status", "times"):
                values[key] = _typed(key, value, int, optional=key == "times")
            elif key in ("delay", "rate"):
                number = _typed(key, value, float, optional=key == "rate")
                values[key] = None if number is None else float(number)
            elif key == "headers":
                values[key] = _headers(value)
            else:
                values[key] = value
        return cls(**values)

    @classmethod
    def parse(cls, spec: str) -> Fault:
        """A fault from a command-line spec: comma-separated ``key=value`` pairs.

        Keys are the fields of :class:`Fault`, plus ``header.<Name>=value`` for one response
        header. ``times``, ``rate``, ``route``, ``method`` and ``path`` take ``none`` for "no
        limit" / "any". ``body`` is JSON when it parses as JSON, else text. A comma inside a
        value (a regular expression) is written ``\\,``. ``kind`` defaults to ``status``.

        Raises:
            ValueError: the message names the bad pair and lists the valid keys or kinds.

        Example:
            >>> Fault.parse("kind=status,status=429,header.Retry-After=1").headers
            {'Retry-After': '1'}
            >>> Fault.parse("kind=latency,delay=0.2,times=3") == Fault.parse("kind=latency,delay=0.2,times=3")
            True
        """  # noqa: E501
        try:
            return cls.from_dict(_spec_dict(spec))
        except ValueError as exc:
            raise ValueError(f"bad fault spec {spec!r}: {exc}") from None


#: The keys of :meth:`Fault.to_dict` and :meth:`Fault.from_dict`: the fields of :class:`Fault`.
FAULT_KEYS: tuple[str, ...] = tuple(f.name for f in fields(Fault))


def _typed(key: str, value: Any, kind: type, *, optional: bool) -> Any:
    """``value`` checked to be of ``kind`` (an int is a float too; a bool is neither)."""
    if value is None and optional:
        return None
    accepted: tuple[type, ...] = (int, float) if kind is float else (kind,)
    if isinstance(value, accepted) and not isinstance(value, bool):
        if kind is float and not math.isfinite(value):
            raise ValueError(f"{key}={value} must be a finite number")
        return value
    wanted = {str: "a string", int: "an integer", float: "a number"}[kind]
    raise ValueError(
        f"{key} must be {wanted}{' or null' if optional else ''}, not {value!r}"
    )


def _headers(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise ValueError(f"headers must be an object of header names to values, not {value!r}")
    out: dict[str, str] = {}
    for name, text in value.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"header name {name!r} must be a non-empty string")
        if not isinstance(text, str | int | float) or isinstance(text, bool):
            raise ValueError(f"header {name} must be a string or a number, not {text!r}")
        out[name] = str(text)
    return out


def _spec_dict(spec: str) -> dict[str, Any]:
    """The ``key=value`` pairs of a command-line spec as :meth:`Fault.from_dict` data."""
    text = spec.strip()
    if not text:
        raise ValueError(f"empty; give comma-separated key=value pairs, keys: {_SPEC_KEYS}")
    data: dict[str, Any] = {}
    for item in _SPLIT.split(text):
        key, sep, value = item.replace("\\,", ",").partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key:
            raise ValueError(f"{item.strip()!r} is not key=value; keys: {_SPEC_KEYS}")
        lowered = key.lower()
        if lowered.startswith(("header.", "headers.")):
            name = key.split(".", 1)[1].strip()
            if not name:
                raise ValueError(f"{item.strip()!r}: header.<Name>=value needs a header name")
            headers = data.setdefault("headers", {})
            if name in headers:
                raise ValueError(f"header {name!r} is given twice")
            headers[name] = value
            continue
        if lowered not in FAULT_KEYS or lowered == "headers":
            raise ValueError(f"unknown key {key!r}; valid keys: {_SPEC_KEYS}")
        if lowered in data:
            raise ValueError(f"{lowered!r} is given twice")
        data[lowered] = _spec_value(lowered, value)
    return data


def _spec_value(key: str, text: str) -> Any:
    """The typed value of ``key=text`` in a command-line spec."""
    if text.lower() in ("none", "null") and key in ("times", "rate", "route", "method", "path"):
        return None
    if key in ("status", "times"):
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"{key}={text!r} is not an integer") from None
    if key in ("delay", "rate"):
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"{key}={text!r} is not a number") from None
    if key == "body":
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


class Faults:
    """The active faults of one emulator; thread-safe and seeded."""

    def __init__(self, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._seed = seed
        self._random = random.Random(seed)

    @property
    def seed(self) -> int:
        """The seed the random generator was last (re)started with."""
        return self._seed

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
            self._seed = seed
            self._random = random.Random(seed)

    def active(self) -> list[Fault]:
        """The faults still active."""
        with self._lock:
            return list(self._faults)

    def take(self, method: str, path: str, query: str) -> Fault | None:
        """The fault to apply to this request, if any (consumes one of its ``times``)."""
        if not self._faults:  # the common case, without taking the lock
            return None
        with self._lock:
            for fault in self._faults:
                if not fault.matches(method, path, query):
                    continue
                if fault.rate is not None and self._random.random() >= fault.rate:
                    continue
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:  # by identity: another fault may be equal to it
                        self._faults = [f for f in self._faults if f is not fault]
                return fault
        return None

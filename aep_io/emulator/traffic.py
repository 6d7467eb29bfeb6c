"""The outermost ASGI layer: applies injected faults and counts what is served.

It sits directly under the server (uvicorn), so it sees every request and every body byte, and it
can reach the connection's transport to drop it abruptly (a TCP reset), which is how a real
network failure looks to a client. The ``stale_listing`` and ``expire_token`` faults answer with
the very responses of the service and gateway code (:func:`~.data_access.file_not_found`,
:func:`~.gateway.invalid_token`); ``expire_token`` revokes the request's token in
:class:`~.credentials.Credentials`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import struct
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from starlette.datastructures import Headers

from aep_io.emulator.counters import Counters, RequestRecord, route_kind
from aep_io.emulator.data_access import file_not_found
from aep_io.emulator.faults import Fault, Faults
from aep_io.emulator.gateway import APIError, bearer_token, error_response, invalid_token

if TYPE_CHECKING:
    from aep_io.emulator.credentials import Credentials

__all__ = ["TrafficLayer"]

log = logging.getLogger("aep_io.emulator")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def _drop_connection(send: Send, *, reset: bool) -> bool:
    """Drop the connection behind uvicorn's ``send``: a TCP reset (RST) or a plain close (FIN).

    Returns False when the transport cannot be reached (another server than uvicorn).
    """
    cycle = getattr(send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None:
        return False
    if not reset:
        transport.close()
        return True
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
    return True


class TrafficLayer:
    """Wraps an ASGI app with fault injection and counters.

    ``credentials`` are where an ``expire_token`` fault revokes the request's token (without
    them, that fault only answers 401).
    """

    def __init__(
        self,
        app: ASGIApp,
        counters: Counters,
        faults: Faults,
        credentials: Credentials | None = None,
    ) -> None:
        self.app = app
        self.counters = counters
        self.faults = faults
        self.credentials = credentials

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method: str = scope["method"]
        path: str = scope["path"]
        query = scope.get("query_string", b"").decode("latin-1")
        range_header = None
        for name, value in scope.get("headers", []):
            if name == b"range":
                range_header = value.decode("latin-1")
        fault = self.faults.take(method, path, query)
        kind = route_kind(path, query)
        self.counters.started(kind)
        served = _Served(self.counters, kind, method, path, query, range_header,
                         None if fault is None else fault.kind)  # fmt: skip
        try:
            if fault is None:  # the common case: no fault configured or none matching
                await self.app(scope, receive, served.counting(send))
                return
            if fault.kind == "latency":
                await asyncio.sleep(fault.delay)
                await self.app(scope, receive, served.counting(send))
            elif fault.kind == "ignore_range":
                scope = dict(scope)
                scope["headers"] = [(k, v) for k, v in scope["headers"] if k != b"range"]
                await self.app(scope, receive, served.counting(send))
            elif fault.kind == "status":
                await self._send_status(fault, send, served)
            elif fault.kind in ("stale_listing", "expire_token"):
                response = error_response(self._service_error(fault, scope, path, query))
                await response(scope, receive, served.counting(send))
            elif fault.kind == "reset":
                served.record()
                if not _drop_connection(send, reset=True):
                    raise RuntimeError("injected reset")
            else:  # reset_mid_body, truncate: cut the body at half its Content-Length
                await self.app(scope, receive, self._cutting_send(send, served, fault))
        finally:
            served.record()
            self.counters.finished(kind)

    def _service_error(self, fault: Fault, scope: Scope, path: str, query: str) -> APIError:
        """The error the service (or gateway) itself answers for this fault."""
        if fault.kind == "stale_listing":  # a file download: /files/{dsf id}?path={name}
            name = parse_qs(query).get("path", [""])[-1]
            return file_not_found(path.rsplit("/", 1)[-1], name)
        token = bearer_token(Headers(scope=scope))
        if token is not None and self.credentials is not None:
            self.credentials.revoke(token)
        return invalid_token()

    async def _send_status(self, fault: Fault, send: Send, served: _Served) -> None:
        body = fault.body
        if body is None:
            payload = b""
        elif isinstance(body, bytes):
            payload = body
        elif isinstance(body, str):
            payload = body.encode()
        else:
            payload = json.dumps(body).encode()
        headers = [(k.lower().encode(), str(v).encode()) for k, v in fault.headers.items()]
        if payload and not any(k == b"content-type" for k, _ in headers):
            headers.append((b"content-type", b"application/json"))
        headers.append((b"content-length", str(len(payload)).encode()))
        served.status = fault.status
        served.bytes = len(payload)
        await send({"type": "http.response.start", "status": fault.status, "headers": headers})
        served.record()
        await send({"type": "http.response.body", "body": payload})

    def _cutting_send(self, send: Send, served: _Served, fault: Fault) -> Send:
        """``send`` for the ``reset_mid_body`` and ``truncate`` faults: counts, and drops the
        connection once half the body's ``Content-Length`` went out."""
        cut_at: list[int | None] = [None]
        dropped = [False]

        async def wrapped(message: Message) -> None:
            if dropped[0]:
                return  # the connection is gone: let the app finish quietly
            if message["type"] == "http.response.start":
                served.status = message["status"]
                for name, value in message.get("headers", []):
                    if name.lower() == b"content-length":
                        cut_at[0] = int(value) // 2
                await send(message)
                return
            if message["type"] != "http.response.body":
                await send(message)
                return
            body: bytes = message.get("body", b"")
            limit = cut_at[0]
            if limit is not None and served.bytes + len(body) >= limit:
                piece = body[: max(0, limit - served.bytes)]
                served.bytes += len(piece)
                if piece:
                    await send({"type": "http.response.body", "body": piece, "more_body": True})
                served.record()
                # reset_mid_body: RST after part of the body; truncate: a clean close (FIN) with
                # the body shorter than its Content-Length.
                if not _drop_connection(send, reset=fault.kind == "reset_mid_body"):
                    raise RuntimeError("injected connection drop")
                dropped[0] = True
                await asyncio.sleep(0.005)  # let the server see the connection is gone
                return
            served.bytes += len(body)
            if not message.get("more_body", False):
                served.record()
            await send(message)

        return wrapped


class _Served:
    """What one request was served (status, body bytes), counted once by :meth:`record`."""

    __slots__ = ("bytes", "counters", "fault", "kind", "method", "path", "query", "range",
                 "recorded", "status")  # fmt: skip

    def __init__(self, counters: Counters, kind: str, method: str, path: str, query: str,
                 range_header: str | None, fault: str | None) -> None:  # fmt: skip
        self.counters, self.kind, self.fault = counters, kind, fault
        self.method, self.path, self.query, self.range = method, path, query, range_header
        self.status = 0
        self.bytes = 0
        self.recorded = False

    def record(self) -> None:
        """Count the request (once). Called just before the last body byte leaves, so a client
        that got its response always finds the request counted."""
        if not self.recorded:
            self.recorded = True
            self.counters.record(
                RequestRecord(self.method, self.path, self.query, self.range, self.status,
                              self.bytes, self.fault),
                kind=self.kind,
            )

    def counting(self, send: Send) -> Send:
        """``send`` that counts the status and body bytes, and records before the last body."""

        async def counted(message: Message) -> None:
            kind = message["type"]
            if kind == "http.response.body":
                self.bytes += len(message.get("body", b""))
                if not message.get("more_body", False):
                    self.record()
            elif kind == "http.response.start":
                self.status = message["status"]
            await send(message)

        return counted

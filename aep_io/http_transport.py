"""An httpx transport on the standard library's ``http.client``.

:class:`AEPClient <aep_io.client.AEPClient>` sends every request through httpx (auth, retries,
error mapping, redirect refusal all live there), and by default through this transport instead
of httpcore. It changes how bytes travel, nothing else:

- **less CPU per request**: a 64 KiB ranged GET costs the client ~0.4 ms instead of ~0.74 ms
  (measured on loopback against nginx), which narrow projections pay hundreds of times;
- **no copies of large bodies**: :meth:`ResponseStream.readinto` (reached with
  :func:`body_readinto`) reads a body straight from the socket into the caller's buffer.
  Reading 275 MB of parquet in 2 MiB ranges took 0.13 CPU-s this way against 0.57 CPU-s
  through httpcore's chunks: CPU that decoding needs on a 2-core machine.

Connections are kept alive per origin and checked before reuse (one the server closed while it
sat idle is dropped, not written to). Timeouts come from the request (httpx's ``timeout``
extension), TLS uses the same trust settings as httpx (:func:`httpx.create_ssl_context`), and
every failure surfaces as the httpx exception httpcore would raise (``ConnectError``,
``ReadTimeout``, ``RemoteProtocolError``...), so retry policies see no difference. It does not
speak to proxies: ``AEPClient`` keeps httpx's own transports when a proxy from the environment
applies to the platform.

Example:
    >>> import httpx
    >>> with httpx.Client(transport=StdlibTransport()) as http:  # doctest: +SKIP
    ...     response = http.get("http://127.0.0.1:8080/", headers={"Range": "bytes=0-99"})
"""

from __future__ import annotations

import http.client
import select
import socket
import ssl
import threading
from collections.abc import Callable, Iterator

import httpx

__all__ = ["READINTO", "ResponseStream", "StdlibTransport", "body_readinto", "default_transport"]

#: The response extension holding :meth:`ResponseStream.readinto` (httpx wraps the stream
#: itself, so the extension is how a caller reaches it).
READINTO = "aep_io.readinto"

_Origin = tuple[str, str, int]
# Bytes per chunk when a body is iterated (httpx's iter_* methods re-chunk as asked).
_CHUNK = 256 * 1024


def _readable(sock: socket.socket) -> bool:
    """Whether an idle socket has something to read: an idle keep-alive connection never
    should, so readable means the server closed it (EOF) or broke the protocol."""
    try:
        if hasattr(select, "poll"):
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            return bool(poller.poll(0))
        return bool(select.select([sock], [], [], 0)[0])
    except (OSError, ValueError):
        return True


class StdlibTransport(httpx.BaseTransport):
    """HTTP/1.1 on ``http.client`` connections, kept alive per origin.

    Args:
        verify: TLS verification as httpx takes it (``True``, a CA bundle path or an
            ``ssl.SSLContext``); only used for ``https://``.
        max_connections: requests in flight at once (a request beyond waits up to the
            request's ``pool`` timeout, then raises ``httpx.PoolTimeout``).
        max_keepalive: idle connections kept per origin.

    Thread-safe. ``connections_opened`` counts the connections made and
    ``idle_connections`` those kept for reuse (tests assert both).
    """

    def __init__(
        self,
        *,
        verify: ssl.SSLContext | str | bool = True,
        max_connections: int = 64,
        max_keepalive: int = 64,
    ) -> None:
        if max_connections < 1 or max_keepalive < 0:
            raise ValueError("max_connections must be >= 1 and max_keepalive >= 0")
        self._verify = verify
        self._ssl_context: ssl.SSLContext | None = None
        self._max_keepalive = max_keepalive
        self._slots = threading.BoundedSemaphore(max_connections)
        self._lock = threading.Lock()
        self._idle: dict[_Origin, list[http.client.HTTPConnection]] = {}
        self._closed = False
        self.connections_opened = 0

    def __repr__(self) -> str:
        return f"StdlibTransport(idle={self.idle_connections}, opened={self.connections_opened})"

    @property
    def idle_connections(self) -> int:
        """Connections kept alive for reuse, all origins together."""
        with self._lock:
            return sum(len(v) for v in self._idle.values())

    # -- connections ------------------------------------------------------------------------
    def _context(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            verify = self._verify
            self._ssl_context = (
                verify if isinstance(verify, ssl.SSLContext)
                else httpx.create_ssl_context(verify=verify)
            )  # fmt: skip
        return self._ssl_context

    def _checkout(
        self, origin: _Origin, timeouts: dict[str, float | None], request: httpx.Request
    ) -> http.client.HTTPConnection:
        with self._lock:
            idle = self._idle.get(origin)
            while idle:
                conn = idle.pop()
                if conn.sock is not None and not _readable(conn.sock):
                    conn.sock.settimeout(timeouts.get("read"))
                    return conn
                conn.close()  # closed by the server while idle
        scheme, host, port = origin
        connect_timeout = timeouts.get("connect")
        conn: http.client.HTTPConnection
        if scheme == "https":
            conn = http.client.HTTPSConnection(
                host, port, timeout=connect_timeout, context=self._context()
            )
        else:
            conn = http.client.HTTPConnection(host, port, timeout=connect_timeout)
        try:
            conn.connect()
        except TimeoutError as exc:
            conn.close()
            raise httpx.ConnectTimeout(f"connecting to {host}:{port}: {exc}",
                                       request=request) from exc  # fmt: skip
        except (OSError, ssl.SSLError) as exc:
            conn.close()
            raise httpx.ConnectError(f"connecting to {host}:{port}: {exc}",
                                     request=request) from exc  # fmt: skip
        assert conn.sock is not None
        conn.sock.settimeout(timeouts.get("read"))
        with self._lock:
            self.connections_opened += 1
        return conn

    def _release(self, origin: _Origin, conn: http.client.HTTPConnection, reusable: bool) -> None:
        try:
            with self._lock:
                idle = self._idle.setdefault(origin, [])
                if reusable and not self._closed and len(idle) < self._max_keepalive:
                    idle.append(conn)
                    return
            conn.close()
        finally:
            self._slots.release()

    # -- requests ---------------------------------------------------------------------------
    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` on a kept-alive (or new) connection; the body streams on."""
        if self._closed:
            raise RuntimeError("the transport is closed")
        url = request.url
        scheme = url.scheme
        if scheme not in ("http", "https"):
            raise httpx.UnsupportedProtocol(f"{scheme!r} URLs are not supported",
                                            request=request)  # fmt: skip
        origin = (scheme, url.host, url.port or (443 if scheme == "https" else 80))
        timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
        pool_timeout = timeouts.get("pool")
        if not self._slots.acquire(timeout=-1 if pool_timeout is None else pool_timeout):
            raise httpx.PoolTimeout("no connection slot free within the pool timeout",
                                    request=request)  # fmt: skip
        try:
            conn = self._checkout(origin, timeouts, request)
        except BaseException:
            self._slots.release()
            raise
        try:
            response = _exchange(conn, request)
        except BaseException:
            self._release(origin, conn, reusable=False)
            raise
        stream = ResponseStream(self, origin, conn, response, request)
        return httpx.Response(
            response.status,
            headers=response.getheaders(),
            stream=stream,
            extensions={"http_version": b"HTTP/1.1",
                        "reason_phrase": response.reason.encode("latin-1", "replace"),
                        READINTO: stream.readinto},
        )  # fmt: skip

    def close(self) -> None:
        """Close the idle connections; connections in use close when their response does."""
        with self._lock:
            self._closed = True
            idle = [c for conns in self._idle.values() for c in conns]
            self._idle.clear()
        for conn in idle:
            conn.close()


def _exchange(conn: http.client.HTTPConnection, request: httpx.Request) -> http.client.HTTPResponse:
    """Write ``request`` on ``conn`` and read the response's status line and headers."""
    target = request.url.raw_path.decode("ascii")
    body = request.read()  # a streamed body is read whole: it is sent with its length
    headers = request.headers.multi_items()
    if any(name.lower() == "transfer-encoding" for name, _ in headers):
        headers = [(n, v) for n, v in headers if n.lower() != "transfer-encoding"]
        headers.append(("Content-Length", str(len(body))))
    try:
        conn.putrequest(request.method, target, skip_host=True, skip_accept_encoding=True)
        for name, value in headers:
            conn.putheader(name, value)
        conn.endheaders(body or None)
    except TimeoutError as exc:
        raise httpx.WriteTimeout(f"sending {request.method} {request.url}: {exc}",
                                 request=request) from exc  # fmt: skip
    except (OSError, http.client.HTTPException) as exc:
        raise httpx.WriteError(f"sending {request.method} {request.url}: {exc}",
                               request=request) from exc  # fmt: skip
    try:
        return conn.getresponse()
    except TimeoutError as exc:
        raise httpx.ReadTimeout(f"waiting for {request.method} {request.url}: {exc}",
                                request=request) from exc  # fmt: skip
    except http.client.HTTPException as exc:  # RemoteDisconnected, BadStatusLine...
        raise httpx.RemoteProtocolError(
            f"{request.method} {request.url}: {type(exc).__name__}: {exc}", request=request
        ) from exc
    except OSError as exc:
        raise httpx.ReadError(f"{request.method} {request.url}: {exc}",
                              request=request) from exc  # fmt: skip


def body_readinto(response: httpx.Response) -> Callable[[memoryview], int] | None:
    """The response's ``readinto(buffer) -> int`` when its transport offers one (this module's
    does), else None: read the body with ``iter_raw`` then."""
    return response.extensions.get(READINTO)


class ResponseStream(httpx.SyncByteStream):
    """The body of one response. Iterating yields chunks; :meth:`readinto` fills a buffer
    without intermediate ``bytes`` (use it through ``response.stream`` when present)."""

    def __init__(
        self,
        transport: StdlibTransport,
        origin: _Origin,
        conn: http.client.HTTPConnection,
        response: http.client.HTTPResponse,
        request: httpx.Request,
    ) -> None:
        self._transport = transport
        self._origin = origin
        self._conn = conn
        self._response = response
        self._request = request
        self._released = False
        self._complete = False  # the body was read to its end

    def _short(self) -> bool:
        """Whether the body ended before its Content-Length."""
        length = self._response.length
        return length is not None and length > 0

    def _failed(self, exc: BaseException) -> httpx.TransportError:
        what = f"reading the body of {self._request.method} {self._request.url}"
        if isinstance(exc, TimeoutError):
            return httpx.ReadTimeout(f"{what}: {exc}", request=self._request)
        if isinstance(exc, http.client.IncompleteRead):
            return httpx.RemoteProtocolError(
                f"{what}: the server closed the connection before the end of the body",
                request=self._request,
            )
        return httpx.ReadError(f"{what}: {type(exc).__name__}: {exc}", request=self._request)

    def readinto(self, buffer: memoryview | bytearray) -> int:
        """Read up to ``len(buffer)`` body bytes (at most 256 KiB per call) into ``buffer``;
        0 at the end of the body.

        Raises ``httpx.RemoteProtocolError`` when the connection ends before the whole body
        (as declared by Content-Length) arrived, ``httpx.ReadTimeout`` / ``httpx.ReadError``
        when the socket fails.
        """
        try:
            # at most one chunk per call: a connection that breaks loses no more than that
            n = self._response.readinto(memoryview(buffer)[:_CHUNK])
        except (OSError, http.client.HTTPException) as exc:
            raise self._failed(exc) from exc
        if n == 0 and len(buffer):
            if self._short():
                raise self._failed(http.client.IncompleteRead(b""))
            self._complete = True
        return n

    def __iter__(self) -> Iterator[bytes]:
        while True:
            try:
                chunk = self._response.read1(_CHUNK)  # what has arrived, up to a chunk
            except (OSError, http.client.HTTPException) as exc:
                raise self._failed(exc) from exc
            if not chunk:
                if self._short():
                    raise self._failed(http.client.IncompleteRead(b""))
                self._complete = True
                return
            yield chunk

    def close(self) -> None:
        """Give the connection back (kept alive if the body was read to its end)."""
        if self._released:
            return
        self._released = True
        response = self._response
        # read to its end (not merely closed by http.client at a premature end of the stream)
        done = self._complete or (not response.chunked and response.length == 0)
        reusable = done and not response.will_close
        response.close()  # the connection's socket stays open; the response lets go of it
        self._transport._release(self._origin, self._conn, reusable)


def _proxied(url: str) -> bool:
    """Whether a proxy from the environment (``HTTPS_PROXY``, ``ALL_PROXY``... minus
    ``NO_PROXY``) applies to ``url``: httpx's own transports honour it, this one does not."""
    import urllib.request

    proxies = urllib.request.getproxies()
    u = httpx.URL(url)
    if u.scheme not in proxies and "all" not in proxies:
        return False
    return not urllib.request.proxy_bypass(u.host)


def default_transport(
    url: str, *, verify: ssl.SSLContext | str | bool = True, max_connections: int = 64
) -> StdlibTransport | None:
    """The transport for a client of ``url``: a :class:`StdlibTransport`, or None (httpx's own
    transports) when a proxy from the environment applies to ``url``."""
    if _proxied(url):
        return None
    return StdlibTransport(verify=verify, max_connections=max_connections,
                           max_keepalive=max_connections)  # fmt: skip

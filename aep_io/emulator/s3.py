"""A real S3 API server on loopback for tests and the demo: moto's server mode, byte-counted.

:func:`moto_s3` starts moto's S3 implementation as an HTTP server on ``127.0.0.1`` (an
ephemeral port), creates a bucket and yields an :class:`S3Endpoint`: the endpoint URL, fixed
fake credentials (moto accepts any), the s3fs ``storage_options`` and ``AWS_*`` variables that
point clients at it, and :class:`S3Traffic`, which counts what the server sent and received.

The counting is done on the server side: the WSGI application of moto's server is wrapped by a
middleware that adds up the response body bytes of every request as the server hands them to
the socket. ``traffic.object_bytes()`` is therefore the number of object bytes that actually
crossed the wire for ``GET``s (ranged or not), which is what a reader's projection must keep
small. Listings, ``HEAD``s and uploads are logged too, separately.

Nothing here reaches AWS: the server binds loopback only, every client built from the endpoint
names ``endpoint_url`` explicitly, and the credentials are fakes that are never printed
(:class:`S3Endpoint`'s repr hides them).

Needs ``moto[server]`` (a development dependency) and, to read, ``s3fs``.

Example:
    >>> # with moto_s3("exports") as s3:
    >>> #     emulator.destinations.add(s3.destination(prefix="aep"))
    >>> #     lf = scan_batches(s3.url("aep", job_id, batch_id, "*.parquet"),
    >>> #                       storage_options=s3.storage_options())
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from aep_io.emulator.server import check_loopback

if TYPE_CHECKING:
    from aep_io.emulator.destinations import S3Destination

__all__ = [
    "FAKE_ACCESS_KEY",
    "FAKE_SECRET_KEY",
    "S3Endpoint",
    "S3Request",
    "S3Traffic",
    "moto_s3",
]

#: moto accepts any credentials; these fixed fakes are what the helpers hand out.
FAKE_ACCESS_KEY = "AKIAAEPIOEMULATOR000"
FAKE_SECRET_KEY = "aep-io-emulator-fake-secret-0000000000000"  # a fake: moto accepts any
DEFAULT_REGION = "us-east-1"


def _require_moto() -> Any:
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the loopback S3 server needs moto's server mode: pip install 'moto[server]' "
            f"(importing moto.server failed: {exc})"
        ) from None
    return ThreadedMotoServer


# ------------------------------------------------------------------------------- traffic


@dataclass(frozen=True)
class S3Request:
    """One request the S3 server answered (no header values but ``Range`` are kept)."""

    method: str
    path: str  # path-style: /bucket/key
    query: str
    range: str | None
    status: int
    sent: int  # response body bytes handed to the socket
    received: int  # request body bytes (Content-Length)

    @property
    def bucket(self) -> str:
        """The bucket the request addressed ('' for the service root)."""
        return self.path.lstrip("/").split("/", 1)[0]

    @property
    def key(self) -> str:
        """The object key ('' for bucket-level requests such as listings)."""
        parts = self.path.lstrip("/").split("/", 1)
        return unquote(parts[1]) if len(parts) == 2 else ""

    @property
    def is_object_get(self) -> bool:
        """A ``GetObject`` (whole or ranged): a GET naming a key."""
        return self.method == "GET" and bool(self.key)


class S3Traffic:
    """What the loopback S3 server sent and received, request by request (thread-safe)."""

    def __init__(self, max_log: int = 100_000) -> None:
        self._lock = threading.Lock()
        self._log: list[S3Request] = []
        self._max_log = max_log

    def record(self, req: S3Request) -> None:
        """Add one finished request."""
        with self._lock:
            if len(self._log) >= self._max_log:
                del self._log[: self._max_log // 2]
            self._log.append(req)

    def reset(self) -> None:
        """Forget everything counted so far."""
        with self._lock:
            self._log.clear()

    def log(self) -> list[S3Request]:
        """The requests answered so far, in order of completion."""
        with self._lock:
            return list(self._log)

    def object_gets(self, *, bucket: str | None = None) -> list[S3Request]:
        """The ``GetObject`` requests (ranged or whole), optionally of one bucket."""
        return [r for r in self.log() if r.is_object_get and bucket in (None, r.bucket)]

    def object_bytes(self, *, bucket: str | None = None) -> int:
        """Object bytes the server sent for ``GetObject`` requests."""
        return sum(r.sent for r in self.object_gets(bucket=bucket))

    def requests(self, method: str | None = None) -> int:
        """How many requests (of ``method``) were answered."""
        return sum(1 for r in self.log() if method in (None, r.method))

    def bytes_sent(self) -> int:
        """All response body bytes (objects, listings, errors)."""
        return sum(r.sent for r in self.log())

    def bytes_received(self) -> int:
        """All request body bytes (uploads)."""
        return sum(r.received for r in self.log())


class _CountingBody:
    """Wraps a WSGI response iterable; records the request when the server closes it."""

    def __init__(self, body: Iterable[bytes], done: Any) -> None:
        self._body = body
        self._done = done
        self._sent = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._body:
            self._sent += len(chunk)
            yield chunk

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            self._done(self._sent)


class _CountingApp:
    """WSGI middleware: records method, path, Range, status and body bytes of each request."""

    def __init__(self, app: Any, traffic: S3Traffic) -> None:
        self.app = app
        self.traffic = traffic

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        status: list[int] = [0]

        def counting_start(code: str, headers: Any, exc_info: Any = None) -> Any:
            status[0] = int(code.split(" ", 1)[0])
            return start_response(code, headers, exc_info)

        method = environ.get("REQUEST_METHOD", "")
        length = environ.get("CONTENT_LENGTH") or "0"

        def done(sent: int) -> None:
            self.traffic.record(S3Request(
                method=method,
                path=environ.get("PATH_INFO", ""),
                query=environ.get("QUERY_STRING", ""),
                range=environ.get("HTTP_RANGE"),
                status=status[0],
                sent=0 if method == "HEAD" else sent,  # werkzeug writes no body for HEAD
                received=int(length) if length.isdigit() else 0,
            ))  # fmt: skip

        return _CountingBody(self.app(environ, counting_start), done)


def _counting_server_class() -> type:
    base = _require_moto()

    class CountingMotoServer(base):  # type: ignore[misc, valid-type]
        """moto's ``ThreadedMotoServer`` whose WSGI app is wrapped by :class:`_CountingApp`,
        and whose request handler logs nothing (no request line on stderr)."""

        def __init__(self, host: str, port: int, traffic: S3Traffic) -> None:
            super().__init__(ip_address=host, port=port, verbose=False)
            self.traffic = traffic

        def _server_entry(self) -> None:  # same as moto's, with the middleware added
            from moto.moto_server.werkzeug_app import (
                DomainDispatcherApplication,
                MotoRequestHandler,
                create_backend_app,
            )
            from werkzeug.serving import make_server

            class QuietHandler(MotoRequestHandler):  # type: ignore[misc, valid-type]
                def log_request(self, *args: Any, **kwargs: Any) -> None:
                    pass

            app = _CountingApp(DomainDispatcherApplication(create_backend_app), self.traffic)
            self._server = make_server(self._ip_address, self._port, app, True,
                                       request_handler=QuietHandler)  # fmt: skip
            self._server_ready_event.set()
            self._server.serve_forever()

    return CountingMotoServer


# ------------------------------------------------------------------------------- the endpoint


@dataclass(frozen=True)
class S3Endpoint:
    """A running loopback S3 server and one bucket on it.

    Attributes:
        endpoint_url: ``http://127.0.0.1:<port>``.
        bucket: the bucket created for you.
        region: the region clients sign for.
        traffic: the server-side request log and byte counts.
        access_key, secret_key: the fake credentials (hidden from the repr).
    """

    endpoint_url: str
    bucket: str
    region: str
    traffic: S3Traffic = field(repr=False)
    access_key: str = field(default=FAKE_ACCESS_KEY, repr=False)
    secret_key: str = field(default=FAKE_SECRET_KEY, repr=False)

    def url(self, *parts: str | int) -> str:
        """``s3://<bucket>/<parts joined by '/'>``."""
        tail = "/".join(str(p).strip("/") for p in parts if str(p).strip("/"))
        return f"s3://{self.bucket}/{tail}" if tail else f"s3://{self.bucket}"

    def storage_options(self, *, credentials: bool = True, **extra: Any) -> dict[str, Any]:
        """s3fs options for this server (``credentials=False``: leave them to the environment
        or a profile, e.g. after :meth:`env`)."""
        options: dict[str, Any] = {
            "endpoint_url": self.endpoint_url,
            "client_kwargs": {"region_name": self.region},
        }
        if credentials:
            options.update(key=self.access_key, secret=self.secret_key)
        options.update(extra)
        return options

    def env(self) -> dict[str, str]:
        """``AWS_*`` variables pointing any AWS SDK (and s3fs) at this server."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ENDPOINT_URL_S3": self.endpoint_url,
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def destination(self, prefix: str = "", **kwargs: Any) -> S3Destination:
        """An emulator :class:`~aep_io.emulator.destinations.S3Destination` into this bucket."""
        from aep_io.emulator.destinations import S3Destination

        return S3Destination(bucket=self.bucket, prefix=prefix, endpoint_url=self.endpoint_url,
                             key=self.access_key, secret=self.secret_key, region=self.region,
                             **kwargs)  # fmt: skip

    def filesystem(self, **extra: Any) -> Any:
        """A fresh s3fs filesystem for this server (not shared through fsspec's cache)."""
        import s3fs

        return s3fs.S3FileSystem(skip_instance_cache=True, **self.storage_options(**extra))


@contextlib.contextmanager
def moto_s3(
    bucket: str | None = None, *, host: str = "127.0.0.1", region: str = DEFAULT_REGION
) -> Iterator[S3Endpoint]:
    """Start moto's S3 server on ``host`` (loopback only; an ephemeral port), create ``bucket``
    (a unique name by default) and yield the :class:`S3Endpoint`. On exit the bucket is emptied
    and deleted (moto keeps its state per process) and the server stopped."""
    check_loopback(host)
    traffic = S3Traffic()
    server = _counting_server_class()(host, 0, traffic)
    server.start()
    try:
        bound_host, port = server.get_host_and_port()
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        endpoint = S3Endpoint(f"http://{shown}:{port}", bucket or f"aep-io-{uuid.uuid4().hex[:12]}",
                              region, traffic)  # fmt: skip
        client = _client(endpoint)
        _create_bucket(client, endpoint.bucket, region)
        try:
            yield endpoint
        finally:
            with contextlib.suppress(Exception):
                _delete_bucket(client, endpoint.bucket)
    finally:
        server.stop()


def _client(endpoint: S3Endpoint) -> Any:
    """A plain botocore S3 client for bucket housekeeping (explicit endpoint and credentials)."""
    import botocore.session
    from botocore.config import Config

    session = botocore.session.Session()
    return session.create_client(
        "s3", region_name=endpoint.region, endpoint_url=endpoint.endpoint_url,
        aws_access_key_id=endpoint.access_key, aws_secret_access_key=endpoint.secret_key,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}),
    )


def _create_bucket(client: Any, bucket: str, region: str) -> None:
    kwargs: dict[str, Any] = {"Bucket": bucket}
    if region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
        client.create_bucket(**kwargs)


def _delete_bucket(client: Any, bucket: str) -> None:
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
    client.delete_bucket(Bucket=bucket)

"""Data Access: ``/data/foundation/export`` batch files, dataset files and ranged downloads.

``aep_api.md`` §6: a batch lists its dataset files (paged by ``start``/``limit``, at most 100,
``_links.next`` when more remain); a dataset file lists its physical files, or, when it is a
directory, more dataset files; ``GET``/``HEAD /files/{id}?path=name`` serves bytes with
``Range`` support (206 with ``Content-Range``, suffix ranges, 416).
"""

from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from aep_io.emulator.gateway import (
    APIError,
    HeaderCheck,
    authenticate,
    echo,
    error_response,
    fallback,
    int_param,
    problem,
)
from aep_io.emulator.ranges import RangeNotSatisfiable, parse_range
from aep_io.emulator.store import DataSetFile, Store, Tenant

if TYPE_CHECKING:
    from aep_io.emulator.core import Emulator

__all__ = ["FILES_PREFIX", "DirectDownloads", "FileSlice", "file_not_found", "routes"]

_SVC = "DAS"
_PAGE_MAX = 100
_CHUNK = 1024 * 1024
#: The path of ``GET|HEAD /files/{id}`` up to the id (as the router sees it, no root path).
FILES_PREFIX = "/data/foundation/export/files/"
# The request headers a download reads (the gateway's four and Range).
_DOWNLOAD_HEADERS = frozenset(
    (b"authorization", b"x-api-key", b"x-gw-ims-org-id", b"x-sandbox-name", b"range")
)


def _base(request: Request) -> str:
    return f"{str(request.base_url).rstrip('/')}/data/foundation/export"


def _view_id(store: Store, tenant: Tenant, batch_id: str) -> str | None:
    batch = store.get("batch", tenant, batch_id) or {}
    for obj in batch.get("relatedObjects", []):
        if obj.get("type") == "dataSet":
            dataset = store.get("dataSet", tenant, obj.get("id", "")) or {}
            return dataset.get("viewId")
    return None


def _dsf_entry(base: str, dsf: DataSetFile, view_id: str | None) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "dataSetFileId": dsf.id,
        "dataSetViewId": view_id,
        "version": "1.0.0",
        "created": str(dsf.created),
        "updated": str(dsf.created),
        "isValid": True,
        "size": str(dsf.size),
        "_links": {"self": {"href": f"{base}/files/{dsf.id}"}},
    }
    if dsf.records is not None:
        entry["records"] = str(dsf.records)
    return entry


def _paged(
    request: Request, data: list[dict[str, Any]], total: int, start: int, limit: int
) -> JSONResponse:
    body: dict[str, Any] = {"data": data, "_page": {"limit": limit, "count": total}}
    if start + limit < total:
        url = request.url
        nxt = url.include_query_params(start=start + limit, limit=limit)
        body["_links"] = {
            "next": {"href": str(nxt)},
            "page": {"href": str(url.include_query_params(start=start, limit=limit)),
                     "templated": True},
        }
    return JSONResponse(body)


async def batch_files(request: Request) -> Response:
    """``GET /batches/{batchId}/files``: the batch's top-level dataset files."""
    tenant = authenticate(request)
    store: Store = request.app.state.emulator.store
    batch_id = request.path_params["batch_id"]
    if store.get("batch", tenant, batch_id) is None:
        raise problem(404, _SVC, f"batch {echo(batch_id)} not found")
    start = int_param(request, "start", 0)
    limit = int_param(request, "limit", _PAGE_MAX, minimum=1, maximum=_PAGE_MAX)
    total, page = store.batch_files(batch_id, start=start, limit=limit)
    base, view = _base(request), _view_id(store, tenant, batch_id)
    return _paged(request, [_dsf_entry(base, d, view) for d in page], total, start, limit)


async def dataset_file(request: Request) -> Response:
    """``GET|HEAD /files/{id}``: a listing without ``path=``, the file's bytes with it."""
    tenant = authenticate(request)
    store: Store = request.app.state.emulator.store
    dsf_id = request.path_params["dsf_id"]
    dsf = store.dataset_file(tenant, dsf_id)
    if dsf is None:
        raise problem(404, _SVC, f"dataSetFile {echo(dsf_id)} not found")
    path = request.query_params.get("path")
    if path is not None:
        return _download(store, dsf, path, request.headers.get("range"),
                         head=request.method == "HEAD")
    if request.method == "HEAD":
        raise problem(400, _SVC, "HEAD /files/{id} requires the path query parameter")
    start = int_param(request, "start", 0)
    limit = int_param(request, "limit", _PAGE_MAX, minimum=1, maximum=_PAGE_MAX)
    base = _base(request)
    if dsf.is_dir:
        total, children = store.children(dsf.id, start=start, limit=limit)
        view = _view_id(store, tenant, dsf.batch_id)
        data = [_dsf_entry(base, d, view) for d in children]
    else:
        total, files = store.physical_files(dsf.id, start=start, limit=limit)
        data = [
            {
                "name": f.name,
                "length": str(f.length),
                "_links": {
                    "self": {"href": f"{base}/files/{dsf.id}?path={quote(f.name, safe='')}"}
                },
            }
            for f in files
        ]
    return _paged(request, data, total, start, limit)


def file_not_found(dsf_id: str, name: str) -> APIError:
    """Data Access's 404 for ``GET|HEAD /files/{dsf_id}?path={name}`` naming no file of it."""
    return problem(404, _SVC, f"file {name[:200]!r} not found in dataSetFile {dsf_id[:200]}")


def _download(
    store: Store, dsf: DataSetFile, name: str, header: str | None, *, head: bool
) -> FileSlice:
    if dsf.is_dir:
        raise problem(400, _SVC, f"dataSetFile {dsf.id} is a directory; list it without path=")
    physical = store.physical_file(dsf.id, name)
    if physical is None:
        raise file_not_found(dsf.id, name)
    size = physical.length
    try:
        wanted = parse_range(header, size)
    except (RangeNotSatisfiable, ValueError):  # ValueError: a position of thousands of digits
        raise problem(416, _SVC, f"Range {(header or '')[:80]!r} lies outside the file "
                      f"({size} bytes)", headers={"Content-Range": f"bytes */{size}"}) from None
    if wanted is None:
        return FileSlice(str(physical.path), 0, size, size, partial=False, head=head)
    first, last = wanted
    return FileSlice(str(physical.path), first, last - first + 1, size, partial=True, head=head)


@functools.lru_cache(maxsize=1024)
def _path_param(query_string: bytes) -> str | None:
    """The ``path`` query parameter as Starlette's ``request.query_params.get`` reads it (the
    last one wins); cached, since a reader asks for the same file again and again."""
    found = None
    for key, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        if key == "path":
            found = value
    return found


class DirectDownloads:
    """Answers ``GET|HEAD /files/{id}?path=name`` straight from the ASGI scope, without the
    router, the middleware stack and a ``Request`` (the hot path of every reader: a narrow
    projection makes hundreds of small ranged GETs).

    The response is the very one :func:`dataset_file` gives: the same gateway check
    (:class:`~.gateway.HeaderCheck`, which verifies the token on every request), lookups and
    :func:`_download`, and an :class:`~.gateway.APIError` becomes
    :func:`~.gateway.error_response` as the app's exception handler does.
    """

    def __init__(self, emulator: Emulator) -> None:
        self.store = emulator.store
        self.gateway = HeaderCheck(emulator.credentials)

    def response(self, scope: Any) -> Response | None:
        """The response to the request of ``scope``; None when it is not a file download (a
        listing, another path, a root path...) or on an unexpected error: the router answers
        it then (its handlers log and answer 500)."""
        path: str = scope["path"]
        method: str = scope["method"]
        if method not in ("GET", "HEAD") or scope.get("root_path") or not path.startswith(
                FILES_PREFIX):  # fmt: skip
            return None
        dsf_id = path[len(FILES_PREFIX):]
        if not dsf_id or "/" in dsf_id or not dsf_id.isprintable():  # odd ids: the router's way
            return None
        name = _path_param(scope.get("query_string", b""))
        if name is None:
            return None
        raw: dict[bytes, bytes] = {}
        for key, value in scope["headers"]:
            if key in _DOWNLOAD_HEADERS and key not in raw:  # the first wins, as in Headers.get
                raw[key] = value
        get = raw.get
        try:
            tenant = self.gateway.tenant((get(b"authorization"), get(b"x-api-key"),
                                          get(b"x-gw-ims-org-id"), get(b"x-sandbox-name")))
            dsf = self.store.dataset_file(tenant, dsf_id)
            if dsf is None:
                raise problem(404, _SVC, f"dataSetFile {echo(dsf_id)} not found")
            rng = get(b"range")
            return _download(self.store, dsf, name, None if rng is None else rng.decode("latin-1"),
                             head=method == "HEAD")  # fmt: skip
        except APIError as exc:
            return error_response(exc)
        except Exception:
            return None


class FileSlice(Response):
    """Serves ``length`` bytes of a file from ``offset``, straight from the page cache.

    Reads large chunks with ``os.pread`` on the event loop (no thread hop per 64 KiB chunk as in
    Starlette's ``FileResponse``), which keeps up with loopback clients.
    """

    def __init__(
        self, path: str, offset: int, length: int, total: int, *, partial: bool, head: bool
    ) -> None:
        # What Response.__init__ builds from these headers, without its generic work.
        raw_headers = [
            (b"content-length", str(length).encode()),
            (b"accept-ranges", b"bytes"),
            (b"content-type", b"application/octet-stream"),
        ]
        if partial:
            raw_headers.append(
                (b"content-range", f"bytes {offset}-{offset + length - 1}/{total}".encode())
            )
        self.status_code = 206 if partial else 200
        self.background = None
        self.body = b""
        self.raw_headers = raw_headers
        self.path, self.offset, self.length, self.head = path, offset, length, head

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        if self.head or self.length == 0:
            await send({"type": "http.response.body", "body": b""})
            return
        fd = os.open(self.path, os.O_RDONLY)
        try:
            position, remaining = self.offset, self.length
            while remaining > 0:
                data = os.pread(fd, min(_CHUNK, remaining), position)
                if not data:
                    raise OSError(f"{self.path} is shorter than its catalog length")
                position += len(data)
                remaining -= len(data)
                await send(
                    {"type": "http.response.body", "body": data, "more_body": remaining > 0}
                )
        finally:
            os.close(fd)


routes = [
    Route("/batches/{batch_id}/files", batch_files, methods=["GET"]),
    Route("/files/{dsf_id}", dataset_file, methods=["GET", "HEAD"]),
]
routes.append(fallback(_SVC, "/data/foundation/export", routes))

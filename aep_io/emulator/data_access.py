"""Data Access: ``/data/foundation/export`` batch files, dataset files and ranged downloads.

``aep_api.md`` §6: a batch lists its dataset files (paged by ``start``/``limit``, at most 100,
``_links.next`` when more remain); a dataset file lists its physical files, or, when it is a
directory, more dataset files; ``GET``/``HEAD /files/{id}?path=name`` serves bytes with
``Range`` support (206 with ``Content-Range``, suffix ranges, 416).
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from aep_io.emulator.gateway import APIError, authenticate, echo, fallback, int_param, problem
from aep_io.emulator.ranges import RangeNotSatisfiable, parse_range
from aep_io.emulator.store import DataSetFile, Store, Tenant

__all__ = ["FileSlice", "file_not_found", "routes"]

_SVC = "DAS"
_PAGE_MAX = 100
_CHUNK = 1024 * 1024


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
        return _download(request, store, dsf, path)
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


def _download(request: Request, store: Store, dsf: DataSetFile, name: str) -> Response:
    if dsf.is_dir:
        raise problem(400, _SVC, f"dataSetFile {dsf.id} is a directory; list it without path=")
    physical = store.physical_file(dsf.id, name)
    if physical is None:
        raise file_not_found(dsf.id, name)
    size = physical.length
    header = request.headers.get("range")
    try:
        wanted = parse_range(header, size)
    except (RangeNotSatisfiable, ValueError):  # ValueError: a position of thousands of digits
        raise problem(416, _SVC, f"Range {(header or '')[:80]!r} lies outside the file "
                      f"({size} bytes)", headers={"Content-Range": f"bytes */{size}"}) from None
    head = request.method == "HEAD"
    if wanted is None:
        return FileSlice(str(physical.path), 0, size, size, partial=False, head=head)
    first, last = wanted
    return FileSlice(str(physical.path), first, last - first + 1, size, partial=True, head=head)


class FileSlice(Response):
    """Serves ``length`` bytes of a file from ``offset``, straight from the page cache.

    Reads large chunks with ``os.pread`` on the event loop (no thread hop per 64 KiB chunk as in
    Starlette's ``FileResponse``), which keeps up with loopback clients.
    """

    def __init__(
        self, path: str, offset: int, length: int, total: int, *, partial: bool, head: bool
    ) -> None:
        headers = {
            "Content-Length": str(length),
            "Accept-Ranges": "bytes",
            "Content-Type": "application/octet-stream",
        }
        if partial:
            headers["Content-Range"] = f"bytes {offset}-{offset + length - 1}/{total}"
        super().__init__(status_code=206 if partial else 200, headers=headers)
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

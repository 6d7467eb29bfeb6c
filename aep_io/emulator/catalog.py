"""Catalog: ``/data/foundation/catalog`` datasets and batches (``aep_api.md`` §5).

Lookups and listings answer a map keyed by id, even for a single object; listings page by
``start``/``limit`` (at most 100) with no envelope.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from aep_io.emulator.gateway import (
    authenticate,
    echo,
    fallback,
    int_param,
    json_body,
    problem,
    want,
)

__all__ = ["BATCH_STATUSES", "PROFILE_UNION_SCHEMA", "routes"]

PROFILE_UNION_SCHEMA = "https://ns.adobe.com/xdm/context/profile__union"
#: Catalog's batch status enum (``aep_api.md`` §5.3), for the ``status`` filter.
BATCH_STATUSES = ("processing", "success", "failure", "queued", "retrying", "stalled", "aborted",
                  "abandoned", "inactive", "failed", "loading", "loaded", "staged", "active",
                  "staging", "deleted")  # fmt: skip
_SVC = "CAT"


async def create_dataset(request: Request) -> Response:
    """``POST /dataSets`` → 201 ``["@/dataSets/{id}"]``."""
    tenant = authenticate(request)
    body = await json_body(request, _SVC)
    name = want(body, "name", str, "", service=_SVC, required=True)
    if not name.strip():
        raise problem(400, _SVC, "name must not be empty")
    want(body, "description", str, "", service=_SVC)
    schema_ref = want(body, "schemaRef", dict, "", service=_SVC) or {}
    want(schema_ref, "id", str, "schemaRef.", service=_SVC, required=True)
    store = request.app.state.emulator.store
    ds_id, _ = store.create_dataset(tenant, body)
    return JSONResponse(
        [f"@/dataSets/{ds_id}"],
        status_code=201,
        headers={"Location": f"{request.base_url}data/foundation/catalog/dataSets/{ds_id}"},
    )


async def get_dataset(request: Request) -> Response:
    """``GET /dataSets/{id}`` → ``{id: dataset}``."""
    tenant = authenticate(request)
    ds_id = request.path_params["id"]
    record = request.app.state.emulator.store.get("dataSet", tenant, ds_id)
    if record is None:
        raise problem(404, _SVC, f"dataSet {echo(ds_id)} not found")
    return JSONResponse({ds_id: record})


def _page(request: Request, items: list[tuple[str, dict[str, Any]]]) -> JSONResponse:
    start = int_param(request, "start", 0, service=_SVC)
    limit = int_param(request, "limit", 20, minimum=1, maximum=100, service=_SVC)
    return JSONResponse(dict(items[start : start + limit]))


async def list_datasets(request: Request) -> Response:
    """``GET /dataSets`` (``start``/``limit``)."""
    tenant = authenticate(request)
    return _page(request, request.app.state.emulator.store.list("dataSet", tenant))


async def get_batch(request: Request) -> Response:
    """``GET /batches/{id}`` → ``{id: batch}``."""
    tenant = authenticate(request)
    batch_id = request.path_params["id"]
    record = request.app.state.emulator.store.get("batch", tenant, batch_id)
    if record is None:
        raise problem(404, _SVC, f"batch {echo(batch_id)} not found")
    return JSONResponse({batch_id: record})


async def list_batches(request: Request) -> Response:
    """``GET /batches?dataSet=&status=`` (``start``/``limit``), newest first."""
    tenant = authenticate(request)
    dataset = request.query_params.get("dataSet")
    status = request.query_params.get("status")
    items = request.app.state.emulator.store.list("batch", tenant, newest_first=True)
    if dataset:
        items = [
            (i, b) for i, b in items
            if any(o.get("id") == dataset for o in b.get("relatedObjects", []))
        ]
    if status:
        if status not in BATCH_STATUSES:
            raise problem(400, _SVC, f"status={status[:40]!r} is not a batch status; use "
                          f"one of {', '.join(BATCH_STATUSES)}")  # fmt: skip
        items = [(i, b) for i, b in items if b.get("status") == status]
    return _page(request, items)


routes = [
    Route("/dataSets", create_dataset, methods=["POST"]),
    Route("/dataSets", list_datasets, methods=["GET"]),
    Route("/dataSets/{id}", get_dataset, methods=["GET"]),
    Route("/batches", list_batches, methods=["GET"]),
    Route("/batches/{id}", get_batch, methods=["GET"]),
]
routes.append(fallback(_SVC, "/data/foundation/catalog", routes))

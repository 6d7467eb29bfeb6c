"""Catalog: ``/data/foundation/catalog`` datasets and batches (``aep_api.md`` §5).

Lookups and listings answer a map keyed by id, even for a single object; listings page by
``start``/``limit`` (at most 100) with no envelope.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from aep_io.emulator.gateway import authenticate, int_param, problem

__all__ = ["PROFILE_UNION_SCHEMA", "routes"]

PROFILE_UNION_SCHEMA = "https://ns.adobe.com/xdm/context/profile__union"
_MAX_BODY = 1024 * 1024
_SVC = "CAT"


async def read_json_body(request: Request, service: str) -> Any:
    """The request's JSON body, or a 400/413/415 naming the problem."""
    content_type = request.headers.get("content-type", "")
    if "json" not in content_type:
        raise problem(415, service, "A valid content-type must be specified (application/json)")
    raw = await request.body()
    if len(raw) > _MAX_BODY:
        raise problem(413, service, f"request body larger than {_MAX_BODY} bytes")
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise problem(400, service, f"malformed JSON body: {exc}") from None


async def create_dataset(request: Request) -> Response:
    """``POST /dataSets`` → 201 ``["@/dataSets/{id}"]``."""
    tenant = authenticate(request)
    body = await read_json_body(request, _SVC)
    if not isinstance(body, dict):
        raise problem(400, _SVC, "the body must be a JSON object describing the dataset")
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise problem(400, _SVC, "field 'name' is required and must be a non-empty string")
    schema_ref = body.get("schemaRef")
    if not isinstance(schema_ref, dict) or not isinstance(schema_ref.get("id"), str):
        raise problem(400, _SVC, "field 'schemaRef.id' is required (a schema URI)")
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
        raise problem(404, _SVC, f"dataSet {ds_id} not found")
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
        raise problem(404, _SVC, f"batch {batch_id} not found")
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
        items = [(i, b) for i, b in items if b.get("status") == status]
    return _page(request, items)


routes = [
    Route("/dataSets", create_dataset, methods=["POST"]),
    Route("/dataSets", list_datasets, methods=["GET"]),
    Route("/dataSets/{id}", get_dataset, methods=["GET"]),
    Route("/batches", list_batches, methods=["GET"]),
    Route("/batches/{id}", get_batch, methods=["GET"]),
]

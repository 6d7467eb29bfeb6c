"""``/segment/definitions``: PQL segment definitions (``aep_api.md`` §3).

``POST`` checks the body and compiles the PQL against the tenant's profile store (the
synthetic XDM schema when nothing is loaded yet): text that does not parse or does not fit
the schema is a 400 whose detail carries the parser's position and caret line; a name the
tenant already uses is a 422. ``pql/json`` is accepted with a PQL *text* value (as the seed
tutorial sends it) or with the documented JSON tree (``fnApply``/``fieldLookup``/``literal``).
"""

from __future__ import annotations

import json
import math
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from aep_io.emulator.gateway import authenticate, echo, int_param, json_type, problem
from aep_io.emulator.profiles import public_schema
from aep_io.emulator.segmentation import (
    PROFILE_SCHEMA_NAME,
    SVC,
    check_schema,
    default_merge_policy,
    emulator_of,
    json_body,
    sandbox_info,
    want,
)
from aep_io.emulator.store import Tenant, now_ms

if TYPE_CHECKING:
    from aep_io.emulator.core import Emulator

__all__ = ["pql_schema", "pql_text", "routes"]

KIND = "segmentDefinition"
_FORMATS = ("pql/text", "pql/json")
_MAX_TTL_DAYS = 36_500
_SORT_FIELDS = ("creationTime", "updateTime", "name")
_DEFAULT_EVALUATION = {"batch": {"enabled": True}, "continuous": {"enabled": False},
                       "synchronous": {"enabled": False}}  # fmt: skip


def pql_schema(emulator: Emulator, tenant: Tenant) -> pa.Schema:
    """What PQL may reference: the profile columns plus ``timeSeriesEvents`` (``xEvent``)."""
    from aep_io.emulator.synthetic import profile_schema

    full = emulator.profiles.schema(tenant)
    schema = public_schema(full) if full is not None else profile_schema()
    if schema.get_field_index("timeSeriesEvents") < 0:
        events = public_schema(emulator.profiles.events_schema(tenant))
        schema = schema.append(pa.field("timeSeriesEvents", pa.list_(pa.struct(list(events)))))
    return schema


def pql_text(expression: dict[str, Any]) -> str:
    """The PQL text of a stored ``expression`` (a ``pql/json`` tree is turned into text)."""
    value = expression["value"]
    if expression.get("format") == "pql/json":
        try:
            tree = json.loads(value)
        except ValueError:
            return value  # the seed's pql/json with a text value
        if isinstance(tree, dict):
            return _json_to_text(tree)
    return value


_BINARY = {"=", "!=", "<", "<=", ">", ">=", "+", "-", "*", "/", "%", "like", "in", "notIn"}


def _json_to_text(node: Any) -> str:
    """PQL text of a ``pql/json`` node (the documented node types only)."""
    if not isinstance(node, dict):
        raise ValueError(f"pql/json node must be an object, got {type(node).__name__}")
    kind = node.get("nodeType")
    if kind == "literal":
        value = node.get("value")
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, str):
            return json.dumps(value)
        if isinstance(value, int | float):
            return repr(value)
        raise ValueError(f"unsupported pql/json literal {value!r}")
    if kind == "parameterReference":
        return ""
    if kind == "fieldLookup":
        parent = _json_to_text(node.get("object"))
        name = node.get("fieldName")
        if not isinstance(name, str):
            raise ValueError("fieldLookup needs a fieldName string")
        return f"{parent}.{name}" if parent else name
    if kind == "fnApply":
        name, params = node.get("fnName"), node.get("params") or []
        if not isinstance(params, list):
            raise ValueError(f"fnApply params must be an array, not {json_type(params)}")
        args = [_json_to_text(p) for p in params]
        if name in _BINARY and len(args) == 2:
            return f"({args[0]} {name} {args[1]})"
        if name in ("and", "or") and args:
            return "(" + f" {name} ".join(args) + ")"
        if name in ("not", "!") and len(args) == 1:
            return f"(not {args[0]})"
        if isinstance(name, str) and args:
            return f"{args[0]}.{name}({', '.join(args[1:])})"
        raise ValueError(f"unsupported pql/json function {name!r}")
    raise ValueError(f"unsupported pql/json nodeType {kind!r}")


def _shorten(message: str, width: int = 160) -> str:
    """A parser message cut to a readable size: the caret line and the source line above it
    are cut to a ``width`` window around the caret (a long expression is not echoed whole)."""
    lines = message.split("\n")
    if len(lines) == 3 and lines[2].rstrip().endswith("^") and len(lines[1]) > width + 2:
        source, caret = lines[1][2:], lines[2][2:].rstrip()
        start = max(0, len(caret) - 1 - width // 2)
        cut = "..." if start else ""
        lines[1] = f"  {cut}{source[start : start + width]}"
        lines[2] = f"  {' ' * len(cut)}{caret[start:]}"
    return "\n".join(line[:1000] for line in lines)[:2000]


def check_pql(emulator: Emulator, tenant: Tenant, text: str) -> None:
    """Compile ``text`` for ``tenant`` or raise a 400 with the parser's position message."""
    from aep_io.emulator.pql import PQLError, compile_pql, referenced_segments

    try:
        compile_pql(text, schema=pql_schema(emulator, tenant), now=datetime.now(UTC))
        missing = sorted(s for s in referenced_segments(text)
                         if emulator.store.get(KIND, tenant, s) is None)  # fmt: skip
    except PQLError as exc:
        where = "" if exc.line is None else (
            f" at line {exc.line}, column {exc.column} (position {exc.position})"
        )
        raise problem(400, SVC, f"Invalid PQL expression{where}: {_shorten(str(exc))}") from None
    except RecursionError:
        raise problem(400, SVC, "PQL expression is nested too deeply to compile") from None
    except (ValueError, TypeError, KeyError) as exc:  # never a 500 for user text
        raise problem(400, SVC, f"PQL expression cannot be compiled: {_shorten(str(exc))}"
                      ) from None
    if missing:
        raise problem(400, SVC, f"inSegment() names unknown segment definition(s): "
                      f"{', '.join(missing)}")  # fmt: skip


def _validate(body: dict[str, Any]) -> tuple[str, dict[str, Any], dict[str, Any]]:
    name = want(body, "name", str, "", required=True)
    if not name.strip():
        raise problem(400, SVC, "name must not be empty")
    for key in ("description", "mergePolicyId", "profileInstanceId"):
        want(body, key, str, "")
    evaluation = want(body, "evaluationInfo", dict, "") or {}
    for key in _DEFAULT_EVALUATION:
        if want(evaluation, key, dict, "evaluationInfo.") is not None:
            want(evaluation[key], "enabled", bool, f"evaluationInfo.{key}.")
    ttl = want(body, "ttlInDays", int, "")
    if ttl is not None and not 0 <= ttl <= _MAX_TTL_DAYS:
        raise problem(400, SVC, f"ttlInDays={ttl} must lie between 0 and {_MAX_TTL_DAYS}")
    expression = want(body, "expression", dict, "", required=True)
    kind = want(expression, "type", str, "expression.", required=True)
    if kind != "PQL":
        raise problem(400, SVC, f"expression.type {kind[:40]!r} is not supported (use \"PQL\")")
    fmt = want(expression, "format", str, "expression.", required=True)
    if fmt not in _FORMATS:
        raise problem(400, SVC, f"expression.format {fmt[:40]!r} is not supported: use one of "
                      f"{', '.join(_FORMATS)}")  # fmt: skip
    want(expression, "value", str, "expression.", required=True)
    schema = want(body, "schema", dict, "", required=True)
    if schema.get("name") is not None or not isinstance(schema.get("id"), str):
        if schema.get("name") is None:
            raise problem(400, SVC, "schema.name (or schema.id) is required, e.g. "
                          f"{{\"name\": \"{PROFILE_SCHEMA_NAME}\"}}")  # fmt: skip
        check_schema(schema)
    return name, expression, schema


async def create_definition(request: Request) -> Response:
    """``POST /segment/definitions`` → 200 with the stored definition and ``X-Location``."""
    tenant = authenticate(request)
    emulator = emulator_of(request)
    body = await json_body(request)
    name, expression, schema = _validate(body)
    try:
        text = pql_text(expression)
    except RecursionError:
        raise problem(400, SVC, "Invalid pql/json expression: nested too deeply") from None
    except (ValueError, TypeError) as exc:
        raise problem(400, SVC, f"Invalid pql/json expression: {exc}") from None
    check_pql(emulator, tenant, text)
    with emulator.jobs.lock:
        if any(d.get("name") == name for _, d in emulator.store.list(KIND, tenant)):
            raise problem(422, SVC, f"a segment definition named {name[:200]!r} already exists")
        ms = now_ms()
        seg_id = str(uuid.uuid4())
        evaluation = dict(_DEFAULT_EVALUATION)
        evaluation.update(body.get("evaluationInfo") or {})
        record = {
            "id": seg_id,
            "name": name,
            "description": body.get("description", ""),
            "profileInstanceId": body.get("profileInstanceId", "ups"),
            "expression": {"type": "PQL", "format": expression["format"],
                           "value": expression["value"]},
            "schema": schema,
            "evaluationInfo": evaluation,
            "mergePolicyId": body.get("mergePolicyId") or default_merge_policy(tenant),
            "imsOrgId": tenant.org,
            "sandbox": sandbox_info(tenant),
            "dataGovernancePolicy": {"excludeOptOut": True},
            "version": 1,
            "creationTime": ms,
            "updateTime": ms,
            "updateEpoch": ms // 1000,
        }
        if body.get("ttlInDays") is not None:
            record["ttlInDays"] = body["ttlInDays"]
        emulator.store.put(KIND, tenant, seg_id, record)
    location = f"{request.base_url}data/core/ups/segment/definitions/{seg_id}"
    return JSONResponse(record, headers={"X-Location": location})


def _get(request: Request, tenant: Tenant) -> dict[str, Any]:
    seg_id = request.path_params["id"]
    record = emulator_of(request).store.get(KIND, tenant, seg_id)
    if record is None:
        raise problem(404, SVC, f"Segment definition {echo(seg_id)} not found")
    return record


async def get_definition(request: Request) -> Response:
    """``GET /segment/definitions/{id}``."""
    return JSONResponse(_get(request, authenticate(request)))


async def delete_definition(request: Request) -> Response:
    """``DELETE /segment/definitions/{id}`` → 204 (422 while another definition uses it)."""
    from aep_io.emulator.pql import PQLError, referenced_segments

    tenant = authenticate(request)
    emulator = emulator_of(request)
    record = _get(request, tenant)
    users = []
    for other_id, other in emulator.store.list(KIND, tenant):
        try:
            if record["id"] in referenced_segments(pql_text(other["expression"])):
                users.append(other_id)
        except (PQLError, ValueError):
            continue
    if users:
        raise problem(422, SVC, f"segment definition {record['id']} is used by inSegment() in "
                      f"{', '.join(users)}")  # fmt: skip
    emulator.store.delete(KIND, tenant, record["id"])
    with emulator.profiles.lock(tenant):  # its membership goes with it
        emulator.profiles.overlay(tenant).discard(record["id"])
    return Response(status_code=204)


def _matches_filters(record: dict[str, Any], filters: dict[str, str]) -> bool:
    for path, wanted in filters.items():
        value: Any = record
        for part in path.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if str(value).lower() != wanted.lower():
            return False
    return True


async def list_definitions(request: Request) -> Response:
    """``GET /segment/definitions?start&limit&page&sort&evaluationInfo...=``."""
    tenant = authenticate(request)
    limit = int_param(request, "limit", 100, minimum=1, maximum=100, service=SVC)
    start = int_param(request, "start", 0, service=SVC)
    if request.query_params.get("page") not in (None, ""):
        start = int_param(request, "page", 0, service=SVC) * limit
    field, order = _sort(request.query_params.get("sort"))
    filters = {k: v for k, v in request.query_params.items() if k.startswith("evaluationInfo.")}
    items = [d for _, d in emulator_of(request).store.list(KIND, tenant)
             if _matches_filters(d, filters)]  # fmt: skip
    items.sort(key=lambda d: (d.get(field) or 0, d["id"]), reverse=order == "desc")
    page = items[start : start + limit]
    return JSONResponse({
        "segments": page,
        "page": {"totalCount": len(items), "totalPages": math.ceil(len(items) / limit),
                 "sortField": field, "sort": order, "pageSize": len(page), "limit": limit},
        "link": {},
    })  # fmt: skip


def _sort(raw: str | None) -> tuple[str, str]:
    if not raw:
        return "creationTime", "desc"
    field, _, order = raw.partition(":")
    order = order or "asc"
    if field not in _SORT_FIELDS or order not in ("asc", "desc"):
        raise problem(400, SVC, f"sort={raw[:60]!r}: use <field>:asc|desc with field one of "
                      f"{', '.join(_SORT_FIELDS)}")  # fmt: skip
    return field, order


async def bulk_get(request: Request) -> Response:
    """``POST /segment/definitions/bulk-get`` ``{"ids": [{"id": ...}]}`` → 207."""
    tenant = authenticate(request)
    body = await json_body(request)
    ids = want(body, "ids", list, "", required=True)
    store = emulator_of(request).store
    results = {}
    for item in ids:
        seg_id = item.get("id") if isinstance(item, dict) else None
        if not isinstance(seg_id, str):
            raise problem(400, SVC, 'ids must be a list of {"id": "<segment id>"}')
        record = store.get(KIND, tenant, seg_id)
        if record is not None:
            results[seg_id] = record
    return JSONResponse({"results": results}, status_code=207)


routes = [
    Route("/segment/definitions", create_definition, methods=["POST"]),
    Route("/segment/definitions", list_definitions, methods=["GET"]),
    Route("/segment/definitions/", list_definitions, methods=["GET"]),
    Route("/segment/definitions/bulk-get", bulk_get, methods=["POST"]),
    Route("/segment/definitions/{id}", get_definition, methods=["GET"]),
    Route("/segment/definitions/{id}", delete_definition, methods=["DELETE"]),
]

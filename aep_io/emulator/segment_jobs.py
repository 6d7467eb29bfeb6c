"""``/segment/jobs``: evaluate segment definitions over the profile store (``aep_api.md`` §2).

A job is created NEW (200) and runs in the background: NEW → QUEUED → PROCESSING →
SUCCEEDED | FAILED, or CANCELLING → CANCELLED after a DELETE (204, empty body). Each state
lasts at least ``Emulator.job_step_delay`` seconds.

A segment id the tenant has no definition for does not reject the request: the job is created
and then FAILS with an ``errors`` entry naming the id (AEP validates asynchronously too).

Evaluation (:func:`evaluate`) is ONE DuckDB query over the tenant's ``profiles.parquet`` that
computes every segment's PQL condition; segments using ``inSegment`` of another segment of the
same job are computed in a later chained CTE that sees the earlier results in
``segmentMembership``. The results then update ``segmentMembership.ups`` (realized / existing /
exited, :func:`.profiles.merge_membership`) in one streaming, atomic rewrite of the store.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from aep_io.emulator.gateway import authenticate, int_param, problem
from aep_io.emulator.jobs import time_block
from aep_io.emulator.profiles import _entries, merge_membership
from aep_io.emulator.segment_definitions import KIND as DEFINITION
from aep_io.emulator.segment_definitions import pql_schema, pql_text
from aep_io.emulator.segmentation import (
    PROFILE_SCHEMA_NAME,
    SVC,
    default_merge_policy,
    emulator_of,
    json_body,
    request_id,
    sandbox_info,
)
from aep_io.emulator.store import Tenant, new_batch_id, now_ms

if TYPE_CHECKING:
    from aep_io.emulator.core import Emulator

__all__ = ["EvaluationError", "evaluate", "routes"]

KIND = "segmentJob"
STATUSES = ("NEW", "QUEUED", "PROCESSING", "CANCELLING", "CANCELLED", "FAILED", "SUCCEEDED")
TERMINAL = {"CANCELLED", "FAILED", "SUCCEEDED"}


class EvaluationError(Exception):
    """A segment that cannot be evaluated (bad PQL for the current store, a cycle...)."""


# ------------------------------------------------------------------------------- evaluation


@dataclass
class Evaluation:
    """Counts of one evaluation, per segment id."""

    total: int = 0
    by_status: dict[str, Counter[str]] = field(default_factory=dict)
    by_namespace: dict[str, Counter[str]] = field(default_factory=dict)
    committed: bool = True

    def metrics(self, merge_policy: str) -> dict[str, Any]:
        return {
            "totalProfiles": self.total,
            "totalProfilesByMergePolicy": {merge_policy: self.total},
            "segmentedProfileCounter": {
                s: c["realized"] + c["existing"] for s, c in self.by_status.items()
            },
            "segmentedProfileByNamespaceCounter": {
                s: dict(sorted(c.items())) for s, c in self.by_namespace.items()
            },
            "segmentedProfileByStatusCounter": {
                s: {k: c[k] for k in ("realized", "existing", "exited")}
                for s, c in self.by_status.items()
            },
        }


def _levels(ids: list[str], deps: dict[str, set[str]]) -> list[list[int]]:
    """Indices of ``ids`` grouped so that a segment comes after the job segments it uses."""
    index = {s: i for i, s in enumerate(ids)}
    level: dict[str, int] = {}

    def depth(s: str, path: tuple[str, ...]) -> int:
        if s in path:
            raise EvaluationError("inSegment() cycle: " + " -> ".join((*path, s)))
        if s not in level:
            inner = [depth(d, (*path, s)) for d in deps[s] if d in index]
            level[s] = 1 + max(inner) if inner else 0
        return level[s]

    for s in ids:
        depth(s, ())
    groups: list[list[int]] = [[] for _ in range(max(level.values(), default=-1) + 1)]
    for s in ids:
        groups[level[s]].append(index[s])
    return groups


def _lit(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


_MEMBER_STRUCT = ("{'version': %s, 'lastQualificationTime': NULL::TIMESTAMPTZ, "
                  "'validUntil': NULL::TIMESTAMPTZ, 'status': 'realized'}")  # fmt: skip


def _overlay(ids: list[str], columns: list[str]) -> str:
    """SQL for ``segmentMembership`` with the ``ups`` entries of ``ids`` replaced by the
    qualification results in ``columns`` (for inSegment of a later level)."""
    sm = 'coalesce("segmentMembership", MAP {})'
    others = f"map_from_entries(list_filter(map_entries({sm}), lambda e: lower(e.key) <> 'ups'))"
    kept = (
        f"list_filter(flatten(list_transform(list_filter(map_entries({sm}), "
        "lambda e: lower(e.key) = 'ups'), lambda e: map_entries(e.value))), "
        f"lambda x: x.key NOT IN ({', '.join(_lit(s) for s in ids)}))"
    )
    fresh = ", ".join(
        f"{{'key': {_lit(s)}, 'value': CASE WHEN {c} THEN {_MEMBER_STRUCT % _lit('1')} END}}"
        for s, c in zip(ids, columns, strict=True)
    )
    new = f"list_filter([{fresh}], lambda x: x.value IS NOT NULL)"
    return f"map_concat({others}, MAP {{'ups': map_from_entries(list_concat({kept}, {new}))}})"


def profile_source(
    emulator: Emulator, tenant: Tenant, *, events: bool, event_filter: str = "TRUE",
    event_columns: str | None = None,
) -> str:
    """SQL relation of the tenant's profiles (with ``__row``, the file order), optionally with a
    ``timeSeriesEvents`` column aggregated from the events table."""
    from aep_io.emulator.profiles import PROFILE_ID, is_internal

    path = _lit(str(emulator.profiles.profiles_path(tenant)))
    base = f"SELECT file_row_number AS __row, * EXCLUDE (file_row_number) FROM read_parquet({path}, file_row_number = true)"  # noqa: E501
    if not events:
        return f"({base})"
    events_path = emulator.profiles.events_path(tenant)
    schema = emulator.profiles.events_schema(tenant)
    if event_columns is None:
        names = [f.name for f in schema if not is_internal(f.name)]
        event_columns = "struct_pack(" + ", ".join(f'"{n}" := "{n}"' for n in names) + ")"
    order = ' ORDER BY "timestamp"' if "timestamp" in schema.names else ""
    agg = (
        f'SELECT "{PROFILE_ID}" AS __pid, list({event_columns}{order}) AS __events '
        f"FROM read_parquet({_lit(str(events_path))}) WHERE {event_filter} GROUP BY 1"
    )
    return (
        f"(SELECT p.*, CASE WHEN e.__events IS NULL THEN [] ELSE e.__events END "
        f'AS "timeSeriesEvents" FROM ({base}) p LEFT JOIN ({agg}) e ON p."{PROFILE_ID}" = e.__pid)'
    )


def evaluate(
    emulator: Emulator,
    tenant: Tenant,
    definitions: list[dict[str, Any]],
    *,
    now: datetime | None = None,
    commit: Any = lambda: True,
) -> Evaluation:
    """Evaluate ``definitions`` for ``tenant`` and update the membership in the store.

    ``commit()`` is asked before the rewritten store replaces the old one (a cancelled job
    says no). Raises :class:`EvaluationError` for PQL that no longer fits the store.
    """
    from aep_io.emulator.pql import PQLError, compile_pql, referenced_segments

    now = now or datetime.now(UTC)
    ids = [d["id"] for d in definitions]
    result = Evaluation(
        by_status={s: Counter() for s in ids}, by_namespace={s: Counter() for s in ids}
    )
    profiles = emulator.profiles
    with profiles.lock(tenant):
        if not profiles.exists(tenant) or not ids:
            return result
        schema = pql_schema(emulator, tenant)
        compiled, deps = [], {}
        for d in definitions:
            try:
                text = pql_text(d["expression"])
                compiled.append(compile_pql(text, schema=schema, now=now))
                deps[d["id"]] = referenced_segments(text)
            except (PQLError, ValueError) as exc:
                raise EvaluationError(f"segment {d['id']}: {exc}") from None
        levels = _levels(ids, deps)
        events = any('"timeSeriesEvents"' in sql for sql in compiled)
        event_columns = _event_columns(emulator, tenant, compiled) if events else None
        ctes, previous = [], None
        for n, group in enumerate(levels):
            conditions = ", ".join(f'{compiled[j]} AS "__q{j}"' for j in group)
            if previous is None:
                source = profile_source(emulator, tenant, events=events,
                                        event_columns=event_columns)
                ctes.append(f"l0 AS (SELECT *, {conditions} FROM {source})")
            else:
                overlay = _overlay([ids[j] for j in previous], [f'"__q{j}"' for j in previous])
                ctes.append(f'm{n} AS (SELECT * REPLACE ({overlay} AS "segmentMembership") '
                            f"FROM l{n - 1})")  # fmt: skip
                ctes.append(f"l{n} AS (SELECT *, {conditions} FROM m{n})")
            previous = group
        columns = ", ".join(f'"__q{j}"' for j in range(len(ids)))
        sql = f"WITH {', '.join(ctes)} SELECT {columns} FROM l{len(levels) - 1} ORDER BY __row"
        con = duckdb.connect()
        try:
            table = con.sql(sql).to_arrow_table()
        except duckdb.Error as exc:
            raise EvaluationError(f"evaluating the segments failed: {exc}") from None
        finally:
            con.close()
        qualifies = np.column_stack(
            [np.asarray(table.column(j).to_numpy(), dtype=bool) for j in range(len(ids))]
        ) if table.num_rows else np.zeros((0, len(ids)), dtype=bool)
        result.total = table.num_rows
        versions = [str(d.get("version", 1)) for d in definitions]
        now_us = int(now.timestamp() * 1_000_000)
        valid_until = [
            int((now + timedelta(days=d["ttlInDays"])).timestamp() * 1_000_000)
            if d.get("ttlInDays") else None
            for d in definitions
        ]
        lock = threading.Lock()

        def rewrite(batch: pa.RecordBatch, start: int) -> pa.Array:
            n = batch.num_rows
            new, codes = merge_membership(batch.column("segmentMembership"),
                                          qualifies[start : start + n], ids, versions,
                                          valid_until, now_us)  # fmt: skip
            _count(result, lock, ids, codes, batch.column("identityMap"))
            return new

        result.committed = profiles.rewrite_membership(tenant, rewrite, commit=commit)
    return result


def _event_columns(emulator: Emulator, tenant: Tenant, compiled: list[str]) -> str:
    """``struct_pack`` of the event fields the compiled conditions name (aggregating every
    event field into lists costs several times more than the conditions themselves)."""
    from aep_io.emulator.profiles import is_internal

    names = [f.name for f in emulator.profiles.events_schema(tenant) if not is_internal(f.name)]
    used = [n for n in names if any(f"'{n}'" in sql or f'"{n}"' in sql for sql in compiled)]
    return "struct_pack(" + ", ".join(f'"{n}" := "{n}"' for n in used or names[:1]) + ")"


def _count(result: Evaluation, lock: threading.Lock, ids: list[str], codes: np.ndarray,
           identity: pa.Array) -> None:  # fmt: skip
    offsets, keys, _ = _entries(identity)
    rows = np.repeat(np.arange(len(identity)), np.diff(offsets))
    encoded = pc.dictionary_encode(keys.cast(pa.string()))
    indices = np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    names = encoded.dictionary.to_pylist()
    with lock:
        for j, seg in enumerate(ids):
            column = codes[:, j]
            for code, status in ((1, "realized"), (2, "existing"), (3, "exited")):
                result.by_status[seg][status] += int(np.count_nonzero(column == code))
            member = (column == 1) | (column == 2)
            counts = np.bincount(indices[member[rows]], minlength=len(names))
            for name, count in zip(names, counts, strict=True):
                if count:
                    result.by_namespace[seg][name] += int(count)


# ------------------------------------------------------------------------------- job records


def _segment_entry(record: dict[str, Any]) -> dict[str, Any]:
    policy = record.get("mergePolicyId")
    return {
        "id": record["id"],
        "version": record.get("version", 1),
        "expression": record["expression"],
        "mergePolicyId": policy,
        "mergePolicy": {"id": policy, "version": 1},
    }


def _parse_request(body: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    if isinstance(body, list):
        items, schema = body, {"name": PROFILE_SCHEMA_NAME}
    else:
        items = body.get("segments")
        schema = body.get("schema") or {"name": PROFILE_SCHEMA_NAME}
        if not isinstance(schema, dict):
            raise problem(400, SVC, "schema must be an object, e.g. "
                          f'{{"name": "{PROFILE_SCHEMA_NAME}"}}')  # fmt: skip
    if not isinstance(items, list) or not items:
        raise problem(400, SVC, 'the body must be a non-empty array [{"segmentId": "<id>"}, ...] '
                      'or {"schema": {...}, "segments": [{"segmentId": "*"}]}')  # fmt: skip
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("segmentId"), str):
            raise problem(400, SVC, f"segments[{i}] must be an object with a segmentId string")
        if not item["segmentId"]:
            raise problem(400, SVC, f"segments[{i}].segmentId must not be empty")
        if "snapshot" in item and not isinstance(item["snapshot"], dict):
            raise problem(400, SVC, f"segments[{i}].snapshot must be an object")
    return items, schema


async def create_job(request: Request) -> Response:
    """``POST /segment/jobs`` → 200 with the NEW job."""
    tenant = authenticate(request)
    emulator = emulator_of(request)
    items, schema = _parse_request(await json_body(request, array=True))
    store = emulator.store
    segments: list[dict[str, Any]] = []
    if any(item["segmentId"] == "*" for item in items):
        segments = [{"segmentId": d["id"], "segment": _segment_entry(d)}
                    for _, d in store.list(DEFINITION, tenant)]  # fmt: skip
    for item in items:
        if item["segmentId"] == "*":
            continue
        entry: dict[str, Any] = {"segmentId": item["segmentId"]}
        record = store.get(DEFINITION, tenant, item["segmentId"])
        if record is not None:
            entry["segment"] = _segment_entry(record)
        if "snapshot" in item:
            entry["snapshot"] = item["snapshot"]
        segments.append(entry)
    from aep_io.emulator.jobs import next_number

    ms = now_ms()
    job_id = str(uuid.uuid4())
    record = {
        "id": job_id,
        "imsOrgId": tenant.org,
        "sandbox": sandbox_info(tenant),
        "profileInstanceId": "ups",
        "source": "api",
        "status": "NEW",
        "batchId": new_batch_id(),
        "computeJobId": next_number(store, "computeJobId"),
        "computeGatewayJobId": str(uuid.uuid4()),
        "segments": segments,
        "metrics": {"totalTime": {"startTimeInMs": ms}, "profileSegmentationTime": {}},
        "errors": [],
        "requestId": request_id(request),
        "schema": schema,
        "modelName": schema.get("name", PROFILE_SCHEMA_NAME),
        "properties": {},
        "_links": {
            "cancel": {"href": f"/segment/jobs/{job_id}", "method": "DELETE"},
            "checkStatus": {"href": f"/segment/jobs/{job_id}", "method": "GET"},
        },
        "creationTime": ms,
        "updateTime": ms,
        "updateEpoch": ms // 1000,
    }
    emulator.jobs.reserve(KIND, job_id)
    store.put(KIND, tenant, job_id, record)
    emulator.jobs.submit(KIND, job_id, lambda: run_job(emulator, tenant, job_id))
    return JSONResponse(record)


def run_job(emulator: Emulator, tenant: Tenant, job_id: str) -> None:
    """The background lifecycle of a segment job."""
    runner, delay = emulator.jobs, emulator.job_step_delay

    def set_status(status: str, **fields: Any) -> dict[str, Any] | None:
        def change(r: dict[str, Any]) -> None:
            if r["status"] not in TERMINAL:
                r["status"] = "CANCELLED" if r["status"] == "CANCELLING" else status
                r.update(fields)
        return runner.update(KIND, tenant, job_id, change)

    def cancelled() -> bool:
        if runner.status(KIND, tenant, job_id) != "CANCELLING":
            return False
        runner.sleep(delay)
        set_status("CANCELLED")
        return True

    runner.sleep(delay)
    if cancelled() or set_status("QUEUED") is None:
        return
    runner.sleep(delay)
    if cancelled():
        return
    record = set_status("PROCESSING")
    if record is None or record["status"] != "PROCESSING":
        return
    started = now_ms()
    metrics = dict(record["metrics"])
    definitions, errors = [], []
    for entry in record["segments"]:
        found = emulator.store.get(DEFINITION, tenant, entry["segmentId"])
        if found is None or "segment" not in entry:
            errors.append({"code": "0100000404", "callStack": "",
                           "msg": f"Segment definition {entry['segmentId']} not found"})
        elif all(d["id"] != found["id"] for d in definitions):
            definitions.append(found)
    if not record["segments"]:
        errors.append({"code": "0100000400", "msg": "the job has no segments to evaluate",
                       "callStack": ""})  # fmt: skip
    result = None
    if not errors:
        try:
            result = evaluate(emulator, tenant, definitions,
                              commit=lambda: runner.status(KIND, tenant, job_id) != "CANCELLING")
        except EvaluationError as exc:
            errors.append({"code": "0100000422", "msg": str(exc), "callStack": ""})
        except Exception as exc:  # a bug or an I/O problem: fail the job, keep the emulator up
            errors.append({"code": "0100000500", "msg": f"{type(exc).__name__}: {exc}",
                           "callStack": ""})  # fmt: skip
    runner.sleep(delay - (now_ms() - started) / 1000)
    metrics["profileSegmentationTime"] = time_block(started)
    if result is not None:
        metrics.update(result.metrics(default_merge_policy(tenant)))
    metrics["totalTime"] = time_block(record["creationTime"])
    if errors:
        set_status("FAILED", errors=errors, metrics=metrics)
    elif result is not None and not result.committed:
        set_status("CANCELLED", metrics=metrics)
    else:
        set_status("SUCCEEDED", metrics=metrics)


# ------------------------------------------------------------------------------- routes


def _get(request: Request, tenant: Tenant) -> dict[str, Any]:
    emulator = emulator_of(request)
    job_id = request.path_params["id"]
    record = emulator.store.get(KIND, tenant, job_id)
    if record is None:
        raise problem(404, SVC, f"Segment job {job_id} not found")
    return emulator.jobs.settle_orphan(KIND, tenant, record, TERMINAL)


async def get_job(request: Request) -> Response:
    """``GET /segment/jobs/{id}``."""
    return JSONResponse(_get(request, authenticate(request)))


async def cancel_job(request: Request) -> Response:
    """``DELETE /segment/jobs/{id}`` → 204, empty; a running job goes CANCELLING → CANCELLED
    (a finished job is left as it is)."""
    tenant = authenticate(request)
    record = _get(request, tenant)

    def change(r: dict[str, Any]) -> None:
        if r["status"] not in TERMINAL:
            r["status"] = "CANCELLING"

    emulator_of(request).jobs.update(KIND, tenant, record["id"], change)
    return Response(status_code=204)


async def list_jobs(request: Request) -> Response:
    """``GET /segment/jobs?start&limit&status&sort&property`` (``_page``/``children``)."""
    tenant = authenticate(request)
    emulator = emulator_of(request)
    start = int_param(request, "start", 0, service=SVC)
    limit = int_param(request, "limit", 100, minimum=1, maximum=1000, service=SVC)
    status = request.query_params.get("status")
    wanted = set()
    if status:
        wanted = {s.strip().upper() for s in status.split(",")}
        bad = wanted - set(STATUSES)
        if bad:
            raise problem(400, SVC, f"status {', '.join(sorted(bad))} is not one of "
                          f"{', '.join(STATUSES)}")  # fmt: skip
    field, order = _sort(request.query_params.get("sort"))
    prop = request.query_params.get("property")
    items = [emulator.jobs.settle_orphan(KIND, tenant, r, TERMINAL)
             for _, r in emulator.store.list(KIND, tenant)]  # fmt: skip
    items = [r for r in items if (not wanted or r["status"] in wanted)
             and (not prop or _has_property(r, prop))]  # fmt: skip
    items.sort(key=lambda r: (r.get(field) or 0, r["id"]), reverse=order == "desc")
    page = items[start : start + limit]
    more = start + limit < len(items)
    nxt = {"href": f"/segment/jobs?start={start + limit}&limit={limit}"} if more else {}
    return JSONResponse({"_page": {"totalCount": len(items), "pageSize": len(page)},
                         "children": page, "_links": {"next": nxt}})  # fmt: skip


def _sort(raw: str | None) -> tuple[str, str]:
    if not raw:
        return "creationTime", "desc"
    field, _, order = raw.partition(":")
    order = order or "asc"
    if field not in ("creationTime", "updateTime") or order not in ("asc", "desc"):
        raise problem(400, SVC, f"sort={raw[:60]!r}: use creationTime|updateTime:asc|desc")
    return field, order


def _has_property(record: dict[str, Any], prop: str) -> bool:
    """``path==value`` or ``arrayAttr~key==value`` (e.g. ``segments~segmentId==X``)."""
    left, sep, value = prop.partition("==")
    if not sep:
        raise problem(400, SVC, f"property={prop[:60]!r}: use path==value or array~key==value")
    array, tilde, key = left.partition("~")
    if tilde:
        items = record.get(array)
        return isinstance(items, list) and any(
            isinstance(i, dict) and str(i.get(key)) == value for i in items
        )
    current: Any = record
    for part in left.split("."):
        current = current.get(part) if isinstance(current, dict) else None
    return str(current) == value


async def bulk_get(request: Request) -> Response:
    """``POST /segment/jobs/bulk-get`` ``{"ids": [{"id": ...}]}`` → 207 ``{"results": ...}``."""
    tenant = authenticate(request)
    emulator = emulator_of(request)
    body = await json_body(request)
    ids = body.get("ids")
    if not isinstance(ids, list) or not all(
        isinstance(i, dict) and isinstance(i.get("id"), str) for i in ids
    ):
        raise problem(400, SVC, 'ids must be a list of {"id": "<segment job id>"}')
    results = {}
    for item in ids:
        record = emulator.store.get(KIND, tenant, item["id"])
        if record is not None:
            results[item["id"]] = emulator.jobs.settle_orphan(KIND, tenant, record, TERMINAL)
    return JSONResponse({"results": results}, status_code=207)


routes = [
    Route("/segment/jobs", create_job, methods=["POST"]),
    Route("/segment/jobs", list_jobs, methods=["GET"]),
    Route("/segment/jobs/", list_jobs, methods=["GET"]),
    Route("/segment/jobs/bulk-get", bulk_get, methods=["POST"]),
    Route("/segment/jobs/{id}", get_job, methods=["GET"]),
    Route("/segment/jobs/{id}", cancel_job, methods=["DELETE"]),
]

"""``/segment/jobs``: evaluate segment definitions over the profile store (``aep_api.md`` §2).

A job is created NEW (200) and runs in the background: NEW → QUEUED → PROCESSING →
SUCCEEDED | FAILED, or CANCELLING → CANCELLED after a DELETE (204, empty body). Each state
lasts at least ``Emulator.job_step_delay`` seconds.

A segment id the tenant has no definition for does not reject the request: the job is created
and then FAILS with an ``errors`` entry naming the id (AEP validates asynchronously too).

Evaluation (:func:`evaluate`) is ONE DuckDB query over the tenant's ``profiles.parquet`` that
computes every segment's PQL condition; segments using ``inSegment`` of another segment of the
same job are computed in a later chained CTE that sees the earlier results in
``segmentMembership``. The results become each segment's ``ups`` entries (realized / existing /
exited, :func:`.membership_state.next_entries`), saved beside the store and overlaid on its
loaded ``segmentMembership`` by every reader.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from aep_io.emulator.gateway import authenticate, echo, int_param, problem
from aep_io.emulator.jobs import time_block
from aep_io.emulator.membership_state import entries_of, is_member, next_entries
from aep_io.emulator.profiles import ENTRY_TYPE
from aep_io.emulator.segment_definitions import KIND as DEFINITION
from aep_io.emulator.segment_definitions import pql_schema, pql_text
from aep_io.emulator.segmentation import (
    PROFILE_SCHEMA_NAME,
    SVC,
    check_schema,
    default_merge_policy,
    emulator_of,
    json_body,
    request_id,
    sandbox_info,
    want,
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
    seconds: dict[str, float] = field(default_factory=dict)  # per phase, for benchmarks

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


def profile_source(
    emulator: Emulator, tenant: Tenant, *, events: bool, event_filter: str = "TRUE",
    event_columns: str | None = None, joined: str | None = None,
) -> str:
    """SQL relation of the tenant's profiles (with ``__row``, the file order), optionally with a
    ``timeSeriesEvents`` column aggregated from the events table, and with the columns of the
    relation named ``joined`` (one row per profile, in store order) beside each row."""
    from aep_io.emulator.profiles import PROFILE_ID, is_internal

    path = _lit(str(emulator.profiles.profiles_path(tenant)))
    base = f"SELECT file_row_number AS __row, * EXCLUDE (file_row_number) FROM read_parquet({path}, file_row_number = true)"  # noqa: E501
    if joined is not None:
        base = f"SELECT * FROM ({base}) POSITIONAL JOIN {joined}"
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
    """Evaluate ``definitions`` for ``tenant`` and save their membership beside the store.

    One DuckDB query computes every segment's condition per profile; ``inSegment`` of a segment
    of an earlier level reads that level's result, of a segment an earlier job evaluated its
    saved entries (:mod:`.membership_state`), of any other the loaded ``segmentMembership``.
    ``commit()`` is asked before the new entries replace the old (a cancelled job says no).
    Raises :class:`EvaluationError` for PQL that no longer fits the store.
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
        texts, deps = [], {}
        for d in definitions:
            try:
                texts.append(pql_text(d["expression"]))
                deps[d["id"]] = referenced_segments(texts[-1])
            except (PQLError, ValueError) as exc:
                raise EvaluationError(f"segment {d['id']}: {exc}") from None
        levels = _levels(ids, deps)
        rows = profiles.count(tenant)
        overlay = profiles.overlay(tenant)
        used = overlay.load(sorted(set().union(*deps.values())), rows)  # earlier jobs' saves
        members = {s: f'"__m{i}"' for i, s in enumerate(used)}
        compiled: list[str] = [""] * len(ids)
        for n, group in enumerate(levels):
            earlier = {ids[j]: f'"__q{j}"' for g in levels[:n] for j in g}
            for j in group:
                try:
                    compiled[j] = compile_pql(texts[j], schema=schema, now=now,
                                              members={**members, **earlier})  # fmt: skip
                except (PQLError, ValueError) as exc:
                    raise EvaluationError(f"segment {ids[j]}: {exc}") from None
        events = any('"timeSeriesEvents"' in sql for sql in compiled)
        event_columns = _event_columns(emulator, tenant, compiled) if events else None
        source = profile_source(emulator, tenant, events=events, event_columns=event_columns,
                                joined="__members" if used else None)  # fmt: skip
        ctes = []
        for n, group in enumerate(levels):
            conditions = ", ".join(f'{compiled[j]} AS "__q{j}"' for j in group)
            upstream = source if n == 0 else f"l{n - 1}"
            ctes.append(f"l{n} AS (SELECT *, {conditions} FROM {upstream})")
        columns = ", ".join(f'"__q{j}"' for j in range(len(ids)))
        sql = f"WITH {', '.join(ctes)} SELECT __row, {columns} FROM l{len(levels) - 1}"
        started = time.perf_counter()
        con = duckdb.connect()
        try:
            if used:
                con.register("__members", pa.table(
                    {f"__m{i}": is_member(e) for i, e in enumerate(used.values())}))
            table = con.sql(sql).to_arrow_table()
        except duckdb.Error as exc:
            raise EvaluationError(f"evaluating the segments failed: {exc}") from None
        finally:
            con.close()
        # the query's row order need not be the store's (the events join): place rows by __row
        at = np.asarray(table.column("__row").to_numpy(), dtype=np.int64)
        in_order = len(at) == rows and bool((at == np.arange(rows)).all())
        qualifies = np.zeros((len(ids), rows), dtype=bool)  # one contiguous row per segment
        for j in range(len(ids)):
            column = np.asarray(table.column(j + 1).to_numpy(), dtype=bool)
            if in_order:
                qualifies[j] = column
            else:
                qualifies[j, at] = column
        result.total = rows
        result.seconds["query"] = time.perf_counter() - started
        before = overlay.load(ids, rows)
        loaded = profiles.loaded_segment_ids(tenant)
        from_store = [s for s in ids if s not in before and s in loaded]
        if from_store:
            before.update(_loaded_entries(emulator, tenant, from_store))
        now_us = int(now.timestamp() * 1_000_000)
        after, codes = {}, np.zeros((len(ids), rows), dtype=np.int8)
        shared: dict[tuple[object, ...], pa.Array] = {}  # constant columns, built once per job
        for j, d in enumerate(definitions):
            until = (int((now + timedelta(days=d["ttlInDays"])).timestamp() * 1_000_000)
                     if d.get("ttlInDays") else None)  # fmt: skip
            prev = before.get(ids[j], pa.nulls(rows, ENTRY_TYPE))
            after[ids[j]], codes[j] = next_entries(prev, qualifies[j],
                                                      str(d.get("version", 1)), until, now_us,
                                                      shared=shared)  # fmt: skip
        _count(result, ids, codes, *profiles.namespace_sets(tenant))
        result.seconds["update"] = time.perf_counter() - started - result.seconds["query"]
        result.committed = overlay.save(after, commit=commit)
        result.seconds["save"] = (time.perf_counter() - started - result.seconds["query"]
                                  - result.seconds["update"])  # fmt: skip
    return result


def _loaded_entries(emulator: Emulator, tenant: Tenant, ids: list[str]) -> dict[str, pa.Array]:
    """The entries of ``ids`` in the store's loaded ``segmentMembership``."""
    parts: dict[str, list[pa.Array]] = {s: [] for s in ids}
    source = pq.ParquetFile(emulator.profiles.profiles_path(tenant))
    for batch in source.iter_batches(columns=["segmentMembership"]):
        for s, entries in entries_of(batch.column(0), ids).items():
            parts[s].append(entries)
    return {s: pa.concat_arrays(p) if p else pa.nulls(0, ENTRY_TYPE) for s, p in parts.items()}


def _event_columns(emulator: Emulator, tenant: Tenant, compiled: list[str]) -> str:
    """``struct_pack`` of the event fields the compiled conditions name (aggregating every
    event field into lists costs several times more than the conditions themselves)."""
    from aep_io.emulator.profiles import is_internal

    names = [f.name for f in emulator.profiles.events_schema(tenant) if not is_internal(f.name)]
    used = [n for n in names if any(f"'{n}'" in sql or f'"{n}"' in sql for sql in compiled)]
    return "struct_pack(" + ", ".join(f'"{n}" := "{n}"' for n in used or names[:1]) + ")"


def _count(result: Evaluation, ids: list[str], codes: np.ndarray, namespace_set: np.ndarray,
           sets: list[list[str]]) -> None:  # fmt: skip
    """Per segment: profiles by status, and members by identity namespace (``codes[j]`` holds
    segment ``j``'s status codes, one per profile)."""
    width = 5  # status codes 0-4
    # the smallest unsigned type for (namespace set, code) keys: adding is the costly part
    key_type = np.min_scalar_type(max(len(sets), 1) * width - 1)
    base = namespace_set.astype(key_type) * key_type.type(width)
    for j, seg in enumerate(ids):
        # one pass: profiles per (namespace set, status code)
        keys = base + codes[j].view(np.uint8).astype(key_type, copy=False)
        table = np.bincount(keys, minlength=len(sets) * width).reshape(-1, width)
        for code, status in ((1, "realized"), (2, "existing"), (3, "exited")):
            result.by_status[seg][status] += int(table[:, code].sum())
        members = table[:, 1] + table[:, 2]
        for index in np.flatnonzero(members):
            for namespace in sets[index]:
                result.by_namespace[seg][namespace] += int(members[index])


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
        check_schema(schema)
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
        raise problem(404, SVC, f"Segment job {echo(job_id)} not found")
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
    if prop and "==" not in prop:
        raise problem(400, SVC, f"property={prop[:60]!r}: use path==value or array~key==value")
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
    left, _, value = prop.partition("==")
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
    ids = want(body, "ids", list, "", required=True)
    if not all(isinstance(i, dict) and isinstance(i.get("id"), str) for i in ids):
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

"""``/export/jobs``: write profiles from the profile store into Catalog batches (``aep_api.md`` §4).

``POST`` checks the body, creates the Catalog batch(es) at once (status ``loading``; one per
filter segment with ``destination.segmentPerBatch``) and answers 200 with the NEW job, whose
integer ``id`` and batch id(s) are final. In the background the job selects the profiles with
one DuckDB query per batch (segment filter with status and qualification time, update time,
empty profiles), projects ``fields`` (dot paths; structs pruned; unknown paths ignored, as AEP
does), adds ``timeSeriesEvents`` for ``additionalFields.eventList``, and writes snappy parquet
parts into the batch, which then becomes ``success`` (``failed`` with errors otherwise).

Statuses: NEW → PROCESSING → SUCCEEDED | FAILED. ``DELETE`` answers 200 ``{"status": true,
"message": "Export job has been marked for cancelling"}``; the job then ends CANCELLED, which
is a guess: AEP documents no terminal status for a cancelled export job.
"""

from __future__ import annotations

import contextlib
import re
import tempfile
import uuid
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from aep_io.emulator.catalog import PROFILE_UNION_SCHEMA
from aep_io.emulator.gateway import authenticate, echo, int_param, problem
from aep_io.emulator.jobs import next_number, time_block
from aep_io.emulator.profiles import INGEST_TIME, PROFILE_ID, is_internal, parquet_options
from aep_io.emulator.segment_definitions import KIND as DEFINITION
from aep_io.emulator.segment_jobs import evaluate, profile_source
from aep_io.emulator.segmentation import (
    SVC,
    check_schema,
    default_merge_policy,
    emulator_of,
    json_body,
    parse_time,
    request_id,
    want,
)
from aep_io.emulator.store import Tenant, now_ms

if TYPE_CHECKING:
    from aep_io.emulator.core import Emulator

__all__ = ["routes"]

KIND = "exportJob"
_NUMBER = re.compile(r"^[0-9]{1,18}$")  # ASCII digits that fit an int64
# The spec's enum is NEW, PROCESSING, SUCCEEDED, FAILED; CANCELLED (after DELETE) is a guess.
STATUSES = ("NEW", "PROCESSING", "SUCCEEDED", "FAILED", "CANCELLED")
TERMINAL = {"SUCCEEDED", "FAILED", "CANCELLED"}
SEGMENT_STATUSES = ("realized", "existing", "exited")
PART_ROWS = 250_000
ROW_GROUP_ROWS = 32_768


class _Cancelled(Exception):
    pass


# ------------------------------------------------------------------------------- the request


def _parse(body: dict[str, Any], emulator: Emulator, tenant: Tenant) -> dict[str, Any]:
    """Validate a create body; returns the normalised job fields (400/422 otherwise)."""
    schema = want(body, "schema", dict, "", required=True)
    check_schema(schema)
    dest = want(body, "destination", dict, "", required=True)
    dataset_id = want(dest, "datasetId", str, "destination.", required=True)
    per_batch = want(dest, "segmentPerBatch", bool, "destination.") or False
    fields = want(body, "fields", str, "")
    policy = want(body, "mergePolicy", dict, "")
    if policy is not None:
        want(policy, "id", str, "mergePolicy.")
        want(policy, "version", int, "mergePolicy.")
    filt = want(body, "filter", dict, "") or {}
    segments = []
    for i, item in enumerate(want(filt, "segments", list, "filter.") or []):
        where = f"filter.segments[{i}]."
        if not isinstance(item, dict):
            raise problem(400, SVC, f"filter.segments[{i}] must be an object")
        seg_id = want(item, "segmentId", str, where, required=True)
        namespace = want(item, "segmentNs", str, where) or "ups"
        status = item.get("status", ["realized", "existing"])
        status = [status] if isinstance(status, str) else status
        if not isinstance(status, list) or not status or not all(
            isinstance(s, str) and s.lower() in SEGMENT_STATUSES for s in status
        ):
            raise problem(400, SVC, f"{where}status must be a non-empty array of "
                          f"{', '.join(SEGMENT_STATUSES)}")  # fmt: skip
        segments.append({"segmentId": seg_id, "segmentNs": namespace, "status": status})
    qualification = want(filt, "segmentQualificationTime", dict, "filter.") or {}
    for key in ("startTime", "endTime"):
        if qualification.get(key) is not None:
            parse_time(qualification[key], f"filter.segmentQualificationTime.{key}")
    if filt.get("fromIngestTimestamp") is not None:
        parse_time(filt["fromIngestTimestamp"], "filter.fromIngestTimestamp")
    want(filt, "emptyProfiles", bool, "filter.")
    extra = want(body, "additionalFields", dict, "") or {}
    events = want(extra, "eventList", dict, "additionalFields.")
    if events is not None:
        want(events, "fields", str, "additionalFields.eventList.")
        ev_filter = want(events, "filter", dict, "additionalFields.eventList.") or {}
        for key in ("fromIngestTimestamp", "toIngestTimestamp"):
            if ev_filter.get(key) is not None:
                parse_time(ev_filter[key], f"additionalFields.eventList.filter.{key}")
    evaluation = want(body, "evaluationInfo", dict, "") or {}
    want(evaluation, "segmentation", bool, "evaluationInfo.")
    schema_now = emulator.profiles.schema(tenant)
    if fields is not None and schema_now is not None and not _path_tree(fields, schema_now):
        raise problem(400, SVC, f"none of the fields {fields[:200]!r} exist in the profiles")
    if per_batch and not segments:
        raise problem(400, SVC, "destination.segmentPerBatch needs filter.segments")
    dataset = emulator.store.get("dataSet", tenant, dataset_id)
    if dataset is None:
        raise problem(422, SVC, f"destination.datasetId {dataset_id} is not a dataset of "
                      f"this organization and sandbox")  # fmt: skip
    if (dataset.get("schemaRef") or {}).get("id") != PROFILE_UNION_SCHEMA:
        raise problem(422, SVC, f"dataset {dataset_id} is not on the Profile union schema "
                      f"{PROFILE_UNION_SCHEMA}; export jobs need such a dataset")  # fmt: skip
    normalized_filter = {k: v for k, v in filt.items() if k != "segments"}
    if segments:
        normalized_filter = {"segments": segments, **normalized_filter}
    return {"schema": schema, "datasetId": dataset_id, "segmentPerBatch": per_batch,
            "fields": fields, "mergePolicy": policy, "filter": normalized_filter,
            "additionalFields": extra, "evaluationInfo": evaluation}  # fmt: skip


async def create_job(request: Request) -> Response:
    """``POST /export/jobs`` → 200 with the NEW job and its batch id(s)."""
    tenant = authenticate(request)
    emulator = emulator_of(request)
    spec = _parse(await json_body(request), emulator, tenant)
    store = emulator.store
    destination: dict[str, Any] = {"datasetId": spec["datasetId"],
                                   "segmentPerBatch": spec["segmentPerBatch"]}  # fmt: skip
    if spec["segmentPerBatch"]:
        destination["batches"] = [
            {**s, "batchId": store.create_batch(tenant, spec["datasetId"])["id"]}
            for s in spec["filter"]["segments"]
        ]
    else:
        destination["batchId"] = store.create_batch(tenant, spec["datasetId"])["id"]
    ms = now_ms()
    job_id = next_number(store, "exportJobId")
    record: dict[str, Any] = {"id": job_id, "jobType": "BATCH", "status": "NEW",
                              "profileInstanceId": "ups"}  # fmt: skip
    if spec["fields"] is not None:
        record["fields"] = spec["fields"]
    record.update({
        "schema": spec["schema"],
        "mergePolicy": spec["mergePolicy"] or {"id": default_merge_policy(tenant), "version": 1},
        "filter": spec["filter"],
    })  # fmt: skip
    for key in ("additionalFields", "evaluationInfo"):
        if spec[key]:
            record[key] = spec[key]
    record.update({
        "destination": destination,
        "metrics": {"totalTime": {"startTimeInMs": ms}},
        "computeGatewayJobId": {"exportJob": ""},
        "requestId": request_id(request),
        "imsOrgId": tenant.org,
        "creationTime": ms,
        "updateTime": ms,
    })  # fmt: skip
    key = str(job_id)
    emulator.jobs.reserve(KIND, key)
    store.put(KIND, tenant, key, record)
    emulator.jobs.submit(KIND, key, lambda: run_job(emulator, tenant, key))
    location = f"{request.base_url}data/core/ups/export/jobs/{job_id}"
    return JSONResponse(record, headers={"X-Location": location})


# ------------------------------------------------------------------------------- projection


def _path_tree(fields: str | None, schema: pa.Schema) -> dict[str, Any] | None:
    """``fields`` as a tree of names (``True`` = the whole field); None = every field.
    Paths that do not exist are ignored, as AEP ignores them."""
    if fields is None:
        return None
    tree: dict[str, Any] = {}
    for raw in fields.split(","):
        parts = [p for p in raw.strip().split(".") if p]
        node, atype = tree, pa.struct(list(schema))
        for i, part in enumerate(parts):
            if not pa.types.is_struct(atype) or atype.get_field_index(part) < 0:
                break
            if i == 0 and is_internal(part):
                break
            atype = atype.field(part).type
            last = i == len(parts) - 1 or not pa.types.is_struct(atype)
            if last:
                node[part] = True
                break
            child = node.setdefault(part, {})
            if child is True:
                break
            node = child
    return tree


def _project(tree: dict[str, Any] | None, fields: list[pa.Field], prefix: str,
             ) -> tuple[list[tuple[str, str]], list[pa.Field]]:  # fmt: skip
    """(name, SQL) pairs and the Arrow fields of a projection of ``fields`` under ``prefix``."""
    out, arrow = [], []
    for f in fields:
        if is_internal(f.name) and not prefix:
            continue
        ref = f'{prefix}"{f.name}"'
        node = True if tree is None else tree.get(f.name)
        if node is None:
            continue
        if node is True:
            out.append((f.name, ref))
            arrow.append(f)
            continue
        inner, inner_fields = _project(node, list(f.type), f"{ref}.")
        pack = ", ".join(f'"{n}" := {sql}' for n, sql in inner)
        out.append((f.name, f"CASE WHEN {ref} IS NULL THEN NULL ELSE struct_pack({pack}) END"))
        arrow.append(pa.field(f.name, pa.struct(inner_fields)))
    return out, arrow


def _ts(value: str, name: str) -> str:
    return f"TIMESTAMPTZ '{parse_time(value, name).isoformat()}'"


def _membership_mask(membership: pa.Array, segments: list[dict[str, Any]],
                     qualification: dict[str, Any]) -> pa.Array:  # fmt: skip
    """Rows with a ``segmentMembership`` entry matching any of ``segments`` (namespace matched
    case-insensitively, ``entering`` read as ``realized``) inside the qualification window.

    Offsets arithmetic over the flattened map (DuckDB map lookups are ~20x slower here).
    """
    from aep_io.emulator.profiles import _entries

    n = len(membership)
    outer_off, okeys, inner = _entries(membership)
    inner_off, ikeys, items = _entries(inner)
    row_of_outer = np.repeat(np.arange(n), np.diff(outer_off))
    outer_of_inner = np.repeat(np.arange(len(okeys)), np.diff(inner_off))
    namespaces = pc.utf8_lower(okeys.cast(pa.string()))
    ids = list(dict.fromkeys(s["segmentId"] for s in segments))
    key_index = np.asarray(pc.index_in(ikeys.cast(pa.string()), value_set=pa.array(ids))
                           .fill_null(-1), dtype=np.int64)  # fmt: skip
    status = pc.utf8_lower(pc.struct_field(items, "status"))
    status = pc.if_else(pc.equal(status, "entering"), "realized", status)
    window = np.ones(len(ikeys), dtype=bool)
    if qualification.get("startTime") is not None or qualification.get("endTime") is not None:
        lqt = pc.struct_field(items, "lastQualificationTime").cast(pa.timestamp("us", "UTC"))
        window &= np.asarray(pc.is_valid(lqt), dtype=bool)
        for key, op in (("startTime", pc.greater_equal), ("endTime", pc.less_equal)):
            if qualification.get(key) is not None:
                bound = pa.scalar(parse_time(qualification[key], key), pa.timestamp("us", "UTC"))
                window &= np.asarray(op(lqt, bound).fill_null(False), dtype=bool)
    match = np.zeros(len(ikeys), dtype=bool)
    for s in segments:
        ns_ok = np.asarray(pc.equal(namespaces, s["segmentNs"].lower()).fill_null(False),
                           dtype=bool)[outer_of_inner]  # fmt: skip
        ok_status = np.asarray(pc.is_in(status, value_set=pa.array(
            [x.lower() for x in s["status"]])).fill_null(False), dtype=bool)
        match |= (key_index == ids.index(s["segmentId"])) & ns_ok & ok_status & window
    mask = np.zeros(n, dtype=bool)
    mask[row_of_outer[outer_of_inner[match]]] = True
    return pa.array(mask)


def _query(emulator: Emulator, tenant: Tenant, job: dict[str, Any],
           segments: list[dict[str, Any]] | None, *,
           overlaid: bool) -> tuple[str, pa.Schema, str | None]:  # fmt: skip
    """The export query for one batch, the Arrow schema of its rows and, with an eventList,
    the query of the events (sorted by profile, then time) that fill ``timeSeriesEvents``.

    ``overlaid``: segment jobs left membership beside the store, so the rows carry their
    loaded membership (``__sm``) and store position (``__row``) to be completed per batch."""
    schema = emulator.profiles.schema(tenant)
    assert schema is not None
    selects, arrow = _project(_path_tree(job.get("fields"), schema), list(schema), "")
    filt = job.get("filter") or {}
    events = (job.get("additionalFields") or {}).get("eventList")
    events_sql = None
    hidden = ['map_keys("identityMap") AS __ns']
    if events is not None:
        ev_schema = emulator.profiles.events_schema(tenant)
        inner, inner_fields = _project(_path_tree(events.get("fields"), ev_schema),
                                       list(ev_schema), "")  # fmt: skip
        pack = "struct_pack(" + ", ".join(f'"{n}" := {sql}' for n, sql in inner) + ")"
        ev_filter, window = ["TRUE"], events.get("filter") or {}
        if window.get("fromIngestTimestamp") is not None and INGEST_TIME in ev_schema.names:
            ev_filter.append(f'"{INGEST_TIME}" > {_ts(window["fromIngestTimestamp"], "from")}')
        if window.get("toIngestTimestamp") is not None and INGEST_TIME in ev_schema.names:
            ev_filter.append(f'"{INGEST_TIME}" <= {_ts(window["toIngestTimestamp"], "to")}')
        order = ', "timestamp"' if "timestamp" in ev_schema.names else ""
        path = str(emulator.profiles.events_path(tenant)).replace("'", "''")
        events_sql = (f'SELECT "{PROFILE_ID}" AS __pid, {pack} AS __event '
                      f"FROM read_parquet('{path}') WHERE {' AND '.join(ev_filter)} "
                      f"ORDER BY __pid{order}")  # fmt: skip
        hidden.append(f'"{PROFILE_ID}" AS __pid')
        arrow.append(pa.field("timeSeriesEvents", pa.list_(pa.struct(inner_fields))))
    where = ["TRUE"]
    if segments or overlaid:  # applied per batch by _membership_mask / effective_membership
        hidden.append('"segmentMembership" AS __sm')
    if overlaid:
        hidden.append("__row")
    if filt.get("fromIngestTimestamp") is not None:
        where.append(f'"_repo"."modifyDate" > {_ts(filt["fromIngestTimestamp"], "from")}')
    if not filt.get("emptyProfiles"):
        attributes = [f.name for f in schema if not is_internal(f.name)
                      and f.name not in ("identityMap", "segmentMembership", "timeSeriesEvents")]
        if attributes:
            where.append("NOT (" + " AND ".join(f'"{a}" IS NULL' for a in attributes) + ")")
    columns = [f'{sql} AS "{name}"' for name, sql in selects]
    sql = (f"SELECT {', '.join(columns + hidden)} "
           f"FROM {profile_source(emulator, tenant, events=False)} "
           f"WHERE {' AND '.join(where)}")  # fmt: skip
    return sql, pa.schema(arrow), events_sql


def _with_effective_membership(emulator: Emulator, tenant: Tenant, batch: pa.RecordBatch,
                               entries: dict[str, pa.Array]) -> pa.RecordBatch:  # fmt: skip
    """``batch`` with the membership segment jobs left applied to ``__sm`` and to an exported
    ``segmentMembership``; ``__row`` dropped."""
    rows = np.asarray(batch.column("__row").to_numpy(), dtype=np.int64)
    effective = emulator.profiles.effective_membership(tenant, batch.column("__sm"), rows,
                                                       entries)  # fmt: skip
    names = batch.schema.names
    batch = batch.set_column(names.index("__sm"), "__sm", effective)
    if "segmentMembership" in names:
        batch = batch.set_column(names.index("segmentMembership"), "segmentMembership",
                                 effective)  # fmt: skip
    return batch.drop_columns(["__row"])


class _Events:
    """The exported events, sorted by profile: ``lists(pids)`` gives each profile's list."""

    def __init__(self, con: duckdb.DuckDBPyConnection, sql: str, atype: pa.DataType) -> None:
        table = con.sql(sql).to_arrow_table()
        self.pids = table.column("__pid").to_numpy()
        self.events = table.column("__event").combine_chunks()
        self.atype = atype

    def lists(self, pids: pa.Array) -> pa.Array:
        wanted = np.asarray(pids.to_numpy(zero_copy_only=False), dtype=np.int64)
        lo = np.searchsorted(self.pids, wanted, side="left")
        counts = np.searchsorted(self.pids, wanted, side="right") - lo
        offsets = np.zeros(len(wanted) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        index = np.repeat(lo - offsets[:-1], counts) + np.arange(int(offsets[-1]))
        items = self.events.take(pa.array(index))
        return pa.LargeListArray.from_arrays(pa.array(offsets), items).cast(self.atype)


# ------------------------------------------------------------------------------- running


class _Parts:
    """Writes rows as parquet part files of at most ``part_rows`` rows into a directory."""

    def __init__(self, directory: Path, schema: pa.Schema, part_rows: int, group_rows: int):
        self.directory, self.schema = directory, schema
        self.part_rows, self.group_rows = part_rows, group_rows
        self.job_uuid = str(uuid.uuid4())
        self.parts: list[tuple[Path, str, int]] = []
        self._writer: pq.ParquetWriter | None = None
        self._rows = 0
        self._pending: list[pa.Table] = []
        self._pending_rows = 0

    def write(self, table: pa.Table) -> None:
        """Buffer ``table``; write full row groups (the query's batches can be smaller)."""
        self._pending.append(table)
        self._pending_rows += table.num_rows
        if self._pending_rows >= self.group_rows:
            self._flush(final=False)

    def _flush(self, *, final: bool) -> None:
        table = pa.concat_tables(self._pending) if self._pending else None
        self._pending, self._pending_rows = [], 0
        while table is not None and table.num_rows:
            if not final and table.num_rows < self.group_rows:
                self._pending, self._pending_rows = [table], table.num_rows
                return
            if self._writer is None or self._rows >= self.part_rows:
                self._roll()
            assert self._writer is not None
            size = min(self.group_rows, self.part_rows - self._rows)
            piece = table.slice(0, size)
            self._writer.write_table(piece, row_group_size=size)
            self._rows += piece.num_rows
            self.parts[-1] = (*self.parts[-1][:2], self._rows)
            table = table.slice(piece.num_rows)

    def _roll(self) -> None:
        if self._writer is not None:
            self._writer.close()
        name = f"part-{len(self.parts):05d}-{self.job_uuid}-c000.snappy.parquet"
        path = self.directory / name
        self._writer = pq.ParquetWriter(path, self.schema, store_schema=False,
                                        **parquet_options(self.schema))  # fmt: skip
        self._rows = 0
        self.parts.append((path, name, 0))

    def close(self) -> list[tuple[Path, str, int]]:
        """Write what is buffered and close the current part; returns (path, name, rows)."""
        if self._pending:
            self._flush(final=True)
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        return self.parts


def _export_batch(emulator: Emulator, tenant: Tenant, job: dict[str, Any], batch_id: str,
                  segments: list[dict[str, Any]] | None, counts: Counter[str],
                  cancelled: Any, entries: dict[str, pa.Array]) -> int:  # fmt: skip
    """Run one batch's query and register its parts; returns the rows written.

    ``entries``: the membership segment jobs left (``ProfileStore.overlay_entries``)."""
    part_rows = int(getattr(emulator, "export_part_rows", PART_ROWS))
    group_rows = int(getattr(emulator, "export_row_group_rows", ROW_GROUP_ROWS))
    with tempfile.TemporaryDirectory(dir=emulator.data_dir, prefix=".export-") as tmp:
        rows = 0
        if emulator.profiles.exists(tenant):
            sql, schema, events_sql = _query(emulator, tenant, job, segments,
                                             overlaid=bool(entries))
            qualification = (job.get("filter") or {}).get("segmentQualificationTime") or {}
            parts = _Parts(Path(tmp), schema, part_rows, group_rows)
            con = duckdb.connect()
            events = None
            if events_sql is not None:
                events = _Events(con, events_sql, schema.field("timeSeriesEvents").type)
            # parquet encoding runs in a thread while DuckDB produces the next batches
            pending: list[Future[None]] = []
            try:
                with ThreadPoolExecutor(1, thread_name_prefix="aep-emulator-export") as pool:
                    for batch in con.sql(sql).to_arrow_reader(group_rows):
                        if cancelled():
                            raise _Cancelled
                        if entries:
                            batch = _with_effective_membership(emulator, tenant, batch, entries)
                        if segments:
                            batch = batch.filter(_membership_mask(
                                batch.column("__sm"), segments, qualification))
                        if segments or entries:
                            batch = batch.drop_columns(["__sm"])
                        namespaces = pc.list_flatten(batch.column("__ns"))
                        for item in pc.value_counts(namespaces).to_pylist():
                            if item["values"] is not None:
                                counts[item["values"]] += item["counts"]
                        table = pa.Table.from_batches([batch]).drop_columns(["__ns"])
                        if events is not None:
                            lists = events.lists(batch.column("__pid"))
                            table = table.drop_columns(["__pid"]).append_column(
                                "timeSeriesEvents", lists)
                        pending.append(pool.submit(parts.write, table.cast(schema)))
                        rows += batch.num_rows
                        while len(pending) > 2:
                            pending.pop(0).result()
                    for future in pending:
                        future.result()
            finally:
                con.close()
            files = parts.close()
            if not files:  # an empty export still carries one part with the schema
                parts._roll()
                files = parts.close()
        else:
            from aep_io.emulator.synthetic import profile_schema

            files = [(Path(tmp) / "part-00000-empty-c000.snappy.parquet",
                      "part-00000-empty-c000.snappy.parquet", 0)]  # fmt: skip
            pq.write_table(profile_schema().empty_table(), files[0][0])
        for path, name, n in files:
            emulator.store.add_dataset_file(batch_id, [path], records=n, move=True, names=[name])
    return rows


def run_job(emulator: Emulator, tenant: Tenant, key: str) -> None:
    """The background lifecycle of an export job."""
    runner, delay = emulator.jobs, emulator.job_step_delay
    job = emulator.store.get(KIND, tenant, key)
    if job is None:
        return
    dest = job["destination"]
    batches = ([(b["batchId"], [b]) for b in dest["batches"]] if dest.get("batches")
               else [(dest["batchId"], job["filter"].get("segments"))])  # fmt: skip

    def cancelled() -> bool:
        return runner.cancel_requested(KIND, key)

    def set_fields(**fields: Any) -> None:
        runner.update(KIND, tenant, key, lambda r: r.update(fields))

    runner.sleep(delay)
    metrics = dict(job["metrics"])
    errors: list[dict[str, str]] = []
    status = "SUCCEEDED"
    exported, counts = 0, Counter[str]()
    try:
        if cancelled():
            raise _Cancelled
        set_fields(status="PROCESSING",
                   computeGatewayJobId={"exportJob": str(uuid.uuid4())})  # fmt: skip
        started = now_ms()
        with emulator.profiles.lock(tenant):
            if (job.get("evaluationInfo") or {}).get("segmentation"):
                _segment_first(emulator, tenant, job, lambda: not cancelled())
            export_started = now_ms()
            # the membership segment jobs left, read once for every batch of the job
            entries = (emulator.profiles.overlay_entries(tenant)
                       if emulator.profiles.exists(tenant) else {})  # fmt: skip
            for batch_id, segments in batches:
                exported += _export_batch(emulator, tenant, job, batch_id, segments, counts,
                                          cancelled, entries)  # fmt: skip
        write_started = now_ms()
        metrics["profileExportTime"] = time_block(export_started, write_started)
        for batch_id, _ in batches:
            emulator.store.finish_batch(tenant, batch_id)
        metrics["aCPDatasetWriteTime"] = time_block(write_started)
        # dataset-export destinations (S3) get the parts before the job reads SUCCEEDED
        emulator.destinations.deliver(tenant, job, [batch_id for batch_id, _ in batches])
        metrics["totalExportedProfileCounter"] = exported
        metrics["exportedProfileByNamespaceCounter"] = dict(sorted(counts.items()))
        runner.sleep(delay - (now_ms() - started) / 1000)
    except _Cancelled:
        status = "CANCELLED"
        errors.append({"code": "0090000499", "msg": "Export job was cancelled", "callStack": ""})
    except Exception as exc:  # the job fails; the emulator stays up
        status = "FAILED"
        errors.append({"code": "0090000009", "callStack": type(exc).__name__,
                       "msg": f"Error writing profiles to dataset {dest['datasetId']}: {exc}"})
    if status != "SUCCEEDED":
        for batch_id, _ in batches:
            with contextlib.suppress(KeyError):
                emulator.store.finish_batch(tenant, batch_id, status="failed", errors=[
                    {"code": e["code"], "description": e["msg"]} for e in errors])
    metrics["totalTime"] = time_block(job["creationTime"])
    gateway = {"exportJob": str(uuid.uuid4()), "pushJob": str(uuid.uuid4())}
    fields: dict[str, Any] = {"status": status, "metrics": metrics, "computeGatewayJobId": gateway}
    if errors:
        fields["errors"] = errors
    set_fields(**fields)
    runner.forget_cancel(KIND, key)


def _segment_first(emulator: Emulator, tenant: Tenant, job: dict[str, Any], commit: Any) -> None:
    """``evaluationInfo.segmentation``: evaluate the job's ups segments (all when unfiltered)."""
    wanted = [s["segmentId"] for s in (job["filter"].get("segments") or [])
              if s["segmentNs"].lower() == "ups"]  # fmt: skip
    if job["filter"].get("segments"):
        definitions = [d for d in (emulator.store.get(DEFINITION, tenant, s) for s in wanted) if d]
    else:
        definitions = [d for _, d in emulator.store.list(DEFINITION, tenant)]
    if definitions:
        evaluate(emulator, tenant, definitions, commit=commit)


# ------------------------------------------------------------------------------- routes


def _settle(emulator: Emulator, tenant: Tenant, record: dict[str, Any]) -> dict[str, Any]:
    """A job a previous emulator process left unfinished reads FAILED; so do its batches."""
    was = record["status"]
    record = emulator.jobs.settle_orphan(KIND, tenant, record, TERMINAL)
    if record["status"] != was:
        dest = record.get("destination") or {}
        for batch_id in [dest.get("batchId")] + [b["batchId"] for b in dest.get("batches", [])]:
            batch = emulator.store.get("batch", tenant, batch_id or "")
            if batch is not None and batch.get("status") == "loading":
                emulator.store.finish_batch(tenant, batch_id, status="failed", errors=[
                    {"code": "0090000500", "description": "the emulator restarted"}])
    return record


def _get(request: Request, tenant: Tenant) -> dict[str, Any]:
    emulator = emulator_of(request)
    key = request.path_params["id"]
    record = emulator.store.get(KIND, tenant, key)
    if record is None:
        raise problem(404, SVC, f"Export job {echo(key)} not found")
    return _settle(emulator, tenant, record)


async def get_job(request: Request) -> Response:
    """``GET /export/jobs/{id}``."""
    return JSONResponse(_get(request, authenticate(request)))


async def cancel_job(request: Request) -> Response:
    """``DELETE /export/jobs/{id}`` → 200 ``{"status": true, "message": ...}``."""
    tenant = authenticate(request)
    record = _get(request, tenant)
    if record["status"] not in TERMINAL:
        emulator_of(request).jobs.request_cancel(KIND, str(record["id"]))
    return JSONResponse({"status": True, "message": "Export job has been marked for cancelling"})


def _cursor(record: dict[str, Any]) -> str:
    return f"{record['creationTime']}_{record['id']}"


async def list_jobs(request: Request) -> Response:
    """``GET /export/jobs?limit&offset=<creationTimeMs>_<id>&status`` (newest first)."""
    tenant = authenticate(request)
    emulator = emulator_of(request)
    limit = int_param(request, "limit", 100, minimum=1, maximum=1000, service=SVC)
    status = (request.query_params.get("status") or "").upper()
    if status and status not in STATUSES:
        raise problem(400, SVC, f"status={status[:30]!r} is not one of {', '.join(STATUSES)}")
    items = [_settle(emulator, tenant, r) for _, r in emulator.store.list(KIND, tenant)]
    items = [r for r in items if not status or r["status"] == status]
    items.sort(key=lambda r: (r["creationTime"], r["id"]), reverse=True)
    offset = request.query_params.get("offset") or ""
    if _NUMBER.match(offset):  # the seed's numeric ?offset=2: a plain skip count
        items = items[int(offset):]
    elif offset:
        ms, sep, last = offset.partition("_")
        if not (sep and _NUMBER.match(ms) and _NUMBER.match(last)):
            raise problem(400, SVC, f"offset={offset[:60]!r}: expected <creationTimeMs>_<jobId> "
                          "from a previous page's pageOffset")  # fmt: skip
        after = (int(ms), int(last))
        items = [r for r in items if (r["creationTime"], r["id"]) < after]
    page = items[:limit]
    cursor = _cursor(page[-1]) if page else ""
    more = len(items) > limit
    return JSONResponse({
        "records": page,
        "page": {"sortField": "createdTime", "sort": "desc", "pageOffset": cursor,
                 "pageSize": len(page)},
        "link": {"next": f"/export/jobs/?limit={limit}&offset={cursor}" if more else ""},
    })  # fmt: skip


routes = [
    Route("/export/jobs", create_job, methods=["POST"]),
    Route("/export/jobs", list_jobs, methods=["GET"]),
    Route("/export/jobs/", list_jobs, methods=["GET"]),
    Route("/export/jobs/{id}", get_job, methods=["GET"]),
    Route("/export/jobs/{id}", cancel_job, methods=["DELETE"]),
]

"""Export jobs as records: which batches an export job wrote, whatever spelling AEP used.

AEP's export-job responses vary (``aep_api.md`` §4.1, §11): ``destination.datasetId`` or
``dataSetId``; a single ``destination.batchId``, or with ``segmentPerBatch`` a ``batches`` array
(whose ``status`` may be an array or a scalar); a FAILED job may carry ``"batchId": ""``.
:class:`ExportJob` reads all of them.

Example:
    >>> job = ExportJob.from_json({"id": 7, "status": "SUCCEEDED",
    ...     "destination": {"dataSetId": "ds1", "segmentPerBatch": True, "batches": [
    ...         {"segmentId": "s1", "segmentNs": "ups", "status": "realized", "batchId": "B1"}]}})
    >>> job.dataset_id, [(b.batch_id, b.segment_id, b.status) for b in job.batches]
    ('ds1', [('B1', 's1', ('realized',))])
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from aep_io.client import AEPClient, Service, check_id
from aep_io.errors import AEPError
from aep_io.jobs import PollPolicy, wait_for
from aep_io.paging import iter_cursor_pages

__all__ = [
    "ExportBatchRef",
    "ExportJob",
    "SegmentFilter",
    "cancel_export_job",
    "create_export_job",
    "get_export_job",
    "list_export_jobs",
    "wait_for_export_job",
]

DEFAULT_STATUSES = ("realized", "existing")
MEMBERSHIP_STATUSES = ("realized", "existing", "exited")


@dataclass(frozen=True)
class ExportBatchRef:
    """One batch written by an export job (one per segment with ``segmentPerBatch``)."""

    batch_id: str
    segment_id: str | None = None
    segment_ns: str | None = None
    status: tuple[str, ...] = ()


@dataclass(frozen=True)
class ExportJob:
    """An export job as AEP reports it.

    Attributes:
        id: the job id (an integer at AEP; kept as given).
        status: ``NEW``, ``PROCESSING``, ``SUCCEEDED`` or ``FAILED`` (``CANCELLED`` if cancelled).
        dataset_id: the destination dataset.
        segment_per_batch: whether each segment got its own batch.
        batches: the batches written (empty until known, or for a failed job).
        errors: the job's ``errors`` array.
        raw: the response body.
    """

    id: int | str
    status: str
    dataset_id: str | None
    segment_per_batch: bool
    batches: list[ExportBatchRef] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def batch_ids(self) -> list[str]:
        """The ids of the batches written."""
        return [b.batch_id for b in self.batches]

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> ExportJob:
        """Read an export-job response body, tolerant of every known spelling."""
        if not isinstance(body, dict) or "id" not in body:
            raise AEPError(f"not an export job: {str(body)[:200]}")
        dest = body.get("destination") or {}
        dataset = dest.get("datasetId") or dest.get("dataSetId")
        refs: list[ExportBatchRef] = []
        raw_batches = dest.get("batches")
        if isinstance(raw_batches, dict):  # the spec types it as an object: accept one
            raw_batches = [raw_batches]
        for item in raw_batches or []:
            if not isinstance(item, dict) or not item.get("batchId"):
                continue
            status = item.get("status") or ()
            refs.append(ExportBatchRef(
                str(item["batchId"]),
                item.get("segmentId"),
                item.get("segmentNs"),
                (status,) if isinstance(status, str) else tuple(status),
            ))
        if not refs and dest.get("batchId"):
            refs.append(ExportBatchRef(str(dest["batchId"])))
        return cls(
            id=body["id"],
            status=str(body.get("status", "")).upper(),
            dataset_id=dataset,
            segment_per_batch=bool(dest.get("segmentPerBatch", False)),
            batches=refs,
            errors=list(body.get("errors") or []),
            raw=body,
        )


@dataclass(frozen=True)
class SegmentFilter:
    """One ``filter.segments[]`` entry: a segment, its namespace and the statuses to export."""

    segment_id: str
    namespace: str = "ups"
    statuses: tuple[str, ...] = DEFAULT_STATUSES

    def __post_init__(self) -> None:
        check_id(self.segment_id, "segment id")
        if not isinstance(self.namespace, str) or not self.namespace:
            raise ValueError(f"namespace {self.namespace!r} must be a non-empty str, e.g. 'ups'")
        if isinstance(self.statuses, str):
            object.__setattr__(self, "statuses", (self.statuses,))
        bad = [s for s in self.statuses if str(s).lower() not in MEMBERSHIP_STATUSES]
        if not self.statuses or bad:
            raise ValueError(f"statuses {tuple(self.statuses)!r} must be one or more of "
                             f"{', '.join(MEMBERSHIP_STATUSES)}")  # fmt: skip

    def to_json(self) -> dict[str, Any]:
        """The request body entry."""
        return {"segmentId": self.segment_id, "segmentNs": self.namespace,
                "status": list(self.statuses)}


def _url(client: AEPClient, suffix: str = "") -> str:
    return client.url(Service.SEGMENTATION, f"/export/jobs{suffix}")


def create_export_job(
    client: AEPClient,
    dataset_id: str,
    *,
    segments: Sequence[str | SegmentFilter] = (),
    fields: Sequence[str] | str | None = None,
    segment_per_batch: bool = False,
    merge_policy: dict[str, Any] | None = None,
    qualification_start: str | None = None,
    qualification_end: str | None = None,
    from_ingest_timestamp: str | None = None,
    event_list: dict[str, Any] | None = None,
    evaluate_first: bool = False,
    extra: dict[str, Any] | None = None,
) -> ExportJob:
    """``POST /export/jobs``: export (segments of) the profile store into ``dataset_id``.

    ``segments`` are ids (default statuses realized + existing, namespace ``ups``) or
    :class:`SegmentFilter` s; no segments exports every profile. The returned NEW job already
    names its batch id(s). ``extra`` is merged into the body as-is (fields aep_io does not model).
    """
    check_id(dataset_id, "dataset id")
    if isinstance(segments, str):
        raise TypeError(f"segments must be a list of segment ids, not a str (did you mean "
                        f"[{segments!r}]?)")  # fmt: skip
    body: dict[str, Any] = {
        "destination": {"datasetId": dataset_id, "segmentPerBatch": segment_per_batch},
        "schema": {"name": "_xdm.context.profile"},
    }
    if fields:
        body["fields"] = fields if isinstance(fields, str) else ",".join(fields)
    if merge_policy:
        body["mergePolicy"] = merge_policy
    flt: dict[str, Any] = {}
    if segments:
        flt["segments"] = [
            (s if isinstance(s, SegmentFilter) else SegmentFilter(s)).to_json() for s in segments
        ]
    if qualification_start or qualification_end:
        flt["segmentQualificationTime"] = {
            k: v for k, v in (("startTime", qualification_start), ("endTime", qualification_end))
            if v
        }
    if from_ingest_timestamp:
        flt["fromIngestTimestamp"] = from_ingest_timestamp
    if flt:
        body["filter"] = flt
    if event_list:
        body["additionalFields"] = {"eventList": event_list}
    if evaluate_first:
        body["evaluationInfo"] = {"segmentation": True}
    body.update(extra or {})
    return ExportJob.from_json(client.post_json(_url(client), body))


def get_export_job(client: AEPClient, job_id: int | str) -> ExportJob:
    """``GET /data/core/ups/export/jobs/{id}``."""
    job_id = check_id(job_id, "export job id", integer=True)
    return ExportJob.from_json(client.get_json(_url(client, f"/{job_id}")))


def cancel_export_job(client: AEPClient, job_id: int | str) -> None:
    """``DELETE /export/jobs/{id}``."""
    job_id = check_id(job_id, "export job id", integer=True)
    client.request("DELETE", _url(client, f"/{job_id}"))


def list_export_jobs(
    client: AEPClient, *, status: str | None = None, page_size: int = 100
) -> Iterator[ExportJob]:
    """Export jobs, newest first, following the ``link.next`` cursor."""
    params: dict[str, Any] = {"limit": page_size}
    if status:
        params["status"] = status.upper()
    for item in iter_cursor_pages(client, _url(client), params=params):
        yield ExportJob.from_json(item)


def wait_for_export_job(
    client: AEPClient,
    job_id: int | str,
    *,
    timeout: float | None = 3600.0,
    poll: PollPolicy | None = None,
    progress: Callable[[ExportJob], None] | None = None,
) -> ExportJob:
    """Poll an export job until SUCCEEDED (typed errors for FAILED / CANCELLED / timeout)."""
    return wait_for(lambda: get_export_job(client, job_id), timeout=timeout, poll=poll,
                    progress=progress, kind="export job")

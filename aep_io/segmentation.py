"""Segment definitions and segment jobs (``/data/core/ups``): typed, tolerant, waitable.

Example:
    >>> # seg = create_segment(client, "US residents", 'homeAddress.countryCode = "US"')
    >>> # job = wait_for_segment_job(client, create_segment_job(client, [seg.id]).id)
    >>> # job.metrics["segmentedProfileCounter"][seg.id]
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from aep_io.client import AEPClient, Service, check_id
from aep_io.errors import AEPError
from aep_io.jobs import PollPolicy, wait_for

__all__ = [
    "SegmentDefinition",
    "SegmentJob",
    "cancel_segment_job",
    "create_segment",
    "create_segment_job",
    "delete_segment",
    "get_segment",
    "get_segment_job",
    "list_segment_jobs",
    "list_segments",
    "wait_for_segment_job",
]

PROFILE_SCHEMA = "_xdm.context.profile"


@dataclass(frozen=True)
class SegmentDefinition:
    """A segment definition (an audience rule in PQL)."""

    id: str
    name: str
    expression: str
    format: str = "pql/text"
    version: int | None = None
    merge_policy_id: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> SegmentDefinition:
        """Read a definition body."""
        if not isinstance(body, dict) or "id" not in body:
            raise AEPError(f"not a segment definition: {str(body)[:200]}")
        expr = body.get("expression") or {}
        version = body.get("version")
        return cls(
            id=str(body["id"]),
            name=str(body.get("name", "")),
            expression=str(expr.get("value", "")),
            format=str(expr.get("format", "pql/text")),
            version=int(version) if isinstance(version, int | str) and str(version).isdigit()
            else None,
            merge_policy_id=body.get("mergePolicyId"),
            raw=body,
        )


@dataclass(frozen=True)
class SegmentJob:
    """A segment job: evaluates definitions and updates ``segmentMembership``."""

    id: str
    status: str
    segment_ids: list[str]
    metrics: dict[str, Any] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> SegmentJob:
        """Read a segment-job body (tolerant of the seed's and the current docs' shapes)."""
        if not isinstance(body, dict) or "id" not in body:
            raise AEPError(f"not a segment job: {str(body)[:200]}")
        segments = body.get("segments") or []
        ids = [str(s.get("segmentId") or (s.get("segment") or {}).get("id"))
               for s in segments if isinstance(s, dict)]
        return cls(
            id=str(body["id"]),
            status=str(body.get("status", "")).upper(),
            segment_ids=ids,
            metrics=dict(body.get("metrics") or {}),
            errors=list(body.get("errors") or []),
            raw=body,
        )

    def profiles_in(self, segment_id: str) -> int | None:
        """``segmentedProfileCounter[segment_id]`` (tolerating the docs' misspelling)."""
        counter = self.metrics.get("segmentedProfileCounter") or self.metrics.get(
            "segmentProfileCounter") or {}
        value = counter.get(segment_id)
        return int(value) if value is not None else None


def _defs_url(client: AEPClient, suffix: str = "") -> str:
    return client.url(Service.SEGMENTATION, f"/segment/definitions{suffix}")


def _jobs_url(client: AEPClient, suffix: str = "") -> str:
    return client.url(Service.SEGMENTATION, f"/segment/jobs{suffix}")


def create_segment(
    client: AEPClient,
    name: str,
    pql: str,
    *,
    description: str = "",
    merge_policy_id: str | None = None,
    ttl_in_days: int | None = None,
) -> SegmentDefinition:
    """``POST /segment/definitions`` with a ``pql/text`` expression.

    Raises :class:`~aep_io.errors.BadRequestError` for invalid PQL (the message carries the
    server's position) and :class:`~aep_io.errors.ConflictError` for a duplicate name.
    """
    for what, value in (("name", name), ("pql", pql)):
        if not isinstance(value, str):
            raise TypeError(f"{what} must be a str, not {type(value).__name__}")
        if not value.strip():
            raise ValueError(f"{what} is empty: give the segment's {what}")
    if ttl_in_days is not None and (isinstance(ttl_in_days, bool)
                                    or not isinstance(ttl_in_days, int) or ttl_in_days < 0):
        raise ValueError(f"ttl_in_days={ttl_in_days!r} must be a whole number of days >= 0")
    body: dict[str, Any] = {
        "name": name,
        "description": description,
        "profileInstanceId": "ups",
        "expression": {"type": "PQL", "format": "pql/text", "value": pql},
        "schema": {"name": PROFILE_SCHEMA},
        "evaluationInfo": {"batch": {"enabled": True}, "continuous": {"enabled": False},
                           "synchronous": {"enabled": False}},
    }
    if merge_policy_id:
        body["mergePolicyId"] = merge_policy_id
    if ttl_in_days is not None:
        body["ttlInDays"] = ttl_in_days
    return SegmentDefinition.from_json(client.post_json(_defs_url(client), body))


def get_segment(client: AEPClient, segment_id: str) -> SegmentDefinition:
    """``GET /segment/definitions/{id}``."""
    segment_id = check_id(segment_id, "segment id")
    return SegmentDefinition.from_json(client.get_json(_defs_url(client, f"/{segment_id}")))


def delete_segment(client: AEPClient, segment_id: str) -> None:
    """``DELETE /segment/definitions/{id}``."""
    segment_id = check_id(segment_id, "segment id")
    client.request("DELETE", _defs_url(client, f"/{segment_id}"))


def list_segments(client: AEPClient, *, page_size: int = 100) -> Iterator[SegmentDefinition]:
    """Every segment definition, following ``start``/``limit`` pages."""
    start = 0
    while True:
        body = client.get_json(_defs_url(client), params={"start": start, "limit": page_size})
        items = (body or {}).get("segments") or []
        for item in items:
            yield SegmentDefinition.from_json(item)
        total = ((body or {}).get("page") or {}).get("totalCount")
        start += len(items)
        if not items or len(items) < page_size or (total is not None and start >= int(total)):
            return


def create_segment_job(client: AEPClient, segment_ids: Sequence[str]) -> SegmentJob:
    """``POST /segment/jobs`` (``["*"]`` evaluates every definition)."""
    if isinstance(segment_ids, str):
        raise TypeError(f"segment_ids must be a list of segment ids, not a str (did you mean "
                        f"[{segment_ids!r}]?)")  # fmt: skip
    if not segment_ids:
        raise ValueError("give at least one segment id (or '*' for all)")
    for segment_id in segment_ids:
        if segment_id != "*":
            check_id(segment_id, "segment id")
    if list(segment_ids) == ["*"]:
        body: Any = {"schema": {"name": PROFILE_SCHEMA}, "segments": [{"segmentId": "*"}]}
    else:
        body = [{"segmentId": s} for s in segment_ids]
    return SegmentJob.from_json(client.post_json(_jobs_url(client), body))


def get_segment_job(client: AEPClient, job_id: str) -> SegmentJob:
    """``GET /segment/jobs/{id}``."""
    job_id = check_id(job_id, "segment job id")
    return SegmentJob.from_json(client.get_json(_jobs_url(client, f"/{job_id}")))


def cancel_segment_job(client: AEPClient, job_id: str) -> None:
    """``DELETE /segment/jobs/{id}`` (cancellation is asynchronous: CANCELLING → CANCELLED)."""
    job_id = check_id(job_id, "segment job id")
    client.request("DELETE", _jobs_url(client, f"/{job_id}"))


def list_segment_jobs(
    client: AEPClient, *, status: str | None = None, page_size: int = 100
) -> Iterator[SegmentJob]:
    """Segment jobs, newest first, following ``_links.next`` (or ``start`` when absent)."""
    params: dict[str, Any] = {"limit": page_size, "sort": "creationTime:desc", "start": 0}
    if status:
        params["status"] = status.upper()
    url: str | None = _jobs_url(client)
    seen = 0
    while url is not None:
        body = client.get_json(url, params=params) or {}
        children = body.get("children") or []
        for child in children:
            yield SegmentJob.from_json(child)
        seen += len(children)
        href = ((body.get("_links") or {}).get("next") or {}).get("href")
        total = (body.get("_page") or {}).get("totalCount")
        if href:
            url, params = client.check_href(href, service=Service.SEGMENTATION), None
        elif children and total is not None and seen < int(total):
            params = {**(params or {}), "start": seen}
        else:
            url = None


def wait_for_segment_job(
    client: AEPClient,
    job_id: str,
    *,
    timeout: float | None = 3600.0,
    poll: PollPolicy | None = None,
    progress: Callable[[SegmentJob], None] | None = None,
) -> SegmentJob:
    """Poll a segment job until SUCCEEDED (typed errors for FAILED / CANCELLED / timeout)."""
    return wait_for(lambda: get_segment_job(client, job_id), timeout=timeout, poll=poll,
                    progress=progress, kind="segment job")

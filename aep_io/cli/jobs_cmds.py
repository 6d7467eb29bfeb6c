"""``aep-io segments|segment-jobs|datasets|exports``: segmentation and export jobs.

Every command takes ``--json`` for scripting (the raw AEP record(s), one JSON document).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from typing import Any

import typer
from rich.table import Table

from aep_io.cli.common import console, one_line_errors

segments_app = typer.Typer(help="Segment definitions (PQL).", no_args_is_help=True)
segment_jobs_app = typer.Typer(help="Segment jobs: evaluate definitions.", no_args_is_help=True)
datasets_app = typer.Typer(help="Catalog datasets.", no_args_is_help=True)
exports_app = typer.Typer(help="Export jobs: audiences into datasets.", no_args_is_help=True)

JSON = typer.Option(False, "--json", help="Print the raw record(s) as JSON.")
TIMEOUT = typer.Option(3600.0, min=0, help="Seconds to wait at most.")


def _client() -> Any:
    from aep_io.client import AEPClient

    return AEPClient()


def _emit_json(value: Any) -> None:
    console.print_json(json.dumps(value, default=str))


def _table(title: str, columns: list[str], rows: Iterable[list[Any]]) -> None:
    table = Table(title=title)
    for c in columns:
        table.add_column(c, overflow="fold")
    for row in rows:
        table.add_row(*["" if v is None else str(v) for v in row])
    console.print(table)


def _wait(kind: str, fetch_wait: Callable[..., Any], job_id: Any, timeout: float) -> Any:
    started = time.monotonic()
    with console.status(f"{kind} {job_id}: waiting") as status:
        def progress(job: Any) -> None:
            status.update(f"{kind} {job_id}: {job.status} ({time.monotonic() - started:.0f}s)")

        return fetch_wait(_client(), job_id, timeout=timeout, progress=progress)


# -- segments ---------------------------------------------------------------------------------
@segments_app.command("create")
@one_line_errors
def segments_create(
    name: str = typer.Argument(..., help="Unique name."),
    pql: str = typer.Argument(..., help='PQL, e.g. homeAddress.countryCode = "US"'),
    description: str = typer.Option("", help="Description."),
    as_json: bool = JSON,
) -> None:
    """Create a segment definition."""
    from aep_io.segmentation import create_segment

    seg = create_segment(_client(), name, pql, description=description)
    if as_json:
        _emit_json(seg.raw)
    else:
        console.print(f"segment [bold]{seg.id}[/] {seg.name!r}")


@segments_app.command("list")
@one_line_errors
def segments_list(as_json: bool = JSON) -> None:
    """List segment definitions."""
    from aep_io.segmentation import list_segments

    segs = list(list_segments(_client()))
    if as_json:
        _emit_json([s.raw for s in segs])
        return
    _table(f"{len(segs)} segments", ["id", "name", "expression"],
           ([s.id, s.name, s.expression] for s in segs))


@segments_app.command("show")
@one_line_errors
def segments_show(segment_id: str, as_json: bool = JSON) -> None:
    """Show one segment definition."""
    from aep_io.segmentation import get_segment

    seg = get_segment(_client(), segment_id)
    if as_json:
        _emit_json(seg.raw)
    else:
        _table(seg.name, ["id", "format", "expression"], [[seg.id, seg.format, seg.expression]])


# -- segment jobs -----------------------------------------------------------------------------
def _print_segment_job(job: Any, as_json: bool) -> None:
    if as_json:
        _emit_json(job.raw)
        return
    console.print(f"segment job [bold]{job.id}[/]: {job.status}")
    counter = job.metrics.get("segmentedProfileCounter") or {}
    by_status = job.metrics.get("segmentedProfileByStatusCounter") or {}
    if counter:
        _table("profiles per segment", ["segment", "profiles", "by status"],
               ([s, n, by_status.get(s, "")] for s, n in counter.items()))
    for error in job.errors:
        console.print(f"[red]error[/] {error.get('code', '')}: {error.get('msg', error)}")


@segment_jobs_app.command("create")
@one_line_errors
def segment_jobs_create(
    segment_ids: list[str] = typer.Argument(..., help="Segment ids ('*' for all)."),
    wait: bool = typer.Option(False, help="Wait for the job to end."),
    timeout: float = TIMEOUT,
    as_json: bool = JSON,
) -> None:
    """Start a segment job."""
    from aep_io.segmentation import create_segment_job, wait_for_segment_job

    job = create_segment_job(_client(), segment_ids)
    if wait:
        job = _wait("segment job", wait_for_segment_job, job.id, timeout)
    _print_segment_job(job, as_json)


@segment_jobs_app.command("status")
@one_line_errors
def segment_jobs_status(job_id: str, as_json: bool = JSON) -> None:
    """Show a segment job."""
    from aep_io.segmentation import get_segment_job

    _print_segment_job(get_segment_job(_client(), job_id), as_json)


@segment_jobs_app.command("wait")
@one_line_errors
def segment_jobs_wait(job_id: str, timeout: float = TIMEOUT, as_json: bool = JSON) -> None:
    """Wait for a segment job to succeed (exit 1 if it fails or is cancelled)."""
    from aep_io.segmentation import wait_for_segment_job

    _print_segment_job(_wait("segment job", wait_for_segment_job, job_id, timeout), as_json)


@segment_jobs_app.command("cancel")
@one_line_errors
def segment_jobs_cancel(job_id: str) -> None:
    """Cancel a segment job (asynchronous)."""
    from aep_io.segmentation import cancel_segment_job

    cancel_segment_job(_client(), job_id)
    console.print(f"segment job {job_id}: cancellation requested")


@segment_jobs_app.command("list")
@one_line_errors
def segment_jobs_list(
    status: str | None = typer.Option(None, help="Only jobs with this status."),
    limit: int = typer.Option(50, min=1, help="At most this many jobs."),
    as_json: bool = JSON,
) -> None:
    """List segment jobs, newest first."""
    from itertools import islice

    from aep_io.segmentation import list_segment_jobs

    jobs = list(islice(list_segment_jobs(_client(), status=status), limit))
    if as_json:
        _emit_json([j.raw for j in jobs])
        return
    _table(f"{len(jobs)} segment jobs", ["id", "status", "segments"],
           ([j.id, j.status, ", ".join(j.segment_ids)] for j in jobs))


# -- datasets -----------------------------------------------------------------------------------
@datasets_app.command("create")
@one_line_errors
def datasets_create(
    name: str = typer.Argument(..., help="Dataset name."),
    as_json: bool = JSON,
) -> None:
    """Create an export dataset on the profile union schema."""
    from aep_io.catalog import create_dataset

    dataset_id = create_dataset(_client(), name)
    if as_json:
        _emit_json({"id": dataset_id, "name": name})
    else:
        console.print(f"dataset [bold]{dataset_id}[/] {name!r}")


# -- exports ------------------------------------------------------------------------------------
def _print_export_job(job: Any, as_json: bool) -> None:
    if as_json:
        _emit_json(job.raw)
        return
    console.print(f"export job [bold]{job.id}[/]: {job.status} -> dataset {job.dataset_id}")
    if job.batches:
        _table("batches", ["batch", "segment", "status"],
               ([b.batch_id, b.segment_id or "", ",".join(b.status)] for b in job.batches))
    for error in job.errors:
        console.print(f"[red]error[/] {error.get('code', '')}: {error.get('msg', error)}")


@exports_app.command("create")
@one_line_errors
def exports_create(
    dataset: str = typer.Option(..., help="Destination dataset id (profile union schema)."),
    segment: list[str] = typer.Option([], help="Segment id to export (repeat); none = all."),
    status: str = typer.Option("realized,existing", help="Membership statuses to export."),
    fields: str | None = typer.Option(None, help="Comma-separated dot paths to export."),
    segment_per_batch: bool = typer.Option(False, help="One batch per segment."),
    wait: bool = typer.Option(False, help="Wait for the job to end."),
    timeout: float = TIMEOUT,
    as_json: bool = JSON,
) -> None:
    """Start an export job."""
    from aep_io.export_jobs import SegmentFilter, create_export_job, wait_for_export_job

    statuses = tuple(s.strip() for s in status.split(",") if s.strip())
    job = create_export_job(
        _client(), dataset, segments=[SegmentFilter(s, "ups", statuses) for s in segment],
        fields=fields, segment_per_batch=segment_per_batch,
    )
    if wait:
        job = _wait("export job", wait_for_export_job, job.id, timeout)
    _print_export_job(job, as_json)


@exports_app.command("status")
@one_line_errors
def exports_status(job_id: str, as_json: bool = JSON) -> None:
    """Show an export job."""
    from aep_io.export_jobs import get_export_job

    _print_export_job(get_export_job(_client(), job_id), as_json)


@exports_app.command("wait")
@one_line_errors
def exports_wait(job_id: str, timeout: float = TIMEOUT, as_json: bool = JSON) -> None:
    """Wait for an export job to succeed (exit 1 if it fails or is cancelled)."""
    from aep_io.export_jobs import wait_for_export_job

    _print_export_job(_wait("export job", wait_for_export_job, job_id, timeout), as_json)


@exports_app.command("cancel")
@one_line_errors
def exports_cancel(job_id: str) -> None:
    """Cancel an export job."""
    from aep_io.export_jobs import cancel_export_job

    cancel_export_job(_client(), job_id)
    console.print(f"export job {job_id}: cancellation requested")


@exports_app.command("list")
@one_line_errors
def exports_list(
    status: str | None = typer.Option(None, help="Only jobs with this status."),
    limit: int = typer.Option(50, min=1, help="At most this many jobs."),
    as_json: bool = JSON,
) -> None:
    """List export jobs, newest first."""
    from itertools import islice

    from aep_io.export_jobs import list_export_jobs

    jobs = list(islice(list_export_jobs(_client(), status=status), limit))
    if as_json:
        _emit_json([j.raw for j in jobs])
        return
    _table(f"{len(jobs)} export jobs", ["id", "status", "dataset", "batches"],
           ([j.id, j.status, j.dataset_id, ", ".join(j.batch_ids)] for j in jobs))

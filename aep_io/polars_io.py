"""polars LazyFrames over export batches (or any parquet on fsspec), through an IO plugin.

``scan_batches`` returns at once, without a network call. When polars collects, the plugin
receives the projection, the predicate and ``n_rows`` and hands them to the reader core:
only the needed column chunks of the needed row groups are fetched, and fetching stops once
``n_rows`` rows are out. The predicate is always applied by the plugin (polars does not
re-apply it); its translatable AND-conjuncts also prune row groups in pyarrow.

Example:
    >>> # import polars as pl
    >>> # lf = scan_batches(["01JBATCH..."])
    >>> # lf.filter(pl.col("homeAddress").struct.field("countryCode") == "US").head(5).collect()
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import polars as pl
import pyarrow as pa
from fsspec.spec import AbstractFileSystem
from polars.io.plugins import register_io_source

from aep_io.client import AEPClient
from aep_io.export_jobs import ExportJob
from aep_io.planning import BatchFile
from aep_io.predicates import to_arrow_filter
from aep_io.reader import ReadOptions, iter_record_batches, read_schema
from aep_io.settings import Settings
from aep_io.sources import Source

__all__ = ["scan_batches", "scan_export_job", "scan_source"]


def scan_source(
    source: Source,
    *,
    batch_size: int = 65_536,
    max_inflight: int = 4,
    io_threads: int = 8,
    unit_bytes: int = 4 * 1024 * 1024,
) -> pl.LazyFrame:
    """A LazyFrame over an already built :class:`~aep_io.sources.Source`."""
    for name, value in (("batch_size", batch_size), ("max_inflight", max_inflight),
                        ("io_threads", io_threads), ("unit_bytes", unit_bytes)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}={value!r} must be a positive integer")
    cached: dict[str, Any] = {}

    def schema() -> pl.Schema:
        if "schema" not in cached:
            # from_batches, not empty_table(): that one makes pyarrow import pandas (~0.2 s)
            empty = pa.Table.from_batches([], schema=read_schema(source))
            cached["schema"] = pl.from_arrow(empty).schema
        return cached["schema"]

    def io_source(
        with_columns: list[str] | None,
        predicate: pl.Expr | None,
        n_rows: int | None,
        hint: int | None,
    ) -> Iterator[pl.DataFrame]:
        options = ReadOptions(
            columns=with_columns,
            filter=to_arrow_filter(predicate),
            limit=n_rows if predicate is None else None,
            sequential=n_rows is not None and predicate is not None,
            batch_size=hint or batch_size,
            max_inflight=max_inflight,
            io_threads=io_threads,
            unit_bytes=unit_bytes,
        )
        left = n_rows
        batches = iter_record_batches(source, options)
        try:
            for batch in batches:
                frame = pl.from_arrow(batch)
                assert isinstance(frame, pl.DataFrame)
                if predicate is not None:
                    frame = frame.filter(predicate)
                if left is not None:
                    frame = frame.head(left)
                    left -= frame.height
                if frame.height:
                    yield frame
                if left is not None and left <= 0:
                    return
        finally:
            batches.close()  # cancels pending fetches when polars stops early

    detail = source.description
    if source.planned and not source.batch_ids and not source.urls:
        detail = f"{len(source.planned)} files"
    return register_io_source(
        io_source, schema=schema, explain_name="aep_io", explain_detail=detail
    )


def scan_batches(
    batches: str | BatchFile | Iterable[str | BatchFile],
    *,
    client: AEPClient | None = None,
    settings: Settings | None = None,
    filesystem: AbstractFileSystem | None = None,
    storage_options: dict[str, Any] | None = None,
    batch_size: int = 65_536,
    max_inflight: int = 4,
    io_threads: int = 8,
    unit_bytes: int = 4 * 1024 * 1024,
) -> pl.LazyFrame:
    """A lazy frame over export batches, ``aep://`` paths, or any fsspec URL / glob / path.

    Args:
        batches: batch ids, planned :class:`~aep_io.planning.BatchFile` s, ``aep://`` paths,
            or other URLs (``s3://bucket/export/*.parquet``, a local directory...).
        client: the AEP client (from ``settings`` or the environment when omitted).
        settings: settings for a new client.
        filesystem: an fsspec filesystem for the non-``aep`` URLs.
        storage_options: options for fsspec when it builds the filesystem from a URL.
        batch_size: rows per frame handed to polars.
        max_inflight: units (runs of row groups) fetched ahead of decoding (memory bound).
        io_threads: concurrent range requests.
        unit_bytes: how many needed bytes of consecutive row groups make one unit.

    Example:
        >>> # lf = scan_batches("01JBATCH...").select("identityMap", "segmentMembership")
    """
    source = Source.of(
        batches,
        client=client,
        settings=settings,
        filesystem=filesystem,
        storage_options=storage_options,
    )
    return scan_source(
        source, batch_size=batch_size, max_inflight=max_inflight, io_threads=io_threads,
        unit_bytes=unit_bytes,
    )


def scan_export_job(
    job: int | str | ExportJob,
    *,
    client: AEPClient | None = None,
    settings: Settings | None = None,
    segment_column: str = "segment_id",
    **options: Any,
) -> pl.LazyFrame:
    """A lazy frame over the batches an export job wrote.

    Given a job id, reads the job once (one request) to learn its batches
    (``destination.batchId`` or, with ``segmentPerBatch``, ``destination.batches[]``;
    ``datasetId``/``dataSetId`` both read). With one batch per segment, a ``segment_id``
    column says which segment's batch each row came from. The job must have SUCCEEDED.

    Example:
        >>> # lf = scan_export_job(24117)
        >>> # lf.group_by("segment_id").len().collect()
    """
    from aep_io.errors import JobFailedError, JobNotFinishedError
    from aep_io.export_jobs import get_export_job

    client = client or AEPClient(settings)  # stays open: the frames read through it
    if not isinstance(job, ExportJob):
        job = get_export_job(client, job)
    if job.status == "FAILED":
        raise JobFailedError(
            f"export job {job.id} FAILED: {job.errors or 'no errors reported'}",
            job_id=job.id, status=job.status, errors=job.errors,
        )
    if job.status != "SUCCEEDED":
        raise JobNotFinishedError(
            f"export job {job.id} is {job.status}, not SUCCEEDED: wait for it first "
            f"(aep-io exports wait {job.id})",
            job_id=job.id, status=job.status,
        )
    if not job.batches:
        raise JobFailedError(f"export job {job.id} SUCCEEDED but names no batch",
                             job_id=job.id, status=job.status)
    if not job.segment_per_batch:
        return scan_batches(job.batch_ids, client=client, **options)
    frames = [
        scan_batches(ref.batch_id, client=client, **options).with_columns(
            pl.lit(ref.segment_id, dtype=pl.String).alias(segment_column)
        )
        for ref in job.batches
    ]
    return pl.concat(frames, how="vertical")

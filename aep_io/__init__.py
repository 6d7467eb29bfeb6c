"""aep_io: Adobe Experience Platform audiences into polars and DuckDB.

Export batch ids (or any fsspec URL where exports land) become lazy polars frames
(:func:`scan_batches`), DuckDB views (:func:`to_duckdb`, or ``aep://`` in SQL after
:func:`register`) and Arrow streams (:func:`to_arrow_batch_reader`, :func:`read_arrow`). Files
are planned from the Data Access API (:func:`plan_files`) and read with HTTP Range requests
through an fsspec filesystem (:class:`AEPFileSystem`, protocol ``aep``), with authentication,
retries and typed errors handled for you.

Example:
    >>> import aep_io
    >>> settings = aep_io.Settings(client_id="id", org_id="O@AdobeOrg", access_token="t")
    >>> settings.platform_url
    'https://platform.adobe.io'
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public names and the module that defines each. They are imported on first use (PEP 562),
# so `import aep_io` stays cheap and a script pays only for the engines it touches.
_EXPORTS: dict[str, str] = {
    "AEPClient": "aep_io.client",
    "AEPError": "aep_io.errors",
    "AEPFileSystem": "aep_io.filesystem",
    "audience_sizes": "aep_io.membership",
    "AudienceExport": "aep_io.audience",
    "AuthenticationError": "aep_io.errors",
    "AuthError": "aep_io.errors",
    "BadRequestError": "aep_io.errors",
    "BatchChangedError": "aep_io.errors",
    "BatchFile": "aep_io.planning",
    "BatchInfo": "aep_io.planning",
    "BatchNotReadyError": "aep_io.errors",
    "cancel_export_job": "aep_io.export_jobs",
    "cancel_segment_job": "aep_io.segmentation",
    "ConfigurationError": "aep_io.errors",
    "ConflictError": "aep_io.errors",
    "CorruptFileError": "aep_io.reader",
    "create_dataset": "aep_io.catalog",
    "create_export_job": "aep_io.export_jobs",
    "create_segment": "aep_io.segmentation",
    "create_segment_job": "aep_io.segmentation",
    "download": "aep_io.downloads",
    "DownloadError": "aep_io.downloads",
    "DownloadReport": "aep_io.downloads",
    "export_audience": "aep_io.audience",
    "ExportJob": "aep_io.export_jobs",
    "flatten_membership": "aep_io.membership",
    "flatten_membership_arrow": "aep_io.membership",
    "flatten_sql": "aep_io.membership",
    "ForbiddenError": "aep_io.errors",
    "get_dataset": "aep_io.catalog",
    "get_export_job": "aep_io.export_jobs",
    "get_segment": "aep_io.segmentation",
    "get_segment_job": "aep_io.segmentation",
    "HTTPStatusError": "aep_io.errors",
    "IncompleteReadError": "aep_io.errors",
    "JobCancelledError": "aep_io.errors",
    "JobError": "aep_io.errors",
    "JobFailedError": "aep_io.errors",
    "JobNotFinishedError": "aep_io.errors",
    "JobTimeoutError": "aep_io.errors",
    "list_export_jobs": "aep_io.export_jobs",
    "list_segment_jobs": "aep_io.segmentation",
    "list_segments": "aep_io.segmentation",
    "members_now": "aep_io.membership",
    "membership_matrix": "aep_io.membership",
    "NotFoundError": "aep_io.errors",
    "Plan": "aep_io.planning",
    "plan": "aep_io.planning",
    "plan_files": "aep_io.planning",
    "RangeNotSatisfiableError": "aep_io.errors",
    "RateLimitError": "aep_io.errors",
    "read_arrow": "aep_io.arrow_io",
    "read_batches": "aep_io.dask_io",
    "ReadOptions": "aep_io.reader",
    "register": "aep_io.duckdb_io",
    "RetryPolicy": "aep_io.retry",
    "scan_batches": "aep_io.polars_io",
    "scan_export_job": "aep_io.polars_io",
    "Secret": "aep_io.settings",
    "segment_members": "aep_io.members",
    "SegmentDefinition": "aep_io.segmentation",
    "SegmentFilter": "aep_io.export_jobs",
    "SegmentJob": "aep_io.segmentation",
    "ServerError": "aep_io.errors",
    "Service": "aep_io.client",
    "Settings": "aep_io.settings",
    "to_arrow_batch_reader": "aep_io.arrow_io",
    "to_duckdb": "aep_io.duckdb_io",
    "TokenError": "aep_io.errors",
    "TransportError": "aep_io.errors",
    "UnsafeRedirectError": "aep_io.errors",
    "wait_for_export_job": "aep_io.export_jobs",
    "wait_for_segment_job": "aep_io.segmentation",
}

if TYPE_CHECKING:
    from aep_io.arrow_io import read_arrow, to_arrow_batch_reader
    from aep_io.audience import AudienceExport, export_audience
    from aep_io.catalog import create_dataset, get_dataset
    from aep_io.client import AEPClient, Service
    from aep_io.dask_io import read_batches
    from aep_io.downloads import DownloadError, DownloadReport, download
    from aep_io.duckdb_io import register, to_duckdb
    from aep_io.errors import (
        AEPError,
        AuthenticationError,
        AuthError,
        BadRequestError,
        BatchChangedError,
        BatchNotReadyError,
        ConfigurationError,
        ConflictError,
        ForbiddenError,
        HTTPStatusError,
        IncompleteReadError,
        JobCancelledError,
        JobError,
        JobFailedError,
        JobNotFinishedError,
        JobTimeoutError,
        NotFoundError,
        RangeNotSatisfiableError,
        RateLimitError,
        ServerError,
        TokenError,
        TransportError,
        UnsafeRedirectError,
    )
    from aep_io.export_jobs import (
        ExportJob,
        SegmentFilter,
        cancel_export_job,
        create_export_job,
        get_export_job,
        list_export_jobs,
        wait_for_export_job,
    )
    from aep_io.filesystem import AEPFileSystem
    from aep_io.members import segment_members
    from aep_io.membership import (
        audience_sizes,
        flatten_membership,
        flatten_membership_arrow,
        flatten_sql,
        members_now,
        membership_matrix,
    )
    from aep_io.planning import BatchFile, BatchInfo, Plan, plan, plan_files
    from aep_io.polars_io import scan_batches, scan_export_job
    from aep_io.reader import CorruptFileError, ReadOptions
    from aep_io.retry import RetryPolicy
    from aep_io.segmentation import (
        SegmentDefinition,
        SegmentJob,
        cancel_segment_job,
        create_segment,
        create_segment_job,
        get_segment,
        get_segment_job,
        list_segment_jobs,
        list_segments,
        wait_for_segment_job,
    )
    from aep_io.settings import Secret, Settings



def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'aep_io' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))

__all__ = [
    "AEPClient",
    "AEPError",
    "AEPFileSystem",
    "AudienceExport",
    "AuthError",
    "AuthenticationError",
    "BadRequestError",
    "BatchChangedError",
    "BatchFile",
    "BatchInfo",
    "BatchNotReadyError",
    "ConfigurationError",
    "ConflictError",
    "CorruptFileError",
    "DownloadError",
    "DownloadReport",
    "ExportJob",
    "ForbiddenError",
    "HTTPStatusError",
    "IncompleteReadError",
    "JobCancelledError",
    "JobError",
    "JobFailedError",
    "JobNotFinishedError",
    "JobTimeoutError",
    "NotFoundError",
    "Plan",
    "RangeNotSatisfiableError",
    "RateLimitError",
    "ReadOptions",
    "RetryPolicy",
    "Secret",
    "SegmentDefinition",
    "SegmentFilter",
    "SegmentJob",
    "ServerError",
    "Service",
    "Settings",
    "TokenError",
    "TransportError",
    "UnsafeRedirectError",
    "__version__",
    "audience_sizes",
    "cancel_export_job",
    "cancel_segment_job",
    "create_dataset",
    "create_export_job",
    "create_segment",
    "create_segment_job",
    "download",
    "export_audience",
    "flatten_membership",
    "flatten_membership_arrow",
    "flatten_sql",
    "get_dataset",
    "get_export_job",
    "get_segment",
    "get_segment_job",
    "list_export_jobs",
    "list_segment_jobs",
    "list_segments",
    "members_now",
    "membership_matrix",
    "plan",
    "plan_files",
    "read_arrow",
    "read_batches",
    "register",
    "scan_batches",
    "scan_export_job",
    "segment_members",
    "to_arrow_batch_reader",
    "to_duckdb",
    "wait_for_export_job",
    "wait_for_segment_job",
]

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

from aep_io.arrow_io import read_arrow, to_arrow_batch_reader
from aep_io.audience import AudienceExport, export_audience
from aep_io.catalog import create_dataset, get_dataset
from aep_io.client import AEPClient, Service
from aep_io.download import DownloadError, DownloadReport, download
from aep_io.duckdb_io import register, to_duckdb
from aep_io.errors import (
    AEPError,
    AuthenticationError,
    AuthError,
    BadRequestError,
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
from aep_io.segment_members import segment_members
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

__version__ = "0.1.0"

__all__ = [
    "AEPClient",
    "AEPError",
    "AEPFileSystem",
    "AudienceExport",
    "AuthError",
    "AuthenticationError",
    "BadRequestError",
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
    "register",
    "scan_batches",
    "scan_export_job",
    "segment_members",
    "to_arrow_batch_reader",
    "to_duckdb",
    "wait_for_export_job",
    "wait_for_segment_job",
]

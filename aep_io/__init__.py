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
from aep_io.client import AEPClient, Service
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
    NotFoundError,
    RangeNotSatisfiableError,
    RateLimitError,
    ServerError,
    TokenError,
    TransportError,
    UnsafeRedirectError,
)
from aep_io.filesystem import AEPFileSystem
from aep_io.planning import BatchFile, BatchInfo, Plan, plan, plan_files
from aep_io.polars_io import scan_batches
from aep_io.reader import CorruptFileError, ReadOptions
from aep_io.retry import RetryPolicy
from aep_io.settings import Secret, Settings

__version__ = "0.1.0"

__all__ = [
    "AEPClient",
    "AEPError",
    "AEPFileSystem",
    "AuthError",
    "AuthenticationError",
    "BadRequestError",
    "BatchFile",
    "BatchInfo",
    "BatchNotReadyError",
    "ConfigurationError",
    "ConflictError",
    "CorruptFileError",
    "ForbiddenError",
    "HTTPStatusError",
    "IncompleteReadError",
    "NotFoundError",
    "Plan",
    "RangeNotSatisfiableError",
    "RateLimitError",
    "ReadOptions",
    "RetryPolicy",
    "Secret",
    "ServerError",
    "Service",
    "Settings",
    "TokenError",
    "TransportError",
    "UnsafeRedirectError",
    "__version__",
    "plan",
    "plan_files",
    "read_arrow",
    "register",
    "scan_batches",
    "to_arrow_batch_reader",
    "to_duckdb",
]

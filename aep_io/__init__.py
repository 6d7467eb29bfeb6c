"""aep_io: Adobe Experience Platform audiences into polars and DuckDB.

Resolve export batch ids into parquet files (:func:`plan_files`), read them with HTTP Range
requests through an fsspec filesystem (:class:`AEPFileSystem`, protocol ``aep``), with
authentication, retries and typed errors handled for you.

Example:
    >>> import aep_io
    >>> settings = aep_io.Settings(client_id="id", org_id="O@AdobeOrg", access_token="t")
    >>> settings.platform_url
    'https://platform.adobe.io'
"""

from aep_io.client import AEPClient, Service
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
    "ForbiddenError",
    "HTTPStatusError",
    "IncompleteReadError",
    "NotFoundError",
    "Plan",
    "RangeNotSatisfiableError",
    "RateLimitError",
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
]

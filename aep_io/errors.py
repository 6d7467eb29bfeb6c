"""Typed errors raised by aep_io.

Every error body shape that AEP services send (``aep_api.md`` §9.1) becomes one of these
exceptions, so callers can ``except`` on meaning rather than on status codes. Messages name the
request (method and URL, never a credential) and what the server said.

Exception tree::

    AEPError
    ├── ConfigurationError (ValueError)          missing or invalid settings
    ├── TokenError (PermissionError)             IMS refused to issue a token
    ├── UnsafeRedirectError                      a link points away from the platform origin
    ├── TransportError (ConnectionError)         network failure after every retry
    │   └── DownloadError                        a file download broke off too often
    │                                            (``aep_io.downloads``)
    ├── IncompleteReadError (OSError)            a body shorter/longer than promised
    ├── BatchNotReadyError                       a batch is not in a readable status
    ├── CorruptFileError                         not valid parquet (``aep_io.reader``)
    ├── JobError                                 a segment or export job did not succeed
    │   ├── JobNotFinishedError                  still NEW/PROCESSING where a result is needed
    │   ├── JobFailedError                       FAILED; carries the job's ``errors`` array
    │   ├── JobCancelledError                    CANCELLED
    │   └── JobTimeoutError (TimeoutError)       ``wait()`` ran out of time
    └── HTTPStatusError                          the server answered with an error status
        ├── BadRequestError (ValueError)         400, 405, 413, 415
        ├── AuthError (PermissionError)          401 and 403
        │   ├── AuthenticationError              401 (and 403010 "token is missing")
        │   └── ForbiddenError                   403
        ├── NotFoundError (FileNotFoundError)    404
        │   └── BatchChangedError                a planned file is gone from its batch
        ├── ConflictError                        409 and 422 (e.g. a duplicate segment name)
        ├── RangeNotSatisfiableError             416
        ├── RateLimitError                       429
        └── ServerError                          5xx

Example:
    >>> from aep_io.errors import NotFoundError
    >>> issubclass(NotFoundError, FileNotFoundError)
    True
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

__all__ = [
    "AEPError",
    "AuthError",
    "AuthenticationError",
    "BadRequestError",
    "BatchChangedError",
    "BatchNotReadyError",
    "ConfigurationError",
    "ConflictError",
    "ErrorDetail",
    "ForbiddenError",
    "HTTPStatusError",
    "IncompleteReadError",
    "JobCancelledError",
    "JobError",
    "JobFailedError",
    "JobNotFinishedError",
    "JobTimeoutError",
    "NotFoundError",
    "RangeNotSatisfiableError",
    "RateLimitError",
    "ServerError",
    "TokenError",
    "TransportError",
    "UnsafeRedirectError",
    "error_for_status",
    "parse_error_body",
]

_MAX_BODY_IN_MESSAGE = 500


class AEPError(Exception):
    """Base class of every error aep_io raises on purpose."""


class ConfigurationError(AEPError, ValueError):
    """A required setting is missing or invalid; the message names the variable to set."""


class TokenError(AEPError, PermissionError):
    """IMS refused to issue an access token (bad client id or secret, unknown scope...)."""


class UnsafeRedirectError(AEPError):
    """A link in a response points to a host other than the configured platform origin.

    aep_io never sends AEP credentials to another origin; it refuses to follow such a link.
    """


class TransportError(AEPError, ConnectionError):
    """The request could not be completed (connection refused, reset, timeout) after retries."""


class IncompleteReadError(AEPError, OSError):
    """A response body did not have the length the server promised or the range asked for."""


class BatchNotReadyError(AEPError):
    """A Catalog batch is not in a readable status (``success`` or ``active``)."""


class JobError(AEPError):
    """A segment or export job did not (yet) succeed.

    Attributes:
        job_id: the job's id.
        status: its last status.
        errors: the job's ``errors`` array (``[{code, msg, ...}]``), possibly empty.
    """

    def __init__(
        self, message: str, *, job_id: object = None, status: str = "",
        errors: list[dict[str, object]] | None = None,
    ) -> None:
        super().__init__(message)
        self.job_id = job_id
        self.status = status
        self.errors = list(errors or [])

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild_job_error, (type(self), str(self), self.job_id, self.status, self.errors))


def _rebuild_job_error(
    cls: type[JobError], message: str, job_id: object, status: str,
    errors: list[dict[str, object]],
) -> JobError:
    return cls(message, job_id=job_id, status=status, errors=errors)


class JobNotFinishedError(JobError):
    """The job is still running where its result is needed: wait for it first."""


class JobFailedError(JobError):
    """The job ended FAILED; ``errors`` says why."""


class JobCancelledError(JobError):
    """The job was cancelled."""


class JobTimeoutError(JobError, TimeoutError):
    """Waiting for the job took longer than the timeout (the job itself goes on)."""


@dataclass(frozen=True)
class ErrorDetail:
    """What an error body said, whatever its shape.

    Attributes:
        code: the service's own code (``"401013"``, ``"UPS-1000-404"``...), if any.
        message: the human-readable text.
        retry_after_ms: the body's ``retryAfterMs`` hint, if any.
    """

    code: str | None
    message: str
    retry_after_ms: float | None = None


def _first_str(obj: dict[str, Any], *keys: str) -> str | None:
    for key in keys:
        value = obj.get(key)
        if value not in (None, ""):
            return str(value)
    return None


def parse_error_body(body: bytes | str | Any) -> ErrorDetail | None:
    """Read any of the error body shapes of ``aep_api.md`` §9.1.

    Handles the gateway ``{error_code, message}``, RFC 7807 ``{type, title, status, detail}``,
    Profile/UPS ``{message, cause, statusCode}`` (also wrapped in a one-element array),
    IMS/OAuth ``{error, error_description}`` and Flow Service ``{errorMessage}``.

    Example:
        >>> parse_error_body(b'{"error_code": "401013", "message": "Oauth token is not valid"}')
        ErrorDetail(code='401013', message='Oauth token is not valid', retry_after_ms=None)
    """
    if isinstance(body, bytes | bytearray):
        try:
            body = json.loads(body.decode("utf-8", "replace")) if body.strip() else None
        except ValueError:
            text = body.decode("utf-8", "replace").strip()
            return ErrorDetail(None, text[:_MAX_BODY_IN_MESSAGE]) if text else None
    elif isinstance(body, str):
        try:
            body = json.loads(body) if body.strip() else None
        except ValueError:
            return ErrorDetail(None, body.strip()[:_MAX_BODY_IN_MESSAGE]) or None
    if isinstance(body, list) and body and isinstance(body[0], dict):
        body = body[0]
    if not isinstance(body, dict):
        return None
    retry_ms: float | None = None
    raw_retry = body.get("retryAfterMs")
    if raw_retry is not None:
        try:
            retry_ms = float(raw_retry)
        except (TypeError, ValueError):
            retry_ms = None
    if "error_code" in body:  # Adobe I/O gateway
        return ErrorDetail(str(body["error_code"]), _first_str(body, "message") or "", retry_ms)
    if "title" in body or "detail" in body:  # RFC 7807 problem details
        type_uri = _first_str(body, "type") or ""
        code = type_uri.rsplit("/", 1)[-1] if "/" in type_uri else (type_uri or None)
        parts = [p for p in (_first_str(body, "title"), _first_str(body, "detail")) if p]
        return ErrorDetail(code or None, ": ".join(parts), retry_ms)
    if "error" in body and isinstance(body["error"], str):  # IMS / OAuth2
        text = _first_str(body, "error_description") or body["error"]
        return ErrorDetail(body["error"], text, retry_ms)
    if "message" in body:  # Profile / UPS
        message = str(body["message"])
        cause = _first_str(body, "cause")
        code = message.split(":", 1)[0] if message[:4].isupper() and ":" in message else None
        text = f"{message} ({cause})" if cause else message
        return ErrorDetail(code, text, retry_ms)
    if "errorMessage" in body:  # Flow Service
        return ErrorDetail(_first_str(body, "errorCode"), str(body["errorMessage"]), retry_ms)
    if retry_ms is not None:
        return ErrorDetail(None, "", retry_ms)
    return None


class HTTPStatusError(AEPError):
    """The server answered with an error status.

    Attributes:
        method: the HTTP method of the failed request.
        url: the URL of the failed request (it never carries credentials).
        status_code: the HTTP status.
        code: the service's error code when the body had one.
        server_message: what the server said.
        retry_after: seconds the server asked to wait, if it said.
    """

    def __init__(
        self,
        method: str,
        url: str,
        status_code: int,
        detail: ErrorDetail | None = None,
        *,
        retry_after: float | None = None,
        hint: str | None = None,
    ) -> None:
        self.method = method
        self.url = url
        self.status_code = status_code
        self.code = detail.code if detail else None
        self.server_message = detail.message if detail else ""
        self.retry_after = retry_after
        self.hint = hint
        said = self.server_message or "(no error body)"
        if self.code and self.code not in said:
            said = f"[{self.code}] {said}"
        message = f"{method} {url} failed with HTTP {status_code}: {said}"
        if hint:
            message = f"{message}. {hint}"
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        detail = ErrorDetail(self.code, self.server_message)
        args = (type(self), self.method, self.url, self.status_code, detail, self.retry_after,
                self.hint)
        return (_rebuild_http_error, args)


def _rebuild_http_error(
    cls: type[HTTPStatusError],
    method: str,
    url: str,
    status: int,
    detail: ErrorDetail,
    retry_after: float | None,
    hint: str | None,
) -> HTTPStatusError:
    return cls(method, url, status, detail, retry_after=retry_after, hint=hint)


class BadRequestError(HTTPStatusError, ValueError):
    """The request was malformed or invalid (400 and friends)."""


class AuthError(HTTPStatusError, PermissionError):
    """Credentials were missing, invalid or not allowed for this resource (401/403)."""


class AuthenticationError(AuthError):
    """The access token was missing, invalid or expired (401, gateway 403010)."""


class ForbiddenError(AuthError):
    """The credentials are valid but not allowed here (403): org, api key or product context."""


class NotFoundError(HTTPStatusError, FileNotFoundError):
    """The resource does not exist, or is not visible to this org and sandbox (404)."""


class BatchChangedError(NotFoundError):
    """A file listed when its batch was planned answers 404 and a new listing confirms the
    batch changed: the file is gone from it (or is listed with another size, or the batch itself
    is gone). Plan the batch again, then read it again: nothing of the old plan is trusted.

    Raised by reads through ``aep://`` and by downloads, which re-list the batch once when a
    listed file answers 404 (a stale listing that recovers is read on, silently).

    Attributes:
        batch_id: the batch that changed.
        uri: the ``aep://`` URL of the file that is gone.
        reason: what the new listing says (``is no longer listed in the batch``...).

    Example:
        >>> err = BatchChangedError("B1", "aep://B1/F1/part-0.parquet", "https://x/files/F1",
        ...                         "is no longer listed in the batch")
        >>> isinstance(err, FileNotFoundError), err.batch_id
        (True, 'B1')
    """

    def __init__(
        self, batch_id: str, uri: str, url: str, reason: str, detail: ErrorDetail | None = None
    ) -> None:
        self.batch_id = batch_id
        self.uri = uri
        self.reason = reason
        super().__init__(
            "GET", url, 404, detail,
            hint=f"{uri} {reason}: batch {batch_id} changed since it was planned; plan again "
            "(list the batch afresh) and read it again",
        )

    def __reduce__(self) -> tuple[Any, ...]:
        detail = ErrorDetail(self.code, self.server_message)
        return (type(self), (self.batch_id, self.uri, self.url, self.reason, detail))


class ConflictError(HTTPStatusError):
    """The request conflicts with existing state (409, 422: e.g. a duplicate name)."""


class RangeNotSatisfiableError(HTTPStatusError):
    """The requested byte range lies outside the file (416)."""


class RateLimitError(HTTPStatusError):
    """Too many requests (429) and the retry budget ran out."""


class ServerError(HTTPStatusError):
    """The service failed (5xx) and the retry budget ran out."""


_HINTS = {
    401: "Check the access token (AEP_ACCESS_TOKEN) or the client credentials",
    403: "Check AEP_CLIENT_ID (x-api-key), AEP_ORG_ID and the product profile of the integration",
    404: "Check the id, and that AEP_ORG_ID and AEP_SANDBOX name the org and sandbox holding it",
}


def error_for_status(
    method: str,
    url: str,
    status_code: int,
    body: bytes | None,
    *,
    retry_after: float | None = None,
) -> HTTPStatusError:
    """Build the typed exception for an error response.

    Example:
        >>> err = error_for_status("GET", "https://x/files/1", 404, b'{"title": "Not found"}')
        >>> isinstance(err, FileNotFoundError), str(err)
        (True, 'GET https://x/files/1 failed with HTTP 404: Not found. Check the id, and that AEP_ORG_ID and AEP_SANDBOX name the org and sandbox holding it')
    """  # noqa: E501
    detail = parse_error_body(body) if body else None
    cls: type[HTTPStatusError]
    if status_code == 401 or (detail is not None and detail.code == "403010"):
        cls = AuthenticationError
    elif status_code == 403:
        cls = ForbiddenError
    elif status_code == 404:
        cls = NotFoundError
    elif status_code in (409, 422):
        cls = ConflictError
    elif status_code == 416:
        cls = RangeNotSatisfiableError
    elif status_code == 429:
        cls = RateLimitError
    elif status_code >= 500:
        cls = ServerError
    else:
        cls = BadRequestError
    hint = _HINTS.get(401 if cls is AuthenticationError else status_code)
    return cls(method, url, status_code, detail, retry_after=retry_after, hint=hint)

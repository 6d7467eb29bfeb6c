"""What the Adobe I/O gateway does before a request reaches a service, and the error shapes.

:func:`authenticate` checks the four AEP headers in the gateway's order and with its error
bodies (``{"error_code", "message"}``, ``aep_api.md`` §1.2 and §9.1); it returns the tenant
(org + sandbox) the request may see. Services answer their own errors as RFC 7807 problem
details (:func:`problem`).

Every handler reads its request the same way, so bad input gets the same 4xx everywhere and
never a 500: :func:`read_body` (size-limited, also when ``Content-Length`` lies),
:func:`json_body` (content type, UTF-8, JSON, the top-level type), :func:`want` (one field's
type), :func:`int_param` (integer query parameters) and :func:`fallback` (unknown paths and
methods of a service: 404 naming the service's endpoints, 405 naming the allowed methods).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Match, Route

from aep_io.emulator.store import Tenant

if TYPE_CHECKING:
    from aep_io.emulator.core import Emulator
    from aep_io.emulator.credentials import Credentials

__all__ = [
    "MAX_BODY",
    "APIError",
    "HeaderCheck",
    "authenticate",
    "bearer_token",
    "check_headers",
    "echo",
    "error_response",
    "fallback",
    "gateway_error",
    "int_param",
    "invalid_token",
    "json_body",
    "json_type",
    "problem",
    "read_body",
    "want",
]

_SANDBOX = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
# A bearer token is printable ASCII (base64url and dots); anything else cannot be one.
_TOKEN = re.compile(r"^[\x21-\x7e]{1,4096}$")
_INT = re.compile(r"^\s*[+-]?[0-9]{1,18}\s*$")
#: The largest request body any endpoint reads, in bytes (a larger one is a 413).
MAX_BODY = 1024 * 1024


class APIError(Exception):
    """An error response: status, JSON body and extra headers."""

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}


def error_response(error: APIError) -> JSONResponse:
    """The HTTP response of an :class:`APIError` (its status, JSON body and headers)."""
    return JSONResponse(error.body, status_code=error.status, headers=error.headers)


def gateway_error(status: int, code: str, message: str) -> APIError:
    """An Adobe I/O gateway error (shape 1 of ``aep_api.md`` §9.1)."""
    return APIError(status, {"error_code": code, "message": message})


def invalid_token() -> APIError:
    """The gateway's answer to a token that is not valid: bad signature, expired or revoked."""
    return gateway_error(401, "401013", "Oauth token is not valid")


def bearer_token(headers: Mapping[str, str]) -> str | None:
    """The token of an ``Authorization: Bearer ...`` header (None without one, or when it
    cannot be a token: empty, too long, or not printable ASCII)."""
    authorization = headers.get("authorization")
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and _TOKEN.match(token) else None


_TITLES = {
    400: "Bad request",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Payload too large",
    415: "Unsupported media type",
    416: "Range not satisfiable",
    422: "Unprocessable entity",
    500: "Internal server error",
}


def problem(
    status: int, service: str, detail: str, *, code: int = 1000,
    headers: dict[str, str] | None = None,
) -> APIError:
    """An RFC 7807 problem (shape 2 of ``aep_api.md`` §9.1) from ``service`` (e.g. ``DAS``)."""
    return APIError(
        status,
        {
            "type": f"http://ns.adobe.com/aep/errors/{service}-{code}-{status}",
            "title": _TITLES.get(status, "Error"),
            "status": status,
            "detail": detail,
        },
        {"Content-Type": "application/problem+json", **(headers or {})},
    )


def echo(value: str, limit: int = 100) -> str:
    """``value`` as it may appear in an error message: as is when short and printable, else
    quoted with escapes and cut to ``limit`` characters (ids come from the request)."""
    if len(value) <= limit and value.isprintable():
        return value
    shown = repr(value[:limit])
    return shown if len(value) <= limit else f"{shown}... ({len(value)} characters)"


def authenticate(request: Request) -> Tenant:
    """Check the gateway headers; return the tenant the request acts for, or raise APIError."""
    emulator: Emulator = request.app.state.emulator
    return check_headers(emulator.credentials, request.headers)


def check_headers(credentials: Credentials, headers: Mapping[str, str]) -> Tenant:
    """:func:`authenticate` on headers already read (lower-case names): the tenant, or raise
    APIError. The token is verified on every call (so a revoked or expired token fails at once)."""
    if not headers.get("authorization"):
        raise gateway_error(403, "403010", "Oauth token is missing.")
    token = bearer_token(headers)
    claims = credentials.verify(token) if token is not None else None
    if claims is None:
        raise invalid_token()
    api_key = headers.get("x-api-key")
    if not api_key:
        raise gateway_error(403, "403000", "Api Key is required")
    if api_key != claims.client_id:
        raise gateway_error(403, "403003", "Api Key is invalid")
    org = headers.get("x-gw-ims-org-id")
    if not org:
        raise gateway_error(400, "400003", "Missing header: x-gw-ims-org-id")
    if org != claims.org_id:
        raise gateway_error(403, "403025", "Profile is not valid")
    sandbox = headers.get("x-sandbox-name")
    if not sandbox:
        raise gateway_error(400, "400003", "Missing header: x-sandbox-name")
    if not _SANDBOX.match(sandbox):
        raise gateway_error(
            400, "400003", f"Invalid header x-sandbox-name: {sandbox[:64]!r} (all lower case)"
        )
    return Tenant(org, sandbox)


class HeaderCheck:
    """:func:`check_headers` for the hot path: the header values that passed are remembered (at
    most ``size`` combinations), so a repeated request costs one dictionary lookup and a new
    :meth:`~.credentials.Credentials.verify` of its token, never skipped: a token revoked,
    expired or issued before :meth:`~.credentials.Credentials.revoke_all` fails at once.

    Keys are the raw header values (bytes, None when absent) of ``authorization``,
    ``x-api-key``, ``x-gw-ims-org-id`` and ``x-sandbox-name``.
    """

    def __init__(self, credentials: Credentials, size: int = 1024) -> None:
        self.credentials = credentials
        self.size = size
        self._passed: dict[tuple[bytes | None, ...], tuple[str, Tenant]] = {}

    def tenant(self, raw: tuple[bytes | None, bytes | None, bytes | None, bytes | None]) -> Tenant:
        """The tenant of a request with these raw header values, or raise APIError."""
        passed = self._passed.get(raw)
        if passed is not None and self.credentials.verify(passed[0]) is not None:
            return passed[1]
        names = ("authorization", "x-api-key", "x-gw-ims-org-id", "x-sandbox-name")
        headers = {n: v.decode("latin-1") for n, v in zip(names, raw, strict=True) if v is not None}
        tenant = check_headers(self.credentials, headers)
        token = bearer_token(headers)
        assert token is not None  # check_headers passed
        if len(self._passed) >= self.size:
            self._passed.clear()
        self._passed[raw] = (token, tenant)
        return tenant


def int_param(
    request: Request, name: str, default: int, *, minimum: int = 0, maximum: int | None = None,
    service: str = "DAS",
) -> int:
    """An integer query parameter within bounds, or a 400 naming it and the bounds."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    upper = "" if maximum is None else f" and {maximum}"
    if not _INT.match(raw):
        digits = raw.strip().lstrip("+-")
        kind = "too large" if digits.isascii() and digits.isdecimal() else "not an integer"
        raise problem(400, service, f"query parameter {name}={raw[:40]!r} is {kind}: give an "
                      f"integer between {minimum}{upper}")  # fmt: skip
    value = int(raw)
    if value < minimum or (maximum is not None and value > maximum):
        raise problem(
            400, service, f"query parameter {name}={value} must lie between {minimum}{upper}"
        )
    return value


ErrorFactory = Callable[[int, str], APIError]


async def read_body(request: Request, error: ErrorFactory, *, limit: int = MAX_BODY) -> bytes:
    """The raw request body, at most ``limit`` bytes; ``error(status, message)`` builds the 413
    (checked on ``Content-Length`` before reading, and again while reading, since the header
    may lie or be absent with chunked encoding)."""
    declared = (request.headers.get("content-length") or "").strip()
    if declared.isascii() and declared.isdigit() and (len(declared) > 18 or int(declared) > limit):
        raise error(413, f"request body of {declared[:30]} bytes is larger than the limit of "
                         f"{limit} bytes")  # fmt: skip
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise error(413, f"request body larger than the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


_JSON_TYPES = {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
               int: "an integer", float: "a number", type(None): "null"}  # fmt: skip


def json_type(value: Any) -> str:
    """The JSON name of ``value``'s type, for messages (``an object``, ``null``...)."""
    return _JSON_TYPES.get(type(value), type(value).__name__)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON (numbers must be finite)")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} is too large")
    return value


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/")
                                           and media.endswith("+json"))  # fmt: skip


async def json_body(request: Request, service: str, *, array: bool = False) -> Any:
    """The request's JSON body: an object (or, with ``array``, an object or an array).

    Every problem is a 4xx ``problem`` naming it: 415 without a JSON content type, 413 over
    :data:`MAX_BODY`, 400 for an empty body, bytes that are not UTF-8, malformed or too deeply
    nested JSON, ``NaN``/``Infinity``, or a top-level value of another type.
    """
    if not _is_json(request.headers.get("content-type", "")):
        raise problem(415, service, "A valid content-type must be specified (application/json)")
    raw = await read_body(request, lambda status, message: problem(status, service, message))
    wanted = "a JSON object or array" if array else "a JSON object"
    if not raw.strip():
        raise problem(400, service, f"the request body is empty: send {wanted}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise problem(400, service, f"the request body is not UTF-8 (invalid byte at position "
                                    f"{exc.start})") from None  # fmt: skip
    try:
        body = json.loads(text, parse_constant=_no_constant, parse_float=_finite)
    except RecursionError:
        raise problem(400, service, "malformed JSON body: nested too deeply") from None
    except ValueError as exc:
        raise problem(400, service, f"malformed JSON body: {exc}") from None
    if isinstance(body, dict) or (array and isinstance(body, list)):
        return body
    raise problem(400, service, f"the request body must be {wanted}, not {json_type(body)}")


def want(body: dict[str, Any], key: str, types: type | tuple[type, ...], where: str,
         *, service: str, required: bool = False) -> Any:  # fmt: skip
    """``body[key]`` if it has one of ``types`` (None when absent and optional), else a 400
    naming the field (``where`` is its parent's path, e.g. ``"expression."``)."""
    names = types if isinstance(types, tuple) else (types,)
    value = body.get(key)
    if value is None:
        if required:
            raise problem(400, service, f"{where}{key} is required")
        return None
    # JSON true is not an integer
    if not isinstance(value, names) or (isinstance(value, bool) and bool not in names):
        kinds = " or ".join(_JSON_TYPES.get(t, t.__name__) for t in names)
        raise problem(400, service, f"{where}{key} must be {kinds}, not {json_type(value)}")
    return value


class _Fallback:
    """The ASGI app of :func:`fallback` (an app, not a function, so it takes every method)."""

    def __init__(self, service: str, prefix: str, routes: Sequence[BaseRoute]) -> None:
        self.service = service
        self.known = [r for r in routes if isinstance(r, Route)]
        self.paths = ", ".join(dict.fromkeys(prefix + r.path for r in self.known))

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        method = scope["method"]
        allowed = sorted({m for r in self.known if r.matches(scope)[0] is not Match.NONE
                          for m in r.methods or ()})  # fmt: skip
        path = echo(scope["path"], 200)
        if allowed:
            error = problem(405, self.service, f"{method} is not allowed on {path}; use "
                            f"{', '.join(allowed)}", headers={"Allow": ", ".join(allowed)})
        else:
            error = problem(404, self.service, f"no endpoint {method} {path}; this service "
                            f"serves {self.paths}")  # fmt: skip
        await error_response(error)(scope, receive, send)


def fallback(service: str, prefix: str, routes: Sequence[BaseRoute]) -> Route:
    """A last route for a service's mount: 405 (with ``Allow``) when the path exists under
    another method, else 404 naming the service's endpoints. Put it after ``routes``."""
    return Route("/{path:path}", _Fallback(service, prefix, routes), methods=None)

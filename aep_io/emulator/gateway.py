"""What the Adobe I/O gateway does before a request reaches a service, and the error shapes.

:func:`authenticate` checks the four AEP headers in the gateway's order and with its error
bodies (``{"error_code", "message"}``, ``aep_api.md`` §1.2 and §9.1); it returns the tenant
(org + sandbox) the request may see. Services answer their own errors as RFC 7807 problem
details (:func:`problem`).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from starlette.requests import Request

from aep_io.emulator.store import Tenant

if TYPE_CHECKING:
    from aep_io.emulator.core import Emulator

__all__ = ["APIError", "authenticate", "gateway_error", "int_param", "problem"]

_SANDBOX = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")


class APIError(Exception):
    """An error response: status, JSON body and extra headers."""

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}


def gateway_error(status: int, code: str, message: str) -> APIError:
    """An Adobe I/O gateway error (shape 1 of ``aep_api.md`` §9.1)."""
    return APIError(status, {"error_code": code, "message": message})


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


def problem(status: int, service: str, detail: str, *, code: int = 1000) -> APIError:
    """An RFC 7807 problem (shape 2 of ``aep_api.md`` §9.1) from ``service`` (e.g. ``DAS``)."""
    return APIError(
        status,
        {
            "type": f"http://ns.adobe.com/aep/errors/{service}-{code}-{status}",
            "title": _TITLES.get(status, "Error"),
            "status": status,
            "detail": detail,
        },
        {"Content-Type": "application/problem+json"},
    )


def authenticate(request: Request) -> Tenant:
    """Check the gateway headers; return the tenant the request acts for, or raise APIError."""
    emulator: Emulator = request.app.state.emulator
    headers = request.headers
    authorization = headers.get("authorization")
    if not authorization:
        raise gateway_error(403, "403010", "Oauth token is missing.")
    scheme, _, token = authorization.partition(" ")
    claims = emulator.credentials.verify(token.strip()) if scheme.lower() == "bearer" else None
    if claims is None:
        raise gateway_error(401, "401013", "Oauth token is not valid")
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


def int_param(
    request: Request, name: str, default: int, *, minimum: int = 0, maximum: int | None = None,
    service: str = "DAS",
) -> int:
    """An integer query parameter within bounds, or a 400 naming it."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise problem(
            400, service, f"query parameter {name}={raw[:40]!r} is not an integer"
        ) from None
    if value < minimum or (maximum is not None and value > maximum):
        upper = "" if maximum is None else f" and {maximum}"
        raise problem(
            400, service, f"query parameter {name}={value} must lie between {minimum}{upper}"
        )
    return value

"""IMS: ``POST /ims/token/v3`` (OAuth server-to-server, ``client_credentials``)."""

from __future__ import annotations

from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from aep_io.emulator.gateway import APIError, fallback, read_body

__all__ = ["routes"]

_MAX_FORM = 16 * 1024
_FORM = "application/x-www-form-urlencoded"


def _oauth_error(status: int, error: str, description: str) -> APIError:
    return APIError(status, {"error": error, "error_description": description})


async def token_v3(request: Request) -> JSONResponse:
    """Issue a bearer token; ``client_id`` may be in the form body or in the query string."""
    raw = await read_body(
        request, lambda status, message: _oauth_error(status, "invalid_request", message),
        limit=_MAX_FORM,
    )
    content_type = request.headers.get("content-type", "")
    if raw and content_type.split(";", 1)[0].strip().lower() != _FORM:
        raise _oauth_error(400, "invalid_request", f"Content-Type must be {_FORM}")
    form = {k: v[-1] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}
    client_id = form.get("client_id") or request.query_params.get("client_id")
    grant_type = form.get("grant_type")
    if not grant_type:
        raise _oauth_error(400, "invalid_request", "missing grant_type parameter "
                           "(grant_type=client_credentials)")  # fmt: skip
    if grant_type != "client_credentials":
        raise _oauth_error(400, "unsupported_grant_type",
                           f"grant_type {grant_type[:40]!r} is not supported: use "
                           "client_credentials")  # fmt: skip
    if not client_id:
        raise _oauth_error(400, "invalid_request", "missing client_id parameter")
    credentials = request.app.state.emulator.credentials
    integration = credentials.integration(client_id)
    if integration is None:
        raise _oauth_error(400, "invalid_client", "invalid client_id parameter")
    secret = form.get("client_secret") or ""
    if not credentials.check_secret(integration, secret):
        raise _oauth_error(401, "invalid_client", "invalid client_secret parameter")
    token, lifetime = credentials.issue(integration)
    return JSONResponse(
        {"access_token": token, "token_type": "bearer", "expires_in": int(lifetime)},
        headers={"Cache-Control": "no-store"},
    )


routes = [Route("/token/v3", token_v3, methods=["POST"])]
routes.append(fallback("IMS", "/ims", routes))

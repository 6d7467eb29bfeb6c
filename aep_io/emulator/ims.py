"""IMS: ``POST /ims/token/v3`` (OAuth server-to-server, ``client_credentials``)."""

from __future__ import annotations

from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from aep_io.emulator.gateway import APIError

__all__ = ["routes"]

_MAX_FORM = 16 * 1024


def _oauth_error(status: int, error: str, description: str) -> APIError:
    return APIError(status, {"error": error, "error_description": description})


async def token_v3(request: Request) -> JSONResponse:
    """Issue a bearer token; ``client_id`` may be in the form body or in the query string."""
    raw = await request.body()
    if len(raw) > _MAX_FORM:
        raise _oauth_error(400, "invalid_request", "request body too large")
    content_type = request.headers.get("content-type", "")
    if raw and "application/x-www-form-urlencoded" not in content_type:
        raise _oauth_error(
            400, "invalid_request", "Content-Type must be application/x-www-form-urlencoded"
        )
    form = {k: v[-1] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}
    client_id = form.get("client_id") or request.query_params.get("client_id")
    grant_type = form.get("grant_type")
    if grant_type != "client_credentials":
        raise _oauth_error(400, "unsupported_grant_type", "grant_type must be client_credentials")
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

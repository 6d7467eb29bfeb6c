"""The emulator's ASGI application: AEP's path prefixes, one Starlette app, faults and counters."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount

from aep_io.emulator import admin, catalog, data_access, ims, segmentation
from aep_io.emulator.gateway import APIError, error_response, problem
from aep_io.emulator.traffic import ASGIApp, Receive, Scope, Send, TrafficLayer

if TYPE_CHECKING:
    from aep_io.emulator.core import Emulator

__all__ = ["build_app"]

log = logging.getLogger("aep_io.emulator")


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, APIError)
    return error_response(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return error_response(problem(exc.status_code, "EMU", exc.detail or "error",
                                  headers=dict(exc.headers or {})))


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("emulator error on %s %s", request.method, request.url.path)
    return error_response(
        problem(500, "EMU", f"internal error ({type(exc).__name__}); see the emulator's log")
    )


class _Downloads:
    """Answers Data Access file downloads ahead of the router, everything else through it.

    A reader's ranged GETs are most of the emulator's traffic, and the router, the middleware
    stack and a ``Request`` per request cost more than serving the bytes; the response is the
    same (see :class:`.data_access.DirectDownloads`, which hands anything unusual back to the
    router).
    """

    def __init__(self, app: ASGIApp, emulator: Emulator) -> None:
        self.app = app
        self.downloads = data_access.DirectDownloads(emulator)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = self.downloads.response(scope) if scope["type"] == "http" else None
        if response is None:
            await self.app(scope, receive, send)
            return
        try:
            await response(scope, receive, send)
        except Exception:
            # what the app's handler does when the body fails after the headers went out
            log.exception("emulator error on %s %s", scope["method"], scope["path"])
            raise


def build_app(emulator: Emulator) -> ASGIApp:
    """The emulator's ASGI app, wrapped in the fault and counting layer."""
    app = Starlette(
        routes=[
            Mount("/ims", routes=ims.routes),
            Mount("/data/foundation/catalog", routes=catalog.routes),
            Mount("/data/foundation/export", routes=data_access.routes),
            Mount("/data/core/ups", routes=segmentation.routes),
            Mount("/_emulator", routes=admin.routes),
        ],
        exception_handlers={
            APIError: _api_error,
            HTTPException: _http_error,
            Exception: _unexpected,
        },
    )
    app.state.emulator = emulator
    return TrafficLayer(
        _Downloads(app, emulator), emulator.counters, emulator.faults, emulator.credentials
    )

"""The emulator's own test API under ``/_emulator/``: faults and counters over HTTP.

For tests that drive an emulator running in another process (``aep-io emulator serve``). Every
endpoint needs the same valid credentials as AEP's routes (the four gateway headers), and
requests to it never get a fault (they are counted, under route kind ``admin``).

==================================  ==============================================================
endpoint                            answer
==================================  ==============================================================
``GET /_emulator/faults``           200 ``{"seed": 0, "faults": [...]}``: the active faults
``POST /_emulator/faults``          201 with the fault added (body: a fault object, see below)
``DELETE /_emulator/faults``        204: every fault removed
``POST /_emulator/faults/reseed``   204: ``{"seed": 7}`` restarts the random draws of rate faults
``GET /_emulator/counters``         200: requests, bytes and faults served, per route kind
``POST /_emulator/counters/reset``  204: the counters start again from zero
==================================  ==============================================================

A fault object has the keys of :meth:`~.faults.Fault.to_dict` (missing keys take their
defaults); an unknown key or kind, or a value of the wrong type, gets a 400 naming it.
:class:`AdminClient` speaks this API from Python.

Example:
    >>> # with AdminClient("http://127.0.0.1:8080") as admin:
    >>> #     admin.add_fault("kind=status,status=503,route=file,times=2")
    >>> #     admin.counters()["faults"]
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from aep_io.emulator.credentials import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_ORG_ID
from aep_io.emulator.faults import Fault
from aep_io.emulator.gateway import authenticate, fallback, json_body, problem, want

if TYPE_CHECKING:
    from aep_io.emulator.core import Emulator

__all__ = ["AdminClient", "routes"]

_SVC = "EMU"


def _emulator(request: Request) -> Emulator:
    authenticate(request)
    return request.app.state.emulator  # type: ignore[no-any-return]


async def list_faults(request: Request) -> Response:
    """``GET /_emulator/faults``: the active faults, in the order they are tried."""
    faults = _emulator(request).faults
    return JSONResponse({"seed": faults.seed, "faults": [f.to_dict() for f in faults.active()]})


async def add_fault(request: Request) -> Response:
    """``POST /_emulator/faults``: activate the fault of the body; 201 with it."""
    emulator = _emulator(request)
    body = await json_body(request, _SVC)
    try:
        fault = Fault.from_dict(body)
    except ValueError as exc:
        raise problem(400, _SVC, str(exc)) from None
    emulator.faults.add(fault)
    return JSONResponse(fault.to_dict(), status_code=201)


async def clear_faults(request: Request) -> Response:
    """``DELETE /_emulator/faults``: remove every fault."""
    _emulator(request).faults.clear()
    return Response(status_code=204)


async def reseed_faults(request: Request) -> Response:
    """``POST /_emulator/faults/reseed`` ``{"seed": N}``: restart the faults' random generator."""
    emulator = _emulator(request)
    body = await json_body(request, _SVC)
    unknown = sorted(str(k) for k in body if k != "seed")
    if unknown:
        keys = ", ".join(unknown)
        raise problem(400, _SVC, f'unknown key(s) {keys}; the body is {{"seed": N}}')
    emulator.faults.reseed(want(body, "seed", int, "", service=_SVC, required=True))
    return Response(status_code=204)


async def counters(request: Request) -> Response:
    """``GET /_emulator/counters``: what the emulator served since the last reset."""
    return JSONResponse(_emulator(request).counters.snapshot())


async def reset_counters(request: Request) -> Response:
    """``POST /_emulator/counters/reset``: forget everything counted so far."""
    _emulator(request).counters.reset()
    return Response(status_code=204)


routes = [
    Route("/faults", list_faults, methods=["GET"]),
    Route("/faults", add_fault, methods=["POST"]),
    Route("/faults", clear_faults, methods=["DELETE"]),
    Route("/faults/reseed", reseed_faults, methods=["POST"]),
    Route("/counters", counters, methods=["GET"]),
    Route("/counters/reset", reset_counters, methods=["POST"]),
]
routes.append(fallback("EMU", "/_emulator", routes))


class AdminClient:
    """The ``/_emulator/`` test API of an emulator at ``url``, from Python.

    Fetches a token from the emulator's IMS with the given integration (by default the
    emulator's development credentials) and fetches a new one when it is rejected.

    Args:
        url: the emulator's base URL (``http://127.0.0.1:8080``).
        client_id: the integration to authenticate as (default: the development one)...
        client_secret: ...its secret...
        org_id: ...its IMS org...
        sandbox: ...and the sandbox to name in the headers.
        timeout: seconds per request.
    """

    def __init__(
        self,
        url: str,
        *,
        client_id: str = DEFAULT_CLIENT_ID,
        client_secret: str = DEFAULT_CLIENT_SECRET,
        org_id: str = DEFAULT_ORG_ID,
        sandbox: str = "prod",
        timeout: float = 10.0,
    ) -> None:
        self.url = url.rstrip("/")
        self._identity = (client_id, client_secret, org_id, sandbox)
        self._headers: dict[str, str] | None = None
        self._http = httpx.Client(timeout=timeout)

    def __repr__(self) -> str:
        return f"AdminClient(url={self.url!r}, client_id={self._identity[0]!r})"

    def _request(self, method: str, path: str, body: Any = None) -> httpx.Response:
        from aep_io.emulator.server import gateway_headers

        for attempt in range(2):
            if self._headers is None:
                self._headers = gateway_headers(self.url, *self._identity)
            response = self._http.request(
                method, f"{self.url}/_emulator{path}", json=body, headers=self._headers
            )
            if response.status_code == 401 and attempt == 0:
                self._headers = None  # the token expired or was revoked: fetch a new one
                continue
            break
        if response.status_code >= 400:
            try:
                said = response.json().get("detail") or response.text
            except ValueError:
                said = response.text
            error = ValueError if response.status_code == 400 else RuntimeError
            raise error(f"{method} /_emulator{path}: HTTP {response.status_code}: {said}")
        return response

    def faults(self) -> list[Fault]:
        """The active faults."""
        return [Fault.from_dict(f) for f in self._request("GET", "/faults").json()["faults"]]

    def add_fault(self, fault: Fault | Mapping[str, Any] | str) -> Fault:
        """Activate a fault: a :class:`~.faults.Fault`, its dict, or a command-line spec."""
        if isinstance(fault, str):
            fault = Fault.parse(fault)
        data = fault.to_dict() if isinstance(fault, Fault) else dict(fault)
        return Fault.from_dict(self._request("POST", "/faults", data).json())

    def clear_faults(self) -> None:
        """Remove every fault."""
        self._request("DELETE", "/faults")

    def reseed(self, seed: int) -> None:
        """Restart the random generator of rate-based faults."""
        self._request("POST", "/faults/reseed", {"seed": seed})

    def counters(self) -> dict[str, Any]:
        """The counters (``requests``, ``bytes_sent``, ``requests_by_kind``, ``faults``...)."""
        return dict(self._request("GET", "/counters").json())

    def reset_counters(self) -> None:
        """Start the counters again from zero."""
        self._request("POST", "/counters/reset")

    def close(self) -> None:
        """Close the HTTP connections."""
        self._http.close()

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

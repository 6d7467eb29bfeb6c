"""Serving the emulator over HTTP with uvicorn: in a background thread, or in the foreground.

Example:
    >>> import tempfile
    >>> from aep_io.emulator import Emulator
    >>> with EmulatorServer(Emulator(tempfile.mkdtemp())) as server:
    ...     server.host
    '127.0.0.1'
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from typing import Any

import httpx
import uvicorn

from aep_io.emulator.core import Emulator
from aep_io.emulator.credentials import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_ORG_ID

__all__ = ["EmulatorServer", "check_loopback", "gateway_headers"]


def check_loopback(host: str) -> None:
    """Refuse to bind anywhere but loopback: the emulator is for local tests only."""
    if host == "localhost":
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise ValueError(
        f"host {host!r} is not a loopback address; the emulator serves 127.0.0.1 or ::1 only"
    )


def gateway_headers(
    url: str,
    client: str = DEFAULT_CLIENT_ID,
    secret: str = DEFAULT_CLIENT_SECRET,
    org: str = DEFAULT_ORG_ID,
    sandbox: str = "prod",
) -> dict[str, str]:
    """The four AEP headers for plain-HTTP calls to the emulator at ``url`` (fetches a token).

    For tests that speak to the emulator without aep_io's client.
    """
    response = httpx.post(f"{url}/ims/token/v3", data={
        "grant_type": "client_credentials", "client_id": client, "client_secret": secret})
    if response.status_code != 200:
        raise RuntimeError(f"the emulator refused a token for {client!r}: {response.text}")
    return {"Authorization": f"Bearer {response.json()['access_token']}", "x-api-key": client,
            "x-gw-ims-org-id": org, "x-sandbox-name": sandbox}


def _config(emulator: Emulator, **kwargs: Any) -> uvicorn.Config:
    return uvicorn.Config(
        emulator.app,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_keep_alive=30,
        **kwargs,
    )


class EmulatorServer:
    """Runs an :class:`Emulator` on ``host:port`` in a daemon thread (port 0: any free port).

    Use it as a context manager; :attr:`url` is the base URL to give aep_io as both the platform
    and the IMS URL.
    """

    def __init__(self, emulator: Emulator, *, host: str = "127.0.0.1", port: int = 0) -> None:
        check_loopback(host)
        self.emulator = emulator
        self.host = host
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # proto must be IPPROTO_TCP: asyncio sets TCP_NODELAY on accepted sockets only then, and
        # without it every small response stalls ~40 ms on Nagle + delayed ACK.
        self._socket = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self.port: int = self._socket.getsockname()[1]
        self._server = uvicorn.Server(_config(emulator))
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:54321``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def client_env(self, **kwargs: Any) -> dict[str, str]:
        """Environment variables that point aep_io at this server."""
        return self.emulator.client_env(self.url, **kwargs)

    def start(self, timeout: float = 10.0) -> EmulatorServer:
        """Start serving; returns once the server accepts connections."""
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True,
            name=f"aep-emulator-{self.port}",
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the emulator did not start on {self.url}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stop serving and wait for the thread to end."""
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._socket.close()

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_forever(emulator: Emulator, *, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Serve in the foreground until interrupted (``aep-io emulator serve``)."""
    check_loopback(host)
    uvicorn.Server(_config(emulator, host=host, port=port)).run()

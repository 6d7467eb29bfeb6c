"""Servers for the benchmarks, each in its own process on 127.0.0.1: the emulator and nginx."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server for {url} exited with {proc.returncode}")
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


class EmulatorProcess:
    """``aep-io emulator serve`` in a child process (so it does not share the reader's GIL)."""

    def __init__(self, data_dir: str, *, extra_args: Sequence[str] = (),
                 log_path: str | None = None) -> None:
        """Start serving ``data_dir``; ``extra_args`` go to ``serve`` (``--fault ...``), and the
        server's output goes to ``log_path`` when given (else it is discarded)."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        out: IO[bytes] | int = subprocess.DEVNULL
        if log_path is not None:
            out = open(log_path, "wb")  # noqa: SIM115 - kept open for the child's lifetime
        self._log = out
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "aep_io.cli", "emulator", "serve", "--data", data_dir,
             "--port", str(self.port), *extra_args],
            stdout=out, stderr=subprocess.STDOUT if log_path is not None else out,
        )
        _wait_http(self.url, self.proc)

    @property
    def pid(self) -> int:
        """The server's process id (the Python process itself: no shell in between)."""
        return self.proc.pid

    def env(self) -> dict[str, str]:
        from aep_io.emulator.credentials import (
            DEFAULT_CLIENT_ID,
            DEFAULT_CLIENT_SECRET,
            DEFAULT_ORG_ID,
        )

        return {"AEP_CLIENT_ID": DEFAULT_CLIENT_ID, "AEP_CLIENT_SECRET": DEFAULT_CLIENT_SECRET,
                "AEP_ORG_ID": DEFAULT_ORG_ID, "AEP_SANDBOX": "prod",
                "AEP_PLATFORM_URL": self.url, "AEP_IMS_URL": self.url}

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)
        if not isinstance(self._log, int):
            self._log.close()


class NginxProcess:
    """nginx serving a directory of files (the transport limit), when nginx is installed."""

    def __init__(self, root: str) -> None:
        binary = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists(
            "/usr/sbin/nginx") else None)
        if binary is None:
            raise FileNotFoundError("nginx is not installed (apt-get install nginx-light)")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.dir = Path(tempfile.mkdtemp(prefix="aep-bench-nginx-"))
        conf = self.dir / "nginx.conf"
        conf.write_text(f"""
worker_processes 1;
daemon off;
pid {self.dir}/nginx.pid;
error_log {self.dir}/error.log;
events {{ worker_connections 256; }}
http {{
  access_log off;
  sendfile on; tcp_nodelay on;
  keepalive_requests 100000;
  client_body_temp_path {self.dir}/body; proxy_temp_path {self.dir}/proxy;
  fastcgi_temp_path {self.dir}/fastcgi; uwsgi_temp_path {self.dir}/uwsgi;
  scgi_temp_path {self.dir}/scgi;
  server {{
    listen 127.0.0.1:{self.port};
    location / {{ root {root}; }}
  }}
}}
""")
        self.proc = subprocess.Popen([binary, "-c", str(conf), "-p", str(self.dir)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_http(self.url, self.proc)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)

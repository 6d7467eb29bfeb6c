"""The aepp peer benchmark's loopback guard (benchmarks/aepp_bench.py); aepp is not needed."""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
UNROUTED = ("10.255.255.1", 9)  # a private address nobody should ever see a packet for


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    # `benchmarks` lives at the repository root
    monkeypatch.syspath_prepend(str(ROOT))
    from benchmarks import aepp_bench

    undo = aepp_bench.install_loopback_guard()
    try:
        yield aepp_bench
    finally:
        undo()
        aepp_bench.REFUSED.clear()
    assert socket.socket.connect is not aepp_bench._guarded_connect  # really undone
    assert socket.getaddrinfo is not aepp_bench._guarded_getaddrinfo


def _forbid_real_calls(bench: ModuleType, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Replace the real socket functions behind the guard with recorders."""
    calls: list[Any] = []
    for name in ("connect", "connect_ex", "sendto", "getaddrinfo"):
        monkeypatch.setitem(bench._REAL, name,
                            lambda *args, _n=name: calls.append((_n, args)))
    return calls


def test_guard_refuses_a_non_loopback_connect_before_it_happens(
    bench: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _forbid_real_calls(bench, monkeypatch)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        with pytest.raises(bench.NonLoopbackError, match=r"refused connect to \('10\.255"):
            sock.connect(UNROUTED)
        with pytest.raises(bench.NonLoopbackError):
            sock.connect_ex(UNROUTED)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp, pytest.raises(
        bench.NonLoopbackError
    ):
        udp.sendto(b"x", UNROUTED)
    with pytest.raises(bench.NonLoopbackError, match="name lookup"):
        socket.create_connection(("example.com", 443), timeout=0.5)
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock6, pytest.raises(
        bench.NonLoopbackError
    ):
        sock6.connect(("::ffff:10.255.255.1", 9))
    assert calls == []  # the real connect/sendto/getaddrinfo were never reached
    assert len(bench.REFUSED) == 5


def test_guard_lets_loopback_through(bench: ModuleType) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with socket.create_connection(server.getsockname(), timeout=5):
            pass
        with socket.create_connection(("localhost", server.getsockname()[1]), timeout=5):
            pass
    assert bench.REFUSED == []


def test_benchmark_skips_cleanly_without_aepp(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.syspath_prepend(str(ROOT))
    from benchmarks import aepp_bench

    monkeypatch.setitem(sys.modules, "aepp", None)  # importlib.util.find_spec -> None
    assert aepp_bench.main(["--scale", "0.1"]) == 0
    assert capsys.readouterr().out.strip() == aepp_bench.SKIP_MESSAGE

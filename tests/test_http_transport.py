"""The http.client transport: keep-alive, bodies read into buffers, failures as httpx errors,
pool limits and TLS; against the emulator and small servers on loopback."""

from __future__ import annotations

import datetime as dt
import http.server
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from aep_io import AEPClient, RetryPolicy, Settings
from aep_io.emulator import Emulator
from aep_io.emulator.faults import Fault
from aep_io.errors import TransportError
from aep_io.filesystem import fetch_range_into
from aep_io.http_transport import StdlibTransport, body_readinto
from aep_io.planning import BatchFile

Stored = Callable[[BatchFile], bytes]  # the conftest fixture ``stored``


def _transport(client: AEPClient) -> StdlibTransport:
    transport = client.http._transport
    assert isinstance(transport, StdlibTransport)
    return transport


def test_clients_use_it_and_keep_one_connection_alive(
    client: AEPClient, files: list[BatchFile], emulator: Emulator, stored: Stored
) -> None:
    f = files[0]
    opened = _transport(client).connections_opened
    for start in range(0, 64 * 1024, 4096):
        out = bytearray(1000)
        fetch_range_into(client, f, start, memoryview(out))
        assert bytes(out) == stored(f)[start : start + 1000]
    assert _transport(client).connections_opened == opened  # the planning connection, reused
    assert emulator.counters.requests("file") == 16
    assert emulator.counters.bytes_sent("file") == 16_000  # exactly the ranges


def test_a_whole_file_is_read_straight_into_the_buffer(
    client: AEPClient, files: list[BatchFile], emulator: Emulator, stored: Stored
) -> None:
    f = files[1]
    out = bytearray(f.size)
    fetch_range_into(client, f, 0, memoryview(out))
    assert bytes(out) == stored(f)
    assert emulator.counters.bytes_sent("file") == f.size
    assert [r.range for r in emulator.counters.log("file")] == [None]  # one plain GET


def test_a_short_body_raises_remote_protocol_error(
    client: AEPClient, files: list[BatchFile], emulator: Emulator, stored: Stored
) -> None:
    emulator.faults.add(Fault(kind="truncate", route="file", times=1))
    f = files[0]
    idle = _transport(client).idle_connections
    response = client.request("GET", f.url, headers={"Range": "bytes=0-99999"}, stream=True)
    readinto = body_readinto(response)
    assert readinto is not None
    try:
        out = bytearray(100_000)
        got = 0
        with pytest.raises(httpx.RemoteProtocolError, match="before the end of the body"):
            while n := readinto(memoryview(out)[got:]):
                got += n
        assert 0 < got < 100_000
    finally:
        response.close()
    assert _transport(client).idle_connections == idle - 1  # the broken one was dropped
    out = bytearray(100_000)
    fetch_range_into(client, f, 0, memoryview(out))
    assert bytes(out) == stored(f)[:100_000]


def test_iterating_a_reset_body_keeps_the_bytes_that_arrived(
    client: AEPClient, files: list[BatchFile], emulator: Emulator
) -> None:
    emulator.faults.add(Fault(kind="reset_mid_body", route="file", times=1))
    f = files[0]
    received = 0
    with pytest.raises(httpx.TransportError):
        response = client.request("GET", f.url, stream=True)
        try:
            for chunk in response.iter_bytes():
                received += len(chunk)
        finally:
            response.close()
    assert 0 < received < f.size  # chunks are handed on as they arrive


def test_a_slow_answer_times_out(settings: Settings, files: list[BatchFile],
                                 emulator: Emulator) -> None:
    emulator.faults.add(Fault(kind="latency", delay=2.0, route="file", times=1))
    quick = settings.with_(timeout=0.3)
    with AEPClient(quick, retry=RetryPolicy(max_attempts=1)) as client, \
            pytest.raises(TransportError) as caught:  # fmt: skip
        client.request("GET", files[0].url, headers={"Range": "bytes=0-9"})
    assert isinstance(caught.value.__cause__, httpx.ReadTimeout)


def test_nothing_listening_is_a_connect_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    with httpx.Client(transport=StdlibTransport()) as http, pytest.raises(httpx.ConnectError):
        http.get(f"http://127.0.0.1:{port}/")


# -- small servers for what the emulator does not do ---------------------------------------
class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    close_after = False  # close the connection after answering (without saying so)
    answered = threading.Event()

    def do_GET(self) -> None:
        body = f"{self.path} {self.headers.get('Authorization', '-')}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        if self.close_after:
            self.close_connection = True
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)  # the FIN goes out now, not later
        type(self).answered.set()

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = (f"{self.headers.get('Transfer-Encoding', '-')} ".encode()
                + self.rfile.read(length))  # fmt: skip
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def _serve(handler: type[_Handler], context: ssl.SSLContext | None = None
           ) -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        scheme = "https" if context is not None else "http"
        yield f"{scheme}://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_connection_the_server_closed_while_idle_is_not_reused() -> None:
    class Closing(_Handler):
        close_after = True
        answered = threading.Event()

    for url in _serve(Closing):
        transport = StdlibTransport()
        with httpx.Client(transport=transport) as http:
            assert http.get(f"{url}/one").text == "/one -"
            assert Closing.answered.wait(5)
            time.sleep(0.05)  # the FIN has crossed loopback
            assert http.get(f"{url}/two").text == "/two -"  # not written to the dead socket
        assert transport.connections_opened == 2


def test_bodies_are_sent_with_their_length() -> None:
    for url in _serve(_Handler):
        with httpx.Client(transport=StdlibTransport()) as http:
            assert http.post(f"{url}/p", json={"a": 1}).text == '- {"a":1}'
            streamed = http.post(f"{url}/p", content=iter([b"ab", b"cd"]))  # httpx: chunked
            assert streamed.text == "- abcd"  # sent whole, with a Content-Length


def test_requests_beyond_max_connections_wait_then_time_out() -> None:
    for url in _serve(_Handler):
        transport = StdlibTransport(max_connections=1)
        with httpx.Client(transport=transport, timeout=httpx.Timeout(5, pool=0.2)) as http:
            with http.stream("GET", f"{url}/held") as held:
                with pytest.raises(httpx.PoolTimeout):
                    http.get(f"{url}/waits")
                held.read()
            assert http.get(f"{url}/after").text == "/after -"  # the slot came back


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    import ipaddress

    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_tls_is_verified_and_a_ca_bundle_is_honoured(tmp_path: Path) -> None:
    pytest.importorskip("cryptography")
    cert, key = _self_signed(tmp_path)
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    for url in _serve(_Handler, server_context):
        with httpx.Client(transport=StdlibTransport()) as http, \
                pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):  # fmt: skip
            http.get(f"{url}/x")
        settings = Settings(client_id="id", org_id="O@AdobeOrg", access_token="tok-7",
                            platform_url=url, ca_bundle=str(cert))
        with AEPClient(settings) as client:
            response = client.request("GET", f"{url}/data")
            assert response.text == "/data Bearer tok-7"
            assert isinstance(client.http._transport, StdlibTransport)


def test_httpcore_stays_available(settings: Settings, files: list[BatchFile],
                                  stored: Stored) -> None:
    with AEPClient(settings, transport=httpx.HTTPTransport()) as client:
        out = bytearray(5000)
        fetch_range_into(client, files[0], 100, memoryview(out))
    assert bytes(out) == stored(files[0])[100:5100]


@pytest.mark.parametrize(("env", "stdlib"), [
    ({}, True),
    ({"HTTPS_PROXY": "http://127.0.0.1:9"}, False),
    ({"ALL_PROXY": "http://127.0.0.1:9"}, False),
    ({"HTTPS_PROXY": "http://127.0.0.1:9", "NO_PROXY": "platform.example"}, True),
    ({"HTTP_PROXY": "http://127.0.0.1:9"}, True),  # not for https
])
def test_a_proxy_from_the_environment_keeps_httpx_transports(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], stdlib: bool
) -> None:
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY", "https_proxy",
                 "http_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Settings(client_id="id", org_id="O@AdobeOrg", access_token="t",
                        platform_url="https://platform.example")
    with AEPClient(settings) as client:
        assert isinstance(client.http._transport, StdlibTransport) is stdlib
        if not stdlib:  # httpx mounted its proxy transport for the platform
            assert any(t is not None for t in client.http._mounts.values())

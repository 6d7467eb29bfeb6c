"""File downloads answered ahead of the router (``app._Downloads``, ``DirectDownloads``): the very
responses the router gives, the same counters, and a token revoked or expired fails at once."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from aep_io.emulator import Emulator
from aep_io.emulator.credentials import DEFAULT_CLIENT_ID, DEFAULT_ORG_ID
from aep_io.emulator.faults import Fault

PREFIX = "/data/foundation/export/files/"
NAME = "part-0.parquet"
CONTENT = bytes(range(256)) * 40  # 10240 bytes


_IDS: dict[str, str] = {}  # dataset file ids of the module's emulator: file, empty, dir


@pytest.fixture(scope="module")
def emu(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    root = tmp_path_factory.mktemp("direct")
    emulator = Emulator(root / "emu")
    src = root / "src"
    src.mkdir()
    for name, data in ((NAME, CONTENT), ("empty.bin", b""), ("dir-0.parquet", b"x" * 100)):
        (src / name).write_bytes(data)
    batch = emulator.add_export_batch(
        [src / NAME, src / "empty.bin", src / "dir-0.parquet"], directory_groups=1)
    directory = emulator.store.dataset_file(emulator.default_tenant, batch.files[2][0])
    assert directory is not None and directory.parent_id is not None
    _IDS.update(file=batch.files[0][0], empty=batch.files[1][0], dir=directory.parent_id)
    emulator.credentials.add("other-client", "other-secret", "OTHER@AdobeOrg")
    yield emulator
    emulator.close()


@pytest.fixture(autouse=True)
def _clean(emu: Emulator) -> Iterator[None]:
    emu.faults.clear()
    emu.counters.reset()
    yield
    emu.faults.clear()


def _ids(emu: Emulator) -> dict[str, str]:
    return _IDS


def _token(emu: Emulator, client: str = DEFAULT_CLIENT_ID) -> str:
    integration = emu.credentials.integration(client)
    assert integration is not None
    return emu.credentials.issue(integration)[0]


def _headers(token: str, **extra: str) -> list[tuple[bytes, bytes]]:
    base = {"host": "127.0.0.1", "authorization": f"Bearer {token}",
            "x-api-key": DEFAULT_CLIENT_ID, "x-gw-ims-org-id": DEFAULT_ORG_ID,
            "x-sandbox-name": "prod"}
    for key, value in extra.items():
        name = key.replace("_", "-")
        if value == "DROP":
            base.pop(name)
        else:
            base[name] = value
    return [(k.encode(), v.encode("latin-1")) for k, v in base.items()]


def _scope(path: str, query: str, headers: list[tuple[bytes, bytes]], method: str = "GET",
           **more: Any) -> dict[str, Any]:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
            "scheme": "http", "path": path, "raw_path": path.encode(),
            "query_string": query.encode(), "root_path": "", "headers": headers,
            "client": ("127.0.0.1", 1234), "server": ("127.0.0.1", 80), **more}


def _call(app: Any, scope: dict[str, Any]) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(dict(scope), receive, send))
    start = sent[0]
    return start["status"], list(start["headers"]), b"".join(
        m.get("body", b"") for m in sent[1:])


def _layers(emu: Emulator) -> tuple[Any, Any]:
    """(the app with direct downloads, the router alone) under the traffic layer."""
    downloads = emu.app.app
    return downloads, downloads.app


Q = f"path={quote(NAME)}"
CASES: list[tuple[str, str, str, dict[str, str], str]] = [
    # (id, dsf key or literal path suffix, query, header changes, method)
    ("range", "file", Q, {"range": "bytes=0-99"}, "GET"),
    ("open-range", "file", Q, {"range": "bytes=10200-"}, "GET"),
    ("suffix", "file", Q, {"range": "bytes=-50"}, "GET"),
    ("clamped", "file", Q, {"range": "bytes=10000-99999"}, "GET"),
    ("whole", "file", Q, {}, "GET"),
    ("multi-range", "file", Q, {"range": "bytes=0-1,4-5"}, "GET"),
    ("other-unit", "file", Q, {"range": "items=0-1"}, "GET"),
    ("reversed", "file", Q, {"range": "bytes=5-2"}, "GET"),
    ("unsatisfiable", "file", Q, {"range": "bytes=10240-"}, "GET"),
    ("empty-suffix", "file", Q, {"range": "bytes=-0"}, "GET"),
    ("huge-number", "file", Q, {"range": "bytes=" + "9" * 5000 + "-"}, "GET"),
    ("head-range", "file", Q, {"range": "bytes=0-9"}, "HEAD"),
    ("head", "file", Q, {}, "HEAD"),
    ("empty-file", "empty", "path=empty.bin", {}, "GET"),
    ("empty-file-range", "empty", "path=empty.bin", {"range": "bytes=0-"}, "GET"),
    ("last-path-wins", "file", f"path=nope&{Q}", {}, "GET"),
    ("plus-and-escapes", "file", "path=part%2D0.parquet&x=a+b", {"range": "bytes=0-0"}, "GET"),
    ("empty-path", "file", "path=", {}, "GET"),
    ("unknown-name", "file", "path=nope.parquet", {}, "GET"),
    ("escape-attempt", "file", "path=../../emulator.json", {}, "GET"),
    ("unknown-dsf", "nope-1", Q, {}, "GET"),
    ("directory", "dir", Q, {}, "GET"),
    ("listing", "file", "", {}, "GET"),
    ("listing-xpath", "file", "xpath=1", {}, "GET"),
    ("head-listing", "file", "", {}, "HEAD"),
    ("post", "file", Q, {}, "POST"),
    ("no-token", "file", Q, {"authorization": "DROP"}, "GET"),
    ("empty-token", "file", Q, {"authorization": ""}, "GET"),
    ("bad-token", "file", Q, {"authorization": "Bearer emu1.x.y"}, "GET"),
    ("basic", "file", Q, {"authorization": "Basic abc"}, "GET"),
    ("no-api-key", "file", Q, {"x_api_key": "DROP"}, "GET"),
    ("wrong-api-key", "file", Q, {"x_api_key": "someone"}, "GET"),
    ("no-org", "file", Q, {"x_gw_ims_org_id": "DROP"}, "GET"),
    ("wrong-org", "file", Q, {"x_gw_ims_org_id": "OTHER@AdobeOrg"}, "GET"),
    ("no-sandbox", "file", Q, {"x_sandbox_name": "DROP"}, "GET"),
    ("upper-sandbox", "file", Q, {"x_sandbox_name": "PROD"}, "GET"),
    ("other-sandbox", "file", Q, {"x_sandbox_name": "dev"}, "GET"),
    ("latin-1-header", "file", Q, {"range": "bytes=0-1\xe9"}, "GET"),
]


@pytest.mark.parametrize(("case", "dsf", "query", "changes", "method"), CASES,
                         ids=[c[0] for c in CASES])
def test_same_response_as_the_router(emu: Emulator, case: str, dsf: str, query: str,
                                     changes: dict[str, str], method: str) -> None:
    ids = _ids(emu)
    scope = _scope(PREFIX + ids.get(dsf, dsf), query, _headers(_token(emu), **changes), method)
    direct, router = _layers(emu)
    assert _call(direct, scope) == _call(router, scope)
    answered = direct.downloads.response(scope) is not None
    assert answered == (case not in ("listing", "listing-xpath", "head-listing", "post"))


@pytest.mark.parametrize("suffix", ["{id}/", "{id}\n", "{id}/x", "", "a\tb"])
def test_odd_paths_go_to_the_router(emu: Emulator, suffix: str) -> None:
    scope = _scope(PREFIX + suffix.format(id=_ids(emu)["file"]), Q, _headers(_token(emu)))
    direct, router = _layers(emu)
    assert direct.downloads.response(scope) is None
    assert _call(direct, scope) == _call(router, scope)


def test_root_path_goes_to_the_router(emu: Emulator) -> None:
    scope = _scope(PREFIX + _ids(emu)["file"], Q, _headers(_token(emu)), root_path="/x")
    assert _layers(emu)[0].downloads.response(scope) is None


def test_duplicate_headers_first_wins_as_in_the_router(emu: Emulator) -> None:
    headers = [*_headers(_token(emu), range="bytes=0-9"), (b"range", b"bytes=20-29"),
               (b"authorization", b"Bearer emu1.x.y")]
    scope = _scope(PREFIX + _ids(emu)["file"], Q, headers)
    direct, router = _layers(emu)
    status, _, body = _call(direct, scope)
    assert (status, body) == (206, CONTENT[:10])
    assert _call(direct, scope) == _call(router, scope)


def test_other_org_sees_no_file(emu: Emulator) -> None:
    headers = _headers(_token(emu, "other-client"), x_api_key="other-client",
                       x_gw_ims_org_id="OTHER@AdobeOrg")
    scope = _scope(PREFIX + _ids(emu)["file"], Q, headers)
    direct, router = _layers(emu)
    status, _, body = _call(direct, scope)
    assert status == 404 and b"not found" in body
    assert _call(direct, scope) == _call(router, scope)


def _get(emu: Emulator, token: str, rng: str = "bytes=0-3") -> tuple[int, bytes]:
    scope = _scope(PREFIX + _ids(emu)["file"], Q, _headers(token, range=rng))
    status, _, body = _call(emu.app, scope)
    return status, body


INVALID = b'{"error_code":"401013","message":"Oauth token is not valid"}'


def test_revoked_token_fails_at_once(emu: Emulator) -> None:
    token, other = _token(emu), _token(emu)
    assert _get(emu, token) == (206, CONTENT[:4])  # now remembered as passed
    assert emu.credentials.revoke(token)
    assert _get(emu, token) == (401, INVALID)
    assert _get(emu, other) == (206, CONTENT[:4])


def test_expire_token_fault_on_a_download_revokes_it(emu: Emulator) -> None:
    token = _token(emu)
    assert _get(emu, token)[0] == 206
    emu.faults.add(Fault(kind="expire_token", route="file"))
    assert _get(emu, token) == (401, INVALID)
    assert _get(emu, token) == (401, INVALID)  # the fault is used up; the token stays expired
    assert _get(emu, _token(emu)) == (206, CONTENT[:4])
    assert emu.counters.snapshot()["faults"] == {"expire_token": 1}


def test_revoke_all_and_expiry_fail_at_once(emu: Emulator,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    token = _token(emu)
    assert _get(emu, token)[0] == 206
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() + emu.credentials.token_lifetime + 1)
    assert _get(emu, token) == (401, INVALID)  # expired
    monkeypatch.undo()
    assert _get(emu, token)[0] == 206
    time.sleep(0.01)
    emu.credentials.revoke_all()
    assert _get(emu, token) == (401, INVALID)
    assert _get(emu, _token(emu))[0] == 206


def test_counted_and_logged(emu: Emulator) -> None:
    token = _token(emu)
    assert _get(emu, token, "bytes=100-199")[0] == 206
    assert _get(emu, token, f"bytes={len(CONTENT)}-")[0] == 416
    assert emu.counters.snapshot()["requests_by_kind"] == {"file": 2}
    first, second = emu.counters.log("file")
    assert (first.range, first.status, first.bytes_sent, first.fault) == (
        "bytes=100-199", 206, 100, None)
    assert (second.status, second.query) == (416, Q) and second.bytes_sent > 0
    assert emu.counters.bytes_sent("file") == 100 + second.bytes_sent


@pytest.mark.parametrize("kind", ["ignore_range", "truncate", "latency", "status",
                                  "stale_listing"])
def test_faults_apply_to_direct_downloads(emu: Emulator, kind: str) -> None:
    emu.faults.add(Fault(kind=kind, status=429, delay=0.001))  # type: ignore[arg-type]
    scope = _scope(PREFIX + _ids(emu)["file"], Q, _headers(_token(emu), range="bytes=0-999"))
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    if kind == "truncate":  # no transport to close here: the traffic layer says so
        with pytest.raises(RuntimeError, match="injected connection drop"):
            asyncio.run(emu.app(scope, receive, send))
        assert b"".join(m.get("body", b"") for m in sent[1:]) == CONTENT[:500]
        return
    asyncio.run(emu.app(scope, receive, send))
    status = sent[0]["status"]
    body = b"".join(m.get("body", b"") for m in sent[1:])
    expected = {"ignore_range": (200, CONTENT), "latency": (206, CONTENT[:1000])}
    if kind in expected:
        assert (status, body) == expected[kind]
    else:
        assert status == (429 if kind == "status" else 404)
    assert emu.counters.snapshot()["faults"] == {kind: 1}


def test_unexpected_errors_answer_as_the_router(emu: Emulator, monkeypatch: pytest.MonkeyPatch,
                                                caplog: pytest.LogCaptureFixture) -> None:
    def broken(*args: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(emu.store, "physical_file", broken)
    scope = _scope(PREFIX + _ids(emu)["file"], Q, _headers(_token(emu)))
    direct = _layers(emu)[0]
    assert direct.downloads.response(scope) is None  # handed to the router
    with caplog.at_level(logging.ERROR, logger="aep_io.emulator"), pytest.raises(RuntimeError):
        _call(direct, scope)  # the router answers 500, logs, and re-raises to the server
    assert "emulator error on GET" in caplog.text


def test_a_file_shorter_than_its_listing_fails_after_the_headers(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    emu = Emulator(tmp_path / "emu")
    (tmp_path / NAME).write_bytes(CONTENT)
    batch = emu.add_export_batch([tmp_path / NAME])
    dsf = batch.files[0][0]
    stored = emu.store.physical_file(dsf, NAME)
    assert stored is not None
    stored.path.write_bytes(CONTENT[:100])
    scope = _scope(PREFIX + dsf, Q, _headers(_token(emu), range="bytes=0-999"))
    direct, router = _layers(emu)
    for app in (direct, router):
        caplog.clear()
        with caplog.at_level(logging.ERROR, logger="aep_io.emulator"), pytest.raises(OSError):
            _call(app, scope)
        assert "emulator error on GET" in caplog.text
    emu.close()

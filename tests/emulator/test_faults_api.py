"""Fault control from outside the process: ``Fault.parse`` specs, the ``/_emulator/`` HTTP API,
``aep-io emulator serve --fault``, and the ``stale_listing`` / ``expire_token`` kinds over HTTP."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from aep_io.cli import main
from aep_io.emulator import Emulator, EmulatorServer, ExportBatch, Fault
from aep_io.emulator.admin import AdminClient
from aep_io.emulator.credentials import Credentials
from aep_io.emulator.faults import FAULT_KEYS, FAULT_KINDS, Faults
from aep_io.emulator.server import gateway_headers

FILE = "/data/foundation/export/files/F1-1"


# -- Fault.parse, to_dict, from_dict -----------------------------------------------------------
@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("kind=status,status=503,route=file,rate=0.05",
         Fault(kind="status", status=503, route="file", rate=0.05)),
        ("kind=latency,delay=0.2,times=3", Fault(kind="latency", delay=0.2, times=3)),
        ("kind=status,status=429,header.Retry-After=1",
         Fault(status=429, headers={"Retry-After": "1"})),
        ("kind=expire_token,route=file,rate=0.01",
         Fault(kind="expire_token", route="file", rate=0.01)),
        ("kind=stale_listing,times=none", Fault(kind="stale_listing", times=None)),
        ("status=500, path=^/data/, method=GET", Fault(status=500, path="^/data/", method="GET")),
        (r"kind=reset,path=^/data/(a\,b)", Fault(kind="reset", path="^/data/(a,b)")),
        ('status=500,body={"title": "boom"}', Fault(status=500, body={"title": "boom"})),
        ("status=500,body=plain text", Fault(status=500, body="plain text")),
        ("kind=truncate,route=none,rate=none", Fault(kind="truncate")),
    ],
)
def test_parse_specs(spec: str, expected: Fault) -> None:
    assert Fault.parse(spec) == expected
    assert Fault.parse(spec) == Fault.parse(spec)  # same spec, equal faults
    assert Fault.from_dict(json.loads(json.dumps(expected.to_dict()))) == expected


@pytest.mark.parametrize(
    ("spec", "needles"),
    [
        ("kind=nope", ["unknown fault kind 'nope'", *FAULT_KINDS]),
        ("colour=red", ["unknown key 'colour'", "header.<Name>", "times"]),
        ("status=abc", ["status='abc' is not an integer"]),
        ("delay=soon", ["delay='soon' is not a number"]),
        ("status", ["'status' is not key=value"]),
        ("", ["empty"]),
        ("times=0", ["times=0 must be at least 1"]),
        ("rate=1.5", ["rate=1.5 must lie in [0, 1]"]),
        ("status=99", ["HTTP status"]),
        ("route=files", ["unknown route 'files'", "batch_files"]),
        ("route=admin", ["unknown route 'admin'"]),
        ("kind=stale_listing,route=catalog", ["file downloads only"]),
        ("kind=expire_token,route=token", ["token route"]),
        ("path=([", ["not a valid regular expression"]),
        ("method=GE T", ["not an HTTP method"]),
        ("status=500,status=502", ["'status' is given twice"]),
        ("header.=1", ["needs a header name"]),
    ],
)
def test_parse_errors_name_the_problem(spec: str, needles: list[str]) -> None:
    with pytest.raises(ValueError) as info:
        Fault.parse(spec)
    message = str(info.value)
    assert message.startswith(f"bad fault spec {spec!r}")
    for needle in needles:
        assert needle in message


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ([], "a fault is an object"),
        ({"colour": "red"}, "unknown fault key(s) 'colour'"),
        ({"kind": 5}, "kind must be a string"),
        ({"status": "503"}, "status must be an integer"),
        ({"status": True}, "status must be an integer"),
        ({"times": 1.5}, "times must be an integer or null"),
        ({"rate": "often"}, "rate must be a number or null"),
        ({"delay": None}, "delay must be a number"),
        ({"headers": ["Retry-After"]}, "headers must be an object"),
        ({"headers": {"Retry-After": [1]}}, "header Retry-After must be a string or a number"),
        ({"route": 3}, "route must be a string or null"),
    ],
)
def test_from_dict_checks_types(data: Any, needle: str) -> None:
    with pytest.raises(ValueError) as info:
        Fault.from_dict(data)
    assert needle in str(info.value)
    if "unknown" in needle:  # lists the valid keys
        assert all(key in str(info.value) for key in FAULT_KEYS)


@pytest.mark.parametrize(
    "fault",
    [Fault(status=429, headers={"Retry-After": "1"}, times=None),
     Fault(kind="reset", path="^/data/(a,b)", method="GET"),
     Fault(status=500, body={"title": "boom", "detail": "x"}),
     Fault(kind="latency", delay=0.2, times=3, rate=0.5, route="listing")],
)
def test_to_spec_is_what_parse_reads(fault: Fault) -> None:
    assert Fault.parse(fault.to_spec()) == fault


def test_to_dict_is_json_and_lists_every_key() -> None:
    fault = Fault(status=429, headers={"Retry-After": "2"}, body=b"\xffslow down", times=None)
    data = fault.to_dict()
    assert tuple(data) == FAULT_KEYS
    assert json.loads(json.dumps(data))["body"] == "\ufffdslow down"


def test_new_kinds_apply_only_where_they_make_sense() -> None:
    stale = Fault(kind="stale_listing", times=None)
    assert stale.matches("GET", FILE, "path=part-0.parquet")
    assert not stale.matches("GET", FILE, "")  # a dataset file's listing is not a download
    assert not stale.matches("GET", "/data/foundation/catalog/batches/B1", "")
    expire = Fault(kind="expire_token", times=None)
    assert expire.matches("GET", "/data/foundation/catalog/batches/B1", "")
    assert not expire.matches("POST", "/ims/token/v3", "")
    for fault in (Fault(times=None), stale, expire):  # the test API never gets a fault
        assert not fault.matches("GET", "/_emulator/faults", "")


def test_equal_faults_are_consumed_one_at_a_time() -> None:
    faults = Faults()
    first, second = faults.add(Fault(status=500)), faults.add(Fault(status=500))
    assert faults.take("GET", FILE, "path=x") is first
    assert faults.active() == [second] and faults.active()[0] is second


# -- the HTTP API ------------------------------------------------------------------------------
@pytest.fixture
def headers(server: EmulatorServer) -> dict[str, str]:
    return gateway_headers(server.url)


def test_add_list_and_clear_faults(server: EmulatorServer, emulator: Emulator,
                                   headers: dict[str, str]) -> None:
    base = f"{server.url}/_emulator/faults"
    body = {"kind": "status", "status": 429, "headers": {"Retry-After": "1"}, "route": "catalog",
            "times": None}
    created = httpx.post(base, json=body, headers=headers)
    assert created.status_code == 201
    assert created.json() == Fault.from_dict(body).to_dict()
    assert httpx.post(base, json={"kind": "latency", "delay": 0.01},
                      headers=headers).status_code == 201
    listed = httpx.get(base, headers=headers).json()
    assert [f["kind"] for f in listed["faults"]] == ["status", "latency"]
    assert listed["faults"][0] == created.json()
    assert emulator.faults.active()[0] == Fault.from_dict(body)

    catalog = httpx.get(f"{server.url}/data/foundation/catalog/dataSets", headers=headers)
    assert catalog.status_code == 429 and catalog.headers["retry-after"] == "1"
    cleared = httpx.delete(base, headers=headers)
    assert cleared.status_code == 204 and cleared.content == b""
    assert httpx.get(base, headers=headers).json()["faults"] == []
    assert emulator.faults.active() == []


def test_test_api_never_gets_a_fault(server: EmulatorServer, emulator: Emulator,
                                     headers: dict[str, str]) -> None:
    emulator.faults.add(Fault(status=503, times=None))
    emulator.faults.add(Fault(kind="expire_token", times=None))
    r = httpx.delete(f"{server.url}/_emulator/faults", headers=headers)
    assert r.status_code == 204  # a test can always take its faults back
    assert emulator.faults.active() == []


def test_reseed_repeats_the_rate_draws(server: EmulatorServer, emulator: Emulator,
                                       headers: dict[str, str]) -> None:
    base = f"{server.url}/_emulator/faults"

    def draws() -> list[bool]:
        r = httpx.post(f"{base}/reseed", json={"seed": 7}, headers=headers)
        assert r.status_code == 204
        return [emulator.faults.take("GET", FILE, "path=x") is not None for _ in range(40)]

    emulator.faults.add(Fault(status=500, rate=0.5, times=None))
    first = draws()
    assert draws() == first and 5 < sum(first) < 35
    assert emulator.faults.seed == 7
    assert httpx.get(base, headers=headers).json()["seed"] == 7


def test_counters_and_reset(server: EmulatorServer, emulator: Emulator,
                            headers: dict[str, str], export: ExportBatch) -> None:
    httpx.get(f"{server.url}/data/foundation/catalog/batches/{export.batch_id}", headers=headers)
    counted = httpx.get(f"{server.url}/_emulator/counters", headers=headers).json()
    assert counted["requests_by_kind"]["catalog"] == 1
    reset = httpx.post(f"{server.url}/_emulator/counters/reset", headers=headers)
    assert reset.status_code == 204
    assert emulator.counters.requests("catalog") == 0
    after = httpx.get(f"{server.url}/_emulator/counters", headers=headers).json()
    assert after["requests_by_kind"] == {"admin": 1}  # the reset itself


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [("GET", "/faults", None), ("POST", "/faults", {"status": 500}), ("DELETE", "/faults", None),
     ("POST", "/faults/reseed", {"seed": 1}), ("GET", "/counters", None),
     ("POST", "/counters/reset", None)],
)
def test_every_endpoint_needs_credentials(server: EmulatorServer, emulator: Emulator,
                                          headers: dict[str, str], method: str, path: str,
                                          body: Any) -> None:
    url = f"{server.url}/_emulator{path}"
    missing = httpx.request(method, url, json=body)
    assert (missing.status_code, missing.json()["error_code"]) == (403, "403010")
    forged = httpx.request(method, url, json=body,
                           headers={**headers, "Authorization": "Bearer emu1.x.y"})
    assert (forged.status_code, forged.json()["error_code"]) == (401, "401013")
    assert emulator.faults.active() == []


@pytest.mark.parametrize(
    ("path", "content", "status", "needle"),
    [
        ("/faults", b'{"kind": "explode"}', 400, "unknown fault kind 'explode'"),
        ("/faults", b'{"kind": "status", "colour": 1}', 400, "unknown fault key(s) 'colour'"),
        ("/faults", b'{"status": "500"}', 400, "status must be an integer"),
        ("/faults", b'{"rate": 3}', 400, "rate=3.0 must lie in [0, 1]"),
        ("/faults", b'{"path": "(["}', 400, "not a valid regular expression"),
        ("/faults", b'{"headers": 5}', 400, "headers must be an object"),
        ("/faults", b"[]", 400, "JSON object"),
        ("/faults", b"{nope", 400, "malformed JSON"),
        ("/faults", b"", 400, "empty"),
        ("/faults/reseed", b"{}", 400, "seed is required"),
        ("/faults/reseed", b'{"seed": "7"}', 400, "seed must be an integer"),
        ("/faults/reseed", b'{"seed": 7, "x": 1}', 400, "unknown key(s) x"),
    ],
)
def test_bad_bodies_get_400_naming_the_problem(server: EmulatorServer, emulator: Emulator,
                                               headers: dict[str, str], path: str,
                                               content: bytes, status: int,
                                               needle: str) -> None:
    r = httpx.post(f"{server.url}/_emulator{path}", content=content,
                   headers={**headers, "Content-Type": "application/json"})
    assert r.status_code == status, r.text
    assert needle in r.json()["detail"]
    assert emulator.faults.active() == []


def test_admin_client_drives_a_server(server: EmulatorServer, emulator: Emulator,
                                      export: ExportBatch) -> None:
    with AdminClient(server.url) as admin:
        assert "secret" not in repr(admin)
        added = admin.add_fault("kind=status,status=503,route=catalog,times=2")
        assert admin.faults() == [added] == emulator.faults.active()
        admin.add_fault({"kind": "latency", "delay": 0.01})
        assert len(admin.faults()) == 2
        with pytest.raises(ValueError, match="unknown fault kind"):
            admin.add_fault({"kind": "nope"})
        admin.reseed(3)
        assert emulator.faults.seed == 3
        admin.clear_faults()
        assert admin.faults() == []
        admin.reset_counters()
        assert admin.counters()["requests_by_kind"] == {"admin": 1}


# -- the two new kinds over plain HTTP ---------------------------------------------------------
def test_stale_listing_answers_like_a_missing_file(server: EmulatorServer, emulator: Emulator,
                                                   headers: dict[str, str],
                                                   export: ExportBatch) -> None:
    dsf, name, size = export.files[0]
    url = f"{server.url}/data/foundation/export/files/{dsf}"
    missing = httpx.get(url, params={"path": name + ".gone"}, headers=headers)
    emulator.faults.add(Fault(kind="stale_listing"))
    stale = httpx.get(url, params={"path": name}, headers=headers)
    assert stale.status_code == missing.status_code == 404
    assert stale.headers["content-type"] == missing.headers["content-type"]
    assert stale.json() == {**missing.json(), "detail": missing.json()["detail"].replace(
        name + ".gone", name)}
    assert len(httpx.get(url, params={"path": name}, headers=headers).content) == size
    assert emulator.counters.snapshot()["faults"] == {"stale_listing": 1}


def test_expire_token_revokes_that_token_only(server: EmulatorServer, emulator: Emulator,
                                              export: ExportBatch) -> None:
    old, other = gateway_headers(server.url), gateway_headers(server.url)
    url = f"{server.url}/data/foundation/catalog/batches/{export.batch_id}"
    emulator.faults.add(Fault(kind="expire_token", route="catalog"))
    first = httpx.get(url, headers=old)
    assert first.status_code == 401
    assert first.json() == {"error_code": "401013", "message": "Oauth token is not valid"}
    again = httpx.get(url, headers=old)  # the fault is used up: the token itself is expired
    assert (again.status_code, again.json()) == (401, first.json())
    assert httpx.get(url, headers=other).status_code == 200
    assert httpx.get(url, headers=gateway_headers(server.url)).status_code == 200
    token = old["Authorization"].split()[1]
    assert emulator.credentials.verify(token) is None


def test_revocations_are_bounded_thread_safe_and_kept(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    from aep_io.emulator import credentials as credentials_module

    monkeypatch.setattr(credentials_module, "MAX_REVOKED", 50)
    creds = Credentials(tmp_path)
    integration = creds.integration(credentials_module.DEFAULT_CLIENT_ID)
    assert integration is not None
    tokens = [creds.issue(integration)[0] for _ in range(80)]
    assert not creds.revoke("emu1.not.signed")
    threads = [threading.Thread(target=lambda t=t: creds.revoke(t)) for t in tokens[:60]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # bounded: the oldest revocations are forgotten first
    assert sum(creds.verify(t) is None for t in tokens[:60]) == 50
    assert all(creds.verify(t) is not None for t in tokens[60:])  # the others still work
    assert creds.revoke(tokens[-1]) and creds.verify(tokens[-1]) is None
    assert Credentials(tmp_path).verify(tokens[-1]) is None  # survives a restart


# -- the command line --------------------------------------------------------------------------
def _text(out: str) -> str:
    return " ".join(out.replace("│", " ").split())


def test_serve_help_shows_the_fault_flags(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["emulator", "serve", "--help"]) == 0
    out = _text(capsys.readouterr().out)
    assert "--fault SPEC" in out and "--fault-seed N" in out
    assert "stale_listing" in out and "expire_token" in out


@pytest.mark.parametrize(
    ("spec", "needle"),
    [("kind=explode", "unknown fault kind 'explode'"), ("status=abc", "is not an integer"),
     ("nokey", "is not key=value")],
)
def test_serve_rejects_a_bad_fault_cleanly(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                           spec: str, needle: str) -> None:
    code = main(["emulator", "serve", "--data", str(tmp_path / "emu"), "--fault", spec])
    captured = capsys.readouterr()
    err = _text(captured.err + captured.out)
    assert code == 2
    assert "Invalid value for '--fault'" in err and needle in err
    assert "Traceback" not in err
    assert not (tmp_path / "emu").exists()  # nothing started


def test_serve_starts_with_the_faults_and_seed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    from aep_io.emulator import server as server_module

    served: list[Emulator] = []
    monkeypatch.setattr(server_module, "serve_forever",
                        lambda emulator, **kwargs: served.append(emulator))
    code = main(["emulator", "serve", "--data", str(tmp_path), "--fault-seed", "9",
                 "--fault", "kind=status,status=429,header.Retry-After=1,times=none",
                 "--fault", "kind=stale_listing,rate=0.01,times=none"])
    assert code == 0
    (emulator,) = served
    assert emulator.faults.active() == [
        Fault(status=429, headers={"Retry-After": "1"}, times=None),
        Fault(kind="stale_listing", rate=0.01, times=None),
    ]
    assert emulator.faults.seed == 9
    assert "kind=stale_listing" in _text(capsys.readouterr().out)
    emulator.close()

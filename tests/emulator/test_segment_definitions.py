"""``/data/core/ups/segment/definitions`` over plain httpx (aep_api.md §3)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from aep_io.emulator import Emulator, EmulatorServer
from aep_io.emulator.credentials import DEFAULT_ORG_ID
from aep_io.emulator.server import gateway_headers as _headers

BASE = "/data/core/ups/segment/definitions"
US = 'homeAddress.countryCode = "US"'




@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorServer]:
    emulator = Emulator(tmp_path_factory.mktemp("defs"), job_step_delay=0)
    emulator.profiles.load_synthetic(emulator.default_tenant, profiles=500, seed=3)
    emulator.credentials.add("other-client", "other-secret", "OTHER@AdobeOrg")
    with EmulatorServer(emulator) as srv:
        yield srv
    emulator.close()


@pytest.fixture(scope="module")
def ups(server: EmulatorServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers=_headers(server.url), timeout=30) as c:
        yield c


def _definition(name: str, value: str = US, fmt: str = "pql/text", **extra: object) -> dict:
    return {"name": name, "expression": {"type": "PQL", "format": fmt, "value": value},
            "schema": {"name": "_xdm.context.profile"}, **extra}


def _create(ups: httpx.Client, body: dict) -> httpx.Response:
    return ups.post(BASE, json=body)


def _unique(prefix: str) -> str:
    return f"{prefix} {uuid.uuid4().hex[:8]}"


def test_create_returns_the_stored_definition(ups: httpx.Client, server: EmulatorServer) -> None:
    body = _definition(_unique("US residents"), description="people in the US", ttlInDays=30,
                       evaluationInfo={"batch": {"enabled": True}}, profileInstanceId="ups")
    r = _create(ups, body)
    assert r.status_code == 200, r.text
    d = r.json()
    assert str(uuid.UUID(d["id"])) == d["id"]
    assert r.headers["x-location"].endswith(f"{BASE}/{d['id']}")
    assert d["name"] == body["name"] and d["description"] == "people in the US"
    assert d["expression"] == body["expression"] and d["schema"] == body["schema"]
    assert d["imsOrgId"] == DEFAULT_ORG_ID
    assert d["sandbox"]["sandboxName"] == "prod" and d["sandbox"]["type"] == "production"
    assert d["dataGovernancePolicy"] == {"excludeOptOut": True}
    assert isinstance(d["mergePolicyId"], str) and d["mergePolicyId"]
    assert d["ttlInDays"] == 30 and d["evaluationInfo"]["batch"] == {"enabled": True}
    assert d["creationTime"] == d["updateTime"] and d["updateEpoch"] == d["updateTime"] // 1000
    assert ups.get(f"{BASE}/{d['id']}").json() == d


def test_merge_policy_is_kept_when_given(ups: httpx.Client) -> None:
    r = _create(ups, _definition(_unique("mp"), mergePolicyId="mp-1"))
    assert r.json()["mergePolicyId"] == "mp-1"


@pytest.mark.parametrize(
    ("value", "line", "column"),
    [('homeAddress.countryCode = )', 1, 27),
     ('homeAddress.countryCode = "US" and\n  person.name.firstName like', 2, 29),
     ('homeAddress.countryCode = "US', 1, 27)],
)
def test_invalid_pql_is_400_with_the_position(ups: httpx.Client, value: str, line: int,
                                              column: int) -> None:
    r = _create(ups, _definition(_unique("bad"), value))
    assert r.status_code == 400, r.text
    detail = r.json()["detail"]
    assert f"line {line}, column {column}" in detail
    assert "^" in detail and r.json()["status"] == 400


def test_unknown_field_is_400_with_a_suggestion(ups: httpx.Client) -> None:
    r = _create(ups, _definition(_unique("typo"), 'homeAdress.countryCode = "US"'))
    assert r.status_code == 400
    assert "homeAddress" in r.json()["detail"] and "line 1, column 1" in r.json()["detail"]


def test_insegment_needs_an_existing_definition(ups: httpx.Client) -> None:
    r = _create(ups, _definition(_unique("seg of seg"), 'inSegment("no-such-segment")'))
    assert r.status_code == 400 and "no-such-segment" in r.json()["detail"]
    base = _create(ups, _definition(_unique("base"))).json()["id"]
    r = _create(ups, _definition(_unique("seg of seg"), f'inSegment("{base}")'))
    assert r.status_code == 200


def test_pql_json_with_a_text_value_is_accepted_as_in_the_seed(ups: httpx.Client) -> None:
    r = _create(ups, _definition(_unique("seed"), 'homeAddress.country = "US"', "pql/json"))
    assert r.status_code == 200, r.text
    assert r.json()["expression"]["format"] == "pql/json"


def test_pql_json_tree(ups: httpx.Client) -> None:
    tree = {"nodeType": "fnApply", "fnName": "=", "params": [
        {"nodeType": "fieldLookup", "fieldName": "countryCode", "object": {
            "nodeType": "fieldLookup", "fieldName": "homeAddress",
            "object": {"nodeType": "parameterReference", "position": 1}}},
        {"nodeType": "literal", "literalType": "String", "value": "US"}]}
    r = _create(ups, _definition(_unique("tree"), json.dumps(tree), "pql/json"))
    assert r.status_code == 200, r.text
    tree["params"][0]["fieldName"] = "nope"
    r = _create(ups, _definition(_unique("tree"), json.dumps(tree), "pql/json"))
    assert r.status_code == 400 and "nope" in r.json()["detail"]


def test_duplicate_name_is_422(ups: httpx.Client) -> None:
    name = _unique("twice")
    assert _create(ups, _definition(name)).status_code == 200
    r = _create(ups, _definition(name, 'homeAddress.countryCode = "CA"'))
    assert r.status_code == 422 and name in r.json()["detail"]


@pytest.mark.parametrize(
    ("body", "needle"),
    [({"expression": {"type": "PQL", "format": "pql/text", "value": US},
       "schema": {"name": "x"}}, "name is required"),
     ({"name": 5, "expression": {}, "schema": {}}, "name must be a string"),
     ({"name": "n", "schema": {"name": "x"}}, "expression is required"),
     ({"name": "n", "expression": "x", "schema": {"name": "x"}}, "expression must be an object"),
     ({"name": "n", "expression": {"type": "ARL", "format": "pql/text", "value": US},
       "schema": {"name": "x"}}, "not supported"),
     ({"name": "n", "expression": {"type": "PQL", "format": "sql", "value": US},
       "schema": {"name": "x"}}, "expression.format"),
     ({"name": "n", "expression": {"type": "PQL", "format": "pql/text", "value": 3},
       "schema": {"name": "x"}}, "expression.value must be a string"),
     ({"name": "n", "expression": {"type": "PQL", "format": "pql/text", "value": US}},
      "schema is required"),
     ({"name": "n", "expression": {"type": "PQL", "format": "pql/text", "value": US},
       "schema": {}}, "schema.name"),
     ({"name": "n", "expression": {"type": "PQL", "format": "pql/text", "value": US},
       "schema": {"name": "x"}, "ttlInDays": "30"}, "ttlInDays must be an integer"),
     ({"name": "n", "expression": {"type": "PQL", "format": "pql/text", "value": US},
       "schema": {"name": "x"}, "ttlInDays": True}, "ttlInDays must be an integer")],
)
def test_bad_bodies_are_400(ups: httpx.Client, body: dict, needle: str) -> None:
    r = _create(ups, body)
    assert r.status_code == 400, r.text
    assert needle in r.json()["detail"]


@pytest.mark.parametrize(
    ("content", "ctype", "status"),
    [(b"{nope", "application/json", 400), (b"[1]", "application/json", 400),
     (b'{"name": "x"}', "text/plain", 415), (b" " * (1024 * 1024 + 1), "application/json", 413),
     (b"[" * 200_000, "application/json", 400)],
)
def test_malformed_requests(ups: httpx.Client, content: bytes, ctype: str, status: int) -> None:
    r = ups.post(BASE, content=content, headers={"Content-Type": ctype})
    assert r.status_code == status


def test_list_pages(server: EmulatorServer) -> None:
    headers = _headers(server.url, sandbox="paging")
    with httpx.Client(base_url=server.url, headers=headers) as c:
        ids = [c.post(BASE, json=_definition(f"p{i}")).json()["id"] for i in range(5)]
        first = c.get(BASE).json()
        assert first["page"] == {"totalCount": 5, "totalPages": 1, "sortField": "creationTime",
                                 "sort": "desc", "pageSize": 5, "limit": 100}
        assert first["link"] == {}
        assert [d["id"] for d in first["segments"]] == ids[::-1]
        page0 = c.get(BASE, params={"limit": 2}).json()
        assert page0["page"]["totalPages"] == 3 and page0["page"]["pageSize"] == 2
        page2 = c.get(BASE, params={"limit": 2, "page": 2}).json()
        assert [d["id"] for d in page2["segments"]] == [ids[0]]
        started = c.get(BASE, params={"limit": 2, "start": 1}).json()
        assert [d["id"] for d in started["segments"]] == [ids[3], ids[2]]
        ascending = c.get(BASE, params={"sort": "updateTime:asc"}).json()
        assert [d["id"] for d in ascending["segments"]] == ids
        assert ascending["page"]["sortField"] == "updateTime"
        assert c.get(BASE, params={"limit": 101}).status_code == 400
        assert c.get(BASE, params={"sort": "colour:up"}).status_code == 400
        assert c.get(BASE, params={"evaluationInfo.continuous.enabled": "true"}).json()[
            "page"]["totalCount"] == 0
        assert c.get(BASE, params={"evaluationInfo.batch.enabled": "true"}).json()[
            "page"]["totalCount"] == 5
        bulk = c.post(f"{BASE}/bulk-get", json={"ids": [{"id": ids[0]}, {"id": "nope"}]})
        assert bulk.status_code == 207 and list(bulk.json()["results"]) == [ids[0]]


def test_delete(ups: httpx.Client) -> None:
    base = _create(ups, _definition(_unique("to delete"))).json()["id"]
    user = _create(ups, _definition(_unique("user"), f'inSegment("{base}")')).json()["id"]
    r = ups.delete(f"{BASE}/{base}")
    assert r.status_code == 422 and user in r.json()["detail"]
    assert ups.delete(f"{BASE}/{user}").status_code == 204
    r = ups.delete(f"{BASE}/{base}")
    assert r.status_code == 204 and r.content == b""
    assert ups.get(f"{BASE}/{base}").status_code == 404
    assert ups.delete(f"{BASE}/{base}").status_code == 404


def test_other_tenants_see_nothing(ups: httpx.Client, server: EmulatorServer) -> None:
    seg = _create(ups, _definition(_unique("private"))).json()["id"]
    other_org = _headers(server.url, "other-client", "other-secret", "OTHER@AdobeOrg")
    dev = _headers(server.url, sandbox="dev")
    for headers in (other_org, dev):
        r = httpx.get(f"{server.url}{BASE}/{seg}", headers=headers)
        assert r.status_code == 404 and r.json()["title"] == "Not found"
        assert httpx.delete(f"{server.url}{BASE}/{seg}", headers=headers).status_code == 404
        listed = httpx.get(f"{server.url}{BASE}", headers=headers).json()
        assert seg not in [d["id"] for d in listed["segments"]]
    assert ups.get(f"{BASE}/{seg}").status_code == 200


def test_credentials_are_required(server: EmulatorServer) -> None:
    r = httpx.get(f"{server.url}{BASE}")
    assert r.status_code == 403 and r.json()["error_code"] == "403010"


def test_definitions_validate_against_the_loaded_schema(tmp_path: Path) -> None:
    emulator = Emulator(tmp_path, job_step_delay=0)
    try:
        with EmulatorServer(emulator) as srv:
            headers = _headers(srv.url)
            # nothing loaded: the synthetic schema applies
            r = httpx.post(f"{srv.url}{BASE}", headers=headers, json=_definition("a"))
            assert r.status_code == 200
            source = tmp_path / "p.json"
            source.write_text(json.dumps([{"identityMap": {"ECID": [{"id": "1"}]},
                                           "loyalty": {"tier": "gold"}}]))
            emulator.profiles.load_files(emulator.default_tenant, [source])
            r = httpx.post(f"{srv.url}{BASE}", headers=headers, json=_definition("b"))
            assert r.status_code == 400 and "homeAddress" in r.json()["detail"]
            r = httpx.post(f"{srv.url}{BASE}", headers=headers,
                           json=_definition("c", 'loyalty.tier = "gold"'))
            assert r.status_code == 200
    finally:
        emulator.close()

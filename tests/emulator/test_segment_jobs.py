"""``/data/core/ups/segment/jobs`` over plain httpx (aep_api.md §2, §7, §8.3)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from aep_io.emulator import Emulator, EmulatorServer, Tenant
from aep_io.emulator.credentials import DEFAULT_ORG_ID
from aep_io.emulator.server import gateway_headers as _headers

JOBS = "/data/core/ups/segment/jobs"
DEFS = "/data/core/ups/segment/definitions"
TERMINAL = {"SUCCEEDED", "FAILED", "CANCELLED"}
PROFILES = 4_000




class UPS:
    """A tiny httpx helper for one emulator and tenant."""

    def __init__(self, server: EmulatorServer, **tenant: str) -> None:
        self.emulator = server.emulator
        self.http = httpx.Client(base_url=server.url, headers=_headers(server.url, **tenant),
                                 timeout=60)
        self.tenant = Tenant(tenant.get("org", DEFAULT_ORG_ID), tenant.get("sandbox", "prod"))

    def define(self, value: str, name: str | None = None, **extra: Any) -> str:
        body = {"name": name or uuid.uuid4().hex, "schema": {"name": "_xdm.context.profile"},
                "expression": {"type": "PQL", "format": "pql/text", "value": value}, **extra}
        r = self.http.post(DEFS, json=body)
        assert r.status_code == 200, r.text
        return r.json()["id"]

    def start(self, body: Any) -> dict[str, Any]:
        r = self.http.post(JOBS, json=body)
        assert r.status_code == 200, r.text
        return r.json()

    def wait(self, job_id: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            job = self.http.get(f"{JOBS}/{job_id}").json()
            if job["status"] in TERMINAL or time.monotonic() > deadline:
                return job
            time.sleep(0.01)

    def run(self, *segment_ids: str) -> dict[str, Any]:
        return self.wait(self.start([{"segmentId": s} for s in segment_ids])["id"])

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        """SQL over the tenant's profiles as the store reads them (``profiles`` is the table,
        with the membership segment jobs left)."""
        table = self.emulator.profiles.read(self.tenant)
        with duckdb.connect() as con:
            con.register("profiles", table)
            return con.sql(sql).fetchall()

    def memberships(self, segment_id: str) -> dict[int, dict[str, Any]]:
        """``_emulatorProfileId`` → the ups entry of ``segment_id``."""
        rows = self.query(
            f"""SELECT _emulatorProfileId, segmentMembership['ups']['{segment_id}']
                FROM profiles WHERE segmentMembership['ups']['{segment_id}'] IS NOT NULL""")
        return dict(rows)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorServer]:
    emulator = Emulator(tmp_path_factory.mktemp("jobs"), job_step_delay=0)
    emulator.profiles.load_synthetic(emulator.default_tenant, profiles=PROFILES, seed=21)
    emulator.credentials.add("other-client", "other-secret", "OTHER@AdobeOrg")
    with EmulatorServer(emulator) as srv:
        yield srv
    emulator.close()


@pytest.fixture(scope="module")
def ups(server: EmulatorServer) -> UPS:
    return UPS(server)


def test_job_succeeds_with_metrics_matching_the_store(ups: UPS) -> None:
    us = ups.define('homeAddress.countryCode = "US"')
    gold = ups.define('_acme.loyaltyTier = "gold" and homeAddress.countryCode in ["DE", "FR"]')
    before = time.time()
    job = ups.run(us, gold)
    assert job["status"] == "SUCCEEDED", job
    m = job["metrics"]
    assert m["totalProfiles"] == PROFILES
    assert list(m["totalProfilesByMergePolicy"].values()) == [PROFILES]
    for seg, where in ((us, "homeAddress.countryCode = 'US'"),
                       (gold, "_acme.loyaltyTier = 'gold' AND "
                              "homeAddress.countryCode IN ('DE', 'FR')")):
        ((expected,),) = ups.query(f"SELECT count(*) FROM profiles WHERE {where}")
        assert 0 < expected < PROFILES
        assert m["segmentedProfileCounter"][seg] == expected
        assert m["segmentedProfileByStatusCounter"][seg] == {
            "realized": expected, "existing": 0, "exited": 0}
        by_ns = dict(ups.query(
            f"SELECT k, count(*) FROM profiles, unnest(map_keys(identityMap)) AS t(k) "
            f"WHERE {where} GROUP BY k"))
        assert m["segmentedProfileByNamespaceCounter"][seg] == by_ns
        # the store now holds realized entries for exactly those profiles
        members = ups.memberships(seg)
        ((matching,),) = ups.query(
            f"SELECT count(*) FROM profiles WHERE {where} AND "
            f"segmentMembership['ups']['{seg}'].status = 'realized'")
        assert len(members) == matching == expected
        entry = next(iter(members.values()))
        assert entry["version"] == "1" and entry["validUntil"] is None
        assert before - 1 <= entry["lastQualificationTime"].timestamp() <= time.time() + 1
    for key in ("totalTime", "profileSegmentationTime"):
        block = m[key]
        assert block["endTimeInMs"] - block["startTimeInMs"] == block["totalTimeInMs"] >= 0
    # other namespaces and segments the job did not touch are as before
    ((aam,),) = ups.query("SELECT count(*) FROM profiles WHERE segmentMembership['aam'] "
                          "IS NOT NULL")
    assert aam > 0


def test_realized_existing_exited_across_runs(tmp_path: Path) -> None:
    emulator = Emulator(tmp_path, job_step_delay=0)
    tenant = emulator.default_tenant
    emulator.profiles.load_synthetic(tenant, profiles=2_000, seed=4)
    try:
        with EmulatorServer(emulator) as srv:
            client = UPS(srv)
            seg = client.define('homeAddress.countryCode = "CA"', ttlInDays=10)
            first = client.run(seg)
            assert first["status"] == "SUCCEEDED"
            before = client.memberships(seg)
            assert before and {e["status"] for e in before.values()} == {"realized"}
            assert all(e["validUntil"] is not None for e in before.values())
            # move 50 Canadians to Mexico and 60 others to Canada
            leaving = sorted(before)[:50]
            joining = [i for (i,) in client.query(
                "SELECT _emulatorProfileId FROM profiles WHERE homeAddress.countryCode <> 'CA' "
                "ORDER BY 1 LIMIT 60")]

            def move(table: pa.Table) -> pa.Table:
                ids = table.column("_emulatorProfileId").combine_chunks()
                address = table.column("homeAddress").combine_chunks()
                code = pc.struct_field(address, "countryCode")
                code = pc.if_else(pc.is_in(ids, pa.array(leaving)), "MX", code)
                code = pc.if_else(pc.is_in(ids, pa.array(joining)), "CA", code)
                fields = [pc.struct_field(address, f.name) if f.name != "countryCode" else code
                          for f in address.type]
                new = pa.StructArray.from_arrays(fields, fields=list(address.type))
                return table.set_column(table.column_names.index("homeAddress"), "homeAddress",
                                        new)

            emulator.profiles.update(tenant, move)
            time.sleep(0.01)
            second = client.run(seg)
            after = client.memberships(seg)
            counts = second["metrics"]["segmentedProfileByStatusCounter"][seg]
            assert counts == {"realized": 60, "existing": len(before) - 50, "exited": 50}
            assert second["metrics"]["segmentedProfileCounter"][seg] == len(before) + 10
            for pid in leaving:
                assert after[pid]["status"] == "exited"
                assert after[pid]["lastQualificationTime"] > before[pid]["lastQualificationTime"]
                assert after[pid]["validUntil"] is None
            for pid in joining:
                assert after[pid]["status"] == "realized"
            stayed = set(before) - set(leaving)
            for pid in stayed:
                assert after[pid]["status"] == "existing"
                assert after[pid]["lastQualificationTime"] == before[pid]["lastQualificationTime"]
            # a third run with no change: exited entries stay exited and keep their time
            third = client.run(seg)
            counts = third["metrics"]["segmentedProfileByStatusCounter"][seg]
            assert counts == {"realized": 0, "existing": len(before) + 10, "exited": 0}
            final = client.memberships(seg)
            assert all(final[p] == after[p] for p in leaving)
    finally:
        emulator.close()


def test_segments_of_segments_in_one_job(ups: UPS) -> None:
    us = ups.define('homeAddress.countryCode = "US"')
    rich = ups.define(f'inSegment("{us}") and _acme.lifetimeValue > 500')
    richer = ups.define(f'inSegment("{rich}") and _acme.loyaltyTier = "platinum"')
    job = ups.run(richer, rich, us)  # listed out of order on purpose
    assert job["status"] == "SUCCEEDED", job
    counter = job["metrics"]["segmentedProfileCounter"]
    ((n_rich, n_richer),) = ups.query(
        "SELECT count(*) FILTER (WHERE homeAddress.countryCode = 'US' AND "
        "_acme.lifetimeValue > 500), count(*) FILTER (WHERE homeAddress.countryCode = 'US' AND "
        "_acme.lifetimeValue > 500 AND _acme.loyaltyTier = 'platinum') FROM profiles")
    assert counter[rich] == n_rich > 0
    assert counter[richer] == n_richer > 0


def test_in_segment_reads_what_an_earlier_job_left(ups: UPS) -> None:
    us = ups.define('homeAddress.countryCode = "US"')
    assert ups.run(us)["status"] == "SUCCEEDED"
    rich = ups.define(f'inSegment("{us}") and _acme.lifetimeValue > 500')
    not_us = ups.define(f'not inSegment("{us}")')
    job = ups.run(rich, not_us)  # ``us`` is not in this job: its saved entries are read
    assert job["status"] == "SUCCEEDED", job
    counter = job["metrics"]["segmentedProfileCounter"]
    ((n_rich, n_not_us),) = ups.query(
        "SELECT count(*) FILTER (WHERE homeAddress.countryCode = 'US' AND "
        "_acme.lifetimeValue > 500), count(*) FILTER (WHERE homeAddress.countryCode IS NULL "
        "OR homeAddress.countryCode <> 'US') FROM profiles")
    assert counter[rich] == n_rich > 0
    assert counter[not_us] == n_not_us > 0
    # the loaded membership stays as loaded: jobs save theirs beside the store
    path = ups.emulator.profiles.profiles_path(ups.tenant)
    ((raw,),) = duckdb.sql(f"SELECT count(*) FROM read_parquet('{path}') "
                           f"WHERE segmentMembership['ups']['{us}'] IS NOT NULL").fetchall()
    assert raw == 0
    ((n_us,),) = ups.query("SELECT count(*) FROM profiles WHERE homeAddress.countryCode = 'US'")
    assert len(ups.memberships(us)) == n_us  # ...and every reader sees them


def test_all_segments_form(server: EmulatorServer) -> None:
    client = UPS(server, sandbox="everything")
    client.emulator.profiles.load_synthetic(client.tenant, profiles=300, seed=8)
    ids = [client.define(f'homeAddress.countryCode = "{c}"') for c in ("US", "GB", "JP")]
    job = client.start({"schema": {"name": "_xdm.context.profile"},
                        "segments": [{"segmentId": "*"}]})
    assert job["status"] == "NEW"
    assert sorted(s["segmentId"] for s in job["segments"]) == sorted(ids)
    done = client.wait(job["id"])
    assert done["status"] == "SUCCEEDED"
    assert sorted(done["metrics"]["segmentedProfileCounter"]) == sorted(ids)


def test_unknown_segment_fails_the_job(ups: UPS) -> None:
    known = ups.define('homeAddress.countryCode = "JP"')
    job = ups.start([{"segmentId": known}, {"segmentId": "no-such-segment"}])
    assert job["status"] == "NEW"
    assert job["segments"][1] == {"segmentId": "no-such-segment"}
    done = ups.wait(job["id"])
    assert done["status"] == "FAILED"
    (error,) = done["errors"]
    assert set(error) == {"code", "msg", "callStack"} and "no-such-segment" in error["msg"]
    assert "totalProfiles" not in done["metrics"]
    assert ups.memberships(known) == {}  # nothing was evaluated


def test_lifecycle_is_visible_with_a_step_delay(tmp_path: Path) -> None:
    emulator = Emulator(tmp_path, job_step_delay=0.3)
    emulator.profiles.load_synthetic(emulator.default_tenant, profiles=200, seed=1)
    try:
        with EmulatorServer(emulator) as srv:
            client = UPS(srv)
            seg = client.define('homeAddress.countryCode = "US"')
            job = client.start([{"segmentId": seg}])
            seen = [job["status"]]
            while seen[-1] not in TERMINAL:
                status = client.http.get(f"{JOBS}/{job['id']}").json()["status"]
                if status != seen[-1]:
                    seen.append(status)
                time.sleep(0.01)
            order = ["NEW", "QUEUED", "PROCESSING", "SUCCEEDED"]
            assert seen[0] == "NEW" and "PROCESSING" in seen and seen[-1] == "SUCCEEDED"
            assert seen == sorted(seen, key=order.index)  # never out of order
            # cancel: DELETE is 204 with an empty body, then CANCELLING → CANCELLED
            job = client.start([{"segmentId": seg}])
            r = client.http.delete(f"{JOBS}/{job['id']}")
            assert r.status_code == 204 and r.content == b""
            assert client.http.get(f"{JOBS}/{job['id']}").json()["status"] == "CANCELLING"
            done = client.wait(job["id"])
            assert done["status"] == "CANCELLED"
            # deleting a finished job changes nothing
            assert client.http.delete(f"{JOBS}/{job['id']}").status_code == 204
            assert client.http.get(f"{JOBS}/{job['id']}").json()["status"] == "CANCELLED"
    finally:
        emulator.close()


def test_seed_request_verbatim(ups: UPS) -> None:
    first = ups.define('homeAddress.country = "United States"')
    second = ups.define('homeAddress.country = "Canada"')
    body = """[
        {
          "segmentId" : "FIRST"
        },
        {
          "segmentId" : "SECOND"
        }
    ]""".replace("FIRST", first).replace("SECOND", second)
    r = ups.http.post(JOBS, content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    job = r.json()
    for key in ("profileInstanceId", "computeJobId", "id", "status", "segments", "updateTime",
                "imsOrgId", "creationTime", "_links"):
        assert key in job, key
    assert job["profileInstanceId"] == "ups" and isinstance(job["computeJobId"], int)
    segment = job["segments"][0]["segment"]
    assert segment["id"] == first and segment["version"] == 1
    assert segment["expression"]["format"] == "pql/text"
    assert set(segment["mergePolicy"]) == {"id", "version"}
    assert job["_links"]["cancel"] == {"href": f"/segment/jobs/{job['id']}", "method": "DELETE"}
    assert job["_links"]["checkStatus"]["method"] == "GET"
    done = ups.wait(job["id"])
    for key in ("errors", "modelName", "requestId", "computeGatewayJobId", "metrics"):
        assert key in done, key
    assert done["errors"] == [] and done["modelName"] == "_xdm.context.profile"
    assert set(done["metrics"]["totalTime"]) == {"startTimeInMs", "endTimeInMs", "totalTimeInMs"}
    assert done["updateEpoch"] == done["updateTime"] // 1000


def test_snapshot_is_echoed(ups: UPS) -> None:
    seg = ups.define('homeAddress.countryCode = "GB"')
    job = ups.start([{"segmentId": seg, "snapshot": {"name": "UK", "ttlInDays": 1}}])
    assert job["segments"][0]["snapshot"] == {"name": "UK", "ttlInDays": 1}
    assert ups.http.get(f"{JOBS}/{job['id']}", headers={"x-request-id": "r-1"}).status_code == 200


@pytest.mark.parametrize(
    ("body", "needle"),
    [([], "non-empty array"), ({}, "non-empty array"), ([{"segmentId": 5}], "segmentId string"),
     ([{"segmentId": ""}], "must not be empty"), (["x"], "segments[0]"),
     ({"segments": [{"segmentId": "*"}], "schema": "x"}, "schema must be an object"),
     ([{"segmentId": "a", "snapshot": 1}], "snapshot must be an object"), ("x", "JSON object")],
)
def test_bad_bodies_are_400(ups: UPS, body: Any, needle: str) -> None:
    r = ups.http.post(JOBS, json=body)
    assert r.status_code == 400, r.text
    assert needle in r.json()["detail"]
    assert ups.http.post(JOBS, content=b"[{", headers={"content-type": "application/json"}
                         ).status_code == 400


def test_list_filters_sorts_and_pages(server: EmulatorServer) -> None:
    client = UPS(server, sandbox="listing")
    client.emulator.profiles.load_synthetic(client.tenant, profiles=100, seed=2)
    seg = client.define('homeAddress.countryCode = "US"')
    ok = [client.run(seg)["id"] for _ in range(3)]
    bad = client.run("missing")["id"]
    listed = client.http.get(JOBS).json()
    assert listed["_page"] == {"totalCount": 4, "pageSize": 4}
    assert [j["id"] for j in listed["children"]] == [bad, *ok[::-1]]
    assert listed["_links"] == {"next": {}}
    page = client.http.get(JOBS, params={"limit": 3}).json()
    assert page["_links"]["next"] == {"href": "/segment/jobs?start=3&limit=3"}
    rest = client.http.get(JOBS, params={"limit": 3, "start": 3}).json()
    assert [j["id"] for j in rest["children"]] == [ok[0]]
    failed = client.http.get(JOBS, params={"status": "FAILED"}).json()
    assert [j["id"] for j in failed["children"]] == [bad]
    oldest = client.http.get(JOBS, params={"sort": "creationTime:asc", "limit": 1}).json()
    assert oldest["children"][0]["id"] == ok[0]
    prop = client.http.get(JOBS, params={"property": f"segments~segmentId=={seg}"}).json()
    assert prop["_page"]["totalCount"] == 3
    assert client.http.get(JOBS, params={"status": "DONE"}).status_code == 400
    assert client.http.get(JOBS, params={"limit": "x"}).status_code == 400
    bulk = client.http.post(f"{JOBS}/bulk-get", json={"ids": [{"id": ok[0]}, {"id": "zz"}]})
    assert bulk.status_code == 207 and list(bulk.json()["results"]) == [ok[0]]


def test_other_tenants_get_404(ups: UPS, server: EmulatorServer) -> None:
    seg = ups.define('homeAddress.countryCode = "BR"')
    job = ups.run(seg)
    for tenant in ({"client": "other-client", "secret": "other-secret", "org": "OTHER@AdobeOrg"},
                   {"sandbox": "dev"}):
        other = UPS(server, **tenant)
        assert other.http.get(f"{JOBS}/{job['id']}").status_code == 404
        assert other.http.delete(f"{JOBS}/{job['id']}").status_code == 404
        # the other tenant cannot run this tenant's definition either
        assert other.run(seg)["status"] == "FAILED"


def test_a_job_left_running_by_a_previous_process_reads_as_failed(ups: UPS) -> None:
    ms = int(time.time() * 1000)
    ups.emulator.store.put("segmentJob", ups.tenant, "orphan", {
        "id": "orphan", "status": "PROCESSING", "segments": [], "creationTime": ms,
        "updateTime": ms, "updateEpoch": ms // 1000})
    job = ups.http.get(f"{JOBS}/orphan").json()
    assert job["status"] == "FAILED" and "restarted" in job["errors"][0]["msg"]


def test_a_job_without_profiles_succeeds_with_zero_counts(server: EmulatorServer) -> None:
    client = UPS(server, sandbox="empty")
    seg = client.define('homeAddress.countryCode = "US"')
    job = client.run(seg)
    assert job["status"] == "SUCCEEDED"
    assert job["metrics"]["totalProfiles"] == 0
    assert job["metrics"]["segmentedProfileCounter"] == {seg: 0}


def test_event_conditions(ups: UPS) -> None:
    seg = ups.define('xEvent[eventType = "commerce.purchases"].count() > 1')
    job = ups.run(seg)
    assert job["status"] == "SUCCEEDED", job
    events = ups.emulator.profiles.events_path(ups.tenant)
    ((expected,),) = ups.query(
        f"SELECT count(*) FROM (SELECT _emulatorProfileId FROM read_parquet('{events}') "
        "WHERE eventType = 'commerce.purchases' GROUP BY 1 HAVING count(*) > 1)")
    assert job["metrics"]["segmentedProfileCounter"][seg] == expected > 0


def test_relative_time_conditions(ups: UPS) -> None:
    seg = ups.define("person.birthDate occurs <= 30 years before now")
    job = ups.run(seg)
    cutoff = (datetime.now(UTC) - timedelta(days=365 * 30 + 8)).date()
    ((low,),) = ups.query(f"SELECT count(*) FROM profiles WHERE person.birthDate > "
                          f"DATE '{cutoff}' + INTERVAL 16 DAY")
    ((high,),) = ups.query(f"SELECT count(*) FROM profiles WHERE person.birthDate >= "
                           f"DATE '{cutoff}'")
    assert low <= job["metrics"]["segmentedProfileCounter"][seg] <= high

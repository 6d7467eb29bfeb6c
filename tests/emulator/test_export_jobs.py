"""``/data/core/ups/export/jobs`` over plain httpx, read back through Data Access (aep_api.md
§4, §5, §6, §7, §10): every filter and option is checked against a direct DuckDB query on the
profile store."""

from __future__ import annotations

import io
import json
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from aep_io.emulator import Emulator, EmulatorServer, Tenant
from aep_io.emulator.credentials import DEFAULT_ORG_ID
from aep_io.emulator.profiles import is_internal
from aep_io.emulator.server import gateway_headers as _headers

EXPORTS = "/data/core/ups/export/jobs"
DEFS = "/data/core/ups/segment/definitions"
JOBS = "/data/core/ups/segment/jobs"
UNION = "https://ns.adobe.com/xdm/context/profile__union"
TERMINAL = {"SUCCEEDED", "FAILED", "CANCELLED"}
PROFILES = 3_000




class Client:
    """httpx against one emulator and tenant, plus DuckDB over that tenant's store."""

    def __init__(self, server: EmulatorServer, **tenant: str) -> None:
        self.url = server.url
        self.emulator = server.emulator
        self.http = httpx.Client(base_url=server.url, headers=_headers(server.url, **tenant),
                                 timeout=60)
        self.tenant = Tenant(tenant.get("org", DEFAULT_ORG_ID), tenant.get("sandbox", "prod"))

    def dataset(self, schema: str = UNION) -> str:
        r = self.http.post("/data/foundation/catalog/dataSets", json={
            "name": f"export {uuid.uuid4().hex[:6]}", "schemaRef": {
                "id": schema, "contentType": "application/vnd.adobe.xed+json;version=1"}})
        assert r.status_code == 201, r.text
        return r.json()[0].rsplit("/", 1)[1]

    def define(self, value: str) -> str:
        r = self.http.post(DEFS, json={
            "name": uuid.uuid4().hex, "schema": {"name": "_xdm.context.profile"},
            "expression": {"type": "PQL", "format": "pql/text", "value": value}})
        assert r.status_code == 200, r.text
        return r.json()["id"]

    def segment(self, *ids: str) -> None:
        job = self.http.post(JOBS, json=[{"segmentId": s} for s in ids]).json()
        assert self.wait(f"{JOBS}/{job['id']}")["status"] == "SUCCEEDED"

    def wait(self, path: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            job = self.http.get(path).json()
            if job["status"] in TERMINAL or time.monotonic() > deadline:
                return job
            time.sleep(0.01)

    def export(self, body: dict[str, Any]) -> dict[str, Any]:
        r = self.http.post(EXPORTS, json=body)
        assert r.status_code == 200, r.text
        job = self.wait(f"{EXPORTS}/{r.json()['id']}")
        assert job["status"] == "SUCCEEDED", job
        return job

    def files(self, batch_id: str) -> list[tuple[str, bytes]]:
        """(name, bytes) of every part of a batch, through Data Access."""
        listing = self.http.get(f"/data/foundation/export/batches/{batch_id}/files").json()
        out = []
        for dsf in listing["data"]:
            inner = self.http.get(f"/data/foundation/export/files/{dsf['dataSetFileId']}").json()
            for f in inner["data"]:
                out.append((f["name"], self.http.get(f["_links"]["self"]["href"]).content))
        return out

    def read(self, batch_id: str) -> pa.Table:
        tables = [pq.read_table(io.BytesIO(data)) for _, data in self.files(batch_id)]
        return pa.concat_tables(tables)

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        """SQL over the store: ``profiles`` (with the membership segment jobs left) and
        ``events``."""
        profiles = self.emulator.profiles
        with duckdb.connect() as con:
            con.register("profiles", profiles.read(self.tenant))
            con.execute("CREATE VIEW events AS SELECT * FROM read_parquet("
                        f"'{profiles.events_path(self.tenant)}')")
            return con.sql(sql).fetchall()

    def ecids(self, where: str) -> set[str]:
        rows = self.query(f"SELECT identityMap['ECID'][1].id FROM profiles WHERE {where}")
        return {r[0] for r in rows}


def _ecids(table: pa.Table) -> list[str]:
    return [dict(m)["ECID"][0]["id"] for m in table.column("identityMap").to_pylist()]


def _body(dataset: str, **extra: Any) -> dict[str, Any]:
    return {"destination": {"datasetId": dataset}, "schema": {"name": "_xdm.context.profile"},
            **extra}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorServer]:
    emulator = Emulator(tmp_path_factory.mktemp("exports"), job_step_delay=0)
    emulator.export_part_rows = 1_000  # type: ignore[attr-defined]
    emulator.export_row_group_rows = 256  # type: ignore[attr-defined]
    emulator.profiles.load_synthetic(emulator.default_tenant, profiles=PROFILES, seed=13)
    emulator.credentials.add("other-client", "other-secret", "OTHER@AdobeOrg")
    with EmulatorServer(emulator) as srv:
        yield srv
    emulator.close()


@pytest.fixture(scope="module")
def ups(server: EmulatorServer) -> Client:
    return Client(server)


@pytest.fixture(scope="module")
def dataset(ups: Client) -> str:
    return ups.dataset()


@pytest.fixture(scope="module")
def segments(ups: Client) -> dict[str, str]:
    ids = {"US": ups.define('homeAddress.countryCode = "US"'),
           "DE": ups.define('homeAddress.countryCode = "DE"')}
    ups.segment(*ids.values())
    return ids


@pytest.fixture(scope="module")
def synthetic_segment(ups: Client) -> str:
    """The synthetic ups segment with the most entries (all statuses occur)."""
    ((seg,),) = ups.query(
        "SELECT e.key FROM profiles, unnest(map_entries(segmentMembership['ups'])) AS t(e) "
        "GROUP BY 1 HAVING count(*) FILTER (WHERE e.value.status = 'exited') > 0 "
        "ORDER BY count(*) DESC LIMIT 1")
    return seg


def test_export_everything(ups: Client, dataset: str) -> None:
    job = ups.export(_body(dataset))
    batch_id = job["destination"]["batchId"]
    files = ups.files(batch_id)
    assert [n.split("-")[1] for n, _ in files] == ["00000", "00001", "00002"]
    assert all(n.endswith("-c000.snappy.parquet") for n, _ in files)
    meta = pq.ParquetFile(io.BytesIO(files[0][1])).metadata
    assert meta.num_rows == 1_000 and meta.num_row_groups == 4
    assert meta.row_group(0).column(0).compression == "SNAPPY"
    table = ups.read(batch_id)
    store = ups.emulator.profiles.read(ups.tenant)
    public = store.select([n for n in store.column_names if not is_internal(n)])
    assert table.column_names == public.column_names
    assert table.cast(public.schema).equals(public)
    batch = ups.http.get(f"/data/foundation/catalog/batches/{batch_id}").json()[batch_id]
    assert batch["status"] == "success" and batch["recordCount"] == PROFILES
    m = job["metrics"]
    assert m["totalExportedProfileCounter"] == PROFILES
    by_ns = dict(ups.query("SELECT k, count(*) FROM profiles, unnest(map_keys(identityMap)) "
                           "AS t(k) GROUP BY k"))
    assert m["exportedProfileByNamespaceCounter"] == by_ns
    for key in ("totalTime", "profileExportTime", "aCPDatasetWriteTime"):
        assert set(m[key]) == {"startTimeInMs", "endTimeInMs", "totalTimeInMs"}
    assert set(job["computeGatewayJobId"]) == {"exportJob", "pushJob"}


def test_segment_filter_default_status(ups: Client, dataset: str,
                                       segments: dict[str, str]) -> None:
    us = segments["US"]
    job = ups.export(_body(dataset, filter={"segments": [{"segmentId": us}]}))
    assert job["filter"]["segments"] == [{"segmentId": us, "segmentNs": "ups",
                                          "status": ["realized", "existing"]}]
    exported = _ecids(ups.read(job["destination"]["batchId"]))
    expected = ups.ecids(f"segmentMembership['ups']['{us}'].status IN ('realized', 'existing')")
    assert len(exported) == len(set(exported)) and set(exported) == expected
    assert expected == ups.ecids("homeAddress.countryCode = 'US'")


def test_status_filter_and_namespace_case(ups: Client, dataset: str,
                                          synthetic_segment: str) -> None:
    seg = synthetic_segment
    for status in (["exited"], ["realized"], ["existing", "exited"]):
        job = ups.export(_body(dataset, filter={"segments": [
            {"segmentId": seg, "segmentNs": "UPS", "status": status}]}))
        exported = set(_ecids(ups.read(job["destination"]["batchId"])))
        wanted = ", ".join(f"'{s}'" for s in status)
        expected = ups.ecids(f"segmentMembership['ups']['{seg}'].status IN ({wanted})")
        assert exported == expected and expected


def test_segment_qualification_time(ups: Client, dataset: str, synthetic_segment: str) -> None:
    seg = synthetic_segment
    ((low, high),) = ups.query(
        f"SELECT quantile_disc(t, 0.25), quantile_disc(t, 0.6) FROM (SELECT "
        f"segmentMembership['ups']['{seg}'].lastQualificationTime AS t FROM profiles) "
        "WHERE t IS NOT NULL")
    start, end = low.isoformat(), high.isoformat().replace("+00:00", "Z")
    window = {"startTime": start, "endTime": end}
    job = ups.export(_body(dataset, filter={"segments": [{"segmentId": seg}],
                                            "segmentQualificationTime": window}))
    exported = set(_ecids(ups.read(job["destination"]["batchId"])))
    entry = f"segmentMembership['ups']['{seg}']"
    expected = ups.ecids(
        f"{entry}.status IN ('realized', 'existing') AND {entry}.lastQualificationTime "
        f"BETWEEN TIMESTAMPTZ '{start}' AND TIMESTAMPTZ '{end}'")
    assert exported == expected and len(expected) > 0
    only_start = ups.export(_body(dataset, filter={"segments": [{"segmentId": seg}],
                                                   "segmentQualificationTime": {"startTime": end}}))
    assert set(_ecids(ups.read(only_start["destination"]["batchId"]))) == ups.ecids(
        f"{entry}.status IN ('realized', 'existing') AND {entry}.lastQualificationTime "
        f">= TIMESTAMPTZ '{end}'")


def test_from_ingest_timestamp(ups: Client, dataset: str) -> None:
    ((median,),) = ups.query("SELECT quantile_disc(_repo.modifyDate, 0.5) FROM profiles")
    stamp = median.isoformat()
    job = ups.export(_body(dataset, filter={"fromIngestTimestamp": stamp}))
    exported = set(_ecids(ups.read(job["destination"]["batchId"])))
    assert exported == ups.ecids(f"_repo.modifyDate > TIMESTAMPTZ '{stamp}'")
    assert 0 < len(exported) < PROFILES


def test_several_segments_are_a_union(ups: Client, dataset: str,
                                      segments: dict[str, str]) -> None:
    job = ups.export(_body(dataset, filter={"segments": [
        {"segmentId": segments["US"]}, {"segmentId": segments["DE"], "status": ["realized"]}]}))
    exported = _ecids(ups.read(job["destination"]["batchId"]))
    assert sorted(exported) == sorted(ups.ecids("homeAddress.countryCode IN ('US', 'DE')"))


def test_fields_projection(ups: Client, dataset: str) -> None:
    fields = "identityMap,personalEmail.address,homeAddress.countryCode,identities.id,_repo"
    job = ups.export(_body(dataset, fields=fields))
    assert job["fields"] == fields
    table = ups.read(job["destination"]["batchId"])
    assert table.column_names == ["identityMap", "personalEmail", "homeAddress"]
    assert table.schema.field("personalEmail").type == pa.struct([("address", pa.string())])
    assert table.schema.field("homeAddress").type == pa.struct([("countryCode", pa.string())])
    ((null_emails, us),) = ups.query("SELECT count(*) FILTER (WHERE personalEmail IS NULL), "
                                     "count(*) FILTER (WHERE homeAddress.countryCode = 'US') "
                                     "FROM profiles")
    assert table.column("personalEmail").null_count == null_emails > 0
    codes = Counter(r["countryCode"] for r in table.column("homeAddress").to_pylist())
    assert codes["US"] == us
    nested = ups.export(_body(dataset, fields="person.name.firstName,segmentMembership.ups"))
    table = ups.read(nested["destination"]["batchId"])
    assert table.column_names == ["person", "segmentMembership"]
    assert table.schema.field("person").type == pa.struct(
        [("name", pa.struct([("firstName", pa.string())]))])
    r = ups.http.post(EXPORTS, json=_body(dataset, fields="nothing.here"))
    assert r.status_code == 400 and "nothing.here" in r.json()["detail"]


def test_event_list(ups: Client, dataset: str, segments: dict[str, str]) -> None:
    ((low, high),) = ups.query("SELECT quantile_disc(_emulatorIngestTime, 0.2), "
                               "quantile_disc(_emulatorIngestTime, 0.7) FROM events")
    window = {"fromIngestTimestamp": low.isoformat(), "toIngestTimestamp": high.isoformat()}
    job = ups.export(_body(dataset, fields="identityMap",
                           filter={"segments": [{"segmentId": segments["DE"]}]},
                           additionalFields={"eventList": {
                               "fields": "eventType,timestamp,commerce.order.priceTotal",
                               "filter": window}}))
    table = ups.read(job["destination"]["batchId"])
    assert table.column_names == ["identityMap", "timeSeriesEvents"]
    element = table.schema.field("timeSeriesEvents").type.value_type
    assert [f.name for f in element] == ["timestamp", "eventType", "commerce"]
    assert element.field("commerce").type == pa.struct(
        [("order", pa.struct([("priceTotal", pa.float64())]))])
    got = {e: len(v) for e, v in zip(_ecids(table), table.column("timeSeriesEvents").to_pylist(),
                                     strict=True)}
    rows = ups.query(f"""
        SELECT p.identityMap['ECID'][1].id, count(e._id) FILTER (WHERE
          e._emulatorIngestTime > TIMESTAMPTZ '{low.isoformat()}' AND
          e._emulatorIngestTime <= TIMESTAMPTZ '{high.isoformat()}')
        FROM profiles p LEFT JOIN events e USING (_emulatorProfileId)
        WHERE p.homeAddress.countryCode = 'DE' GROUP BY 1""")
    assert got == dict(rows)
    assert any(got.values()) and not all(got.values())
    first = next(v for v in table.column("timeSeriesEvents").to_pylist() if len(v) > 1)
    assert [e["timestamp"] for e in first] == sorted(e["timestamp"] for e in first)


def test_segment_per_batch(ups: Client, dataset: str, segments: dict[str, str]) -> None:
    wanted = [{"segmentId": segments["US"], "segmentNs": "ups", "status": ["realized"]},
              {"segmentId": segments["DE"]}]
    r = ups.http.post(EXPORTS, json=_body(dataset, filter={"segments": wanted},
                                          destination={"datasetId": dataset,
                                                       "segmentPerBatch": True}))
    assert r.status_code == 200, r.text
    new = r.json()
    dest = new["destination"]
    assert dest["segmentPerBatch"] is True and "batchId" not in dest
    assert [(b["segmentId"], b["segmentNs"], b["status"]) for b in dest["batches"]] == [
        (segments["US"], "ups", ["realized"]), (segments["DE"], "ups", ["realized", "existing"])]
    job = ups.wait(f"{EXPORTS}/{new['id']}")
    assert job["destination"] == dest
    for b, code in zip(dest["batches"], ("US", "DE"), strict=True):
        exported = _ecids(ups.read(b["batchId"]))
        assert sorted(exported) == sorted(ups.ecids(f"homeAddress.countryCode = '{code}'"))
    assert job["metrics"]["totalExportedProfileCounter"] == len(
        ups.ecids("homeAddress.countryCode IN ('US', 'DE')"))


def test_evaluation_before_export(ups: Client, dataset: str) -> None:
    seg = ups.define('homeAddress.countryCode = "JP"')
    job = ups.export(_body(dataset, filter={"segments": [{"segmentId": seg}]},
                           evaluationInfo={"segmentation": True}))
    assert sorted(_ecids(ups.read(job["destination"]["batchId"]))) == sorted(
        ups.ecids("homeAddress.countryCode = 'JP'"))
    assert job["evaluationInfo"] == {"segmentation": True}


def test_empty_profiles(server: EmulatorServer, tmp_path: Path) -> None:
    client = Client(server, sandbox="sparse")
    rows = [{"identityMap": {"ECID": [{"id": f"e{i}"}]},
             **({"homeAddress": {"countryCode": "US"}} if i % 3 else {})} for i in range(30)]
    source = tmp_path / "p.json"
    source.write_text(json.dumps(rows))
    client.emulator.profiles.load_files(client.tenant, [source])
    ds = client.dataset()
    default = client.export(_body(ds))
    assert sorted(_ecids(client.read(default["destination"]["batchId"]))) == sorted(
        f"e{i}" for i in range(30) if i % 3)
    everyone = client.export(_body(ds, filter={"emptyProfiles": True}))
    assert len(client.read(everyone["destination"]["batchId"])) == 30


def test_seed_request_verbatim(ups: Client, dataset: str, segments: dict[str, str],
                               synthetic_segment: str) -> None:
    body = """{
    "fields": "identities.id,personalEmail.address",
    "mergePolicy": {
      "id": "e5bc94de-cd14-4cdf-a2bc-88b6e8cbfac2",
      "version": 1
    },
    "filter": {
      "segments": [
        {
          "segmentId": "AAMSEG",
          "segmentNs": "AAM",
          "status": ["realized"]
        },
        {
          "segmentId": "UPSSEG",
          "segmentNs": "UPS",
          "status": ["exited"]
        }
      ],
      "segmentQualificationTime": {
            "startTime": "2019-09-01T00:00:00Z",
            "endTime": "2019-09-02T00:00:00Z"
        },
      "fromIngestTimestamp": "2018-10-25T13:22:04-07:00"
    },
    "additionalFields" : {
      "eventList": {
        "fields": "environment.browserDetails.name,environment.browserDetails.version",
        "filter": {
          "fromIngestTimestamp": "2018-10-25T13:22:04-07:00"
        }
      }
    },
    "destination": {
      "datasetId": "DATASET",
      "segmentPerBatch": true
    },
    "schema": {
      "name": "_xdm.context.profile"
    }
  }"""
    ((aam,),) = ups.query("SELECT k FROM profiles, unnest(map_keys(segmentMembership['aam'])) "
                          "AS t(k) GROUP BY k ORDER BY count(*) DESC LIMIT 1")
    body = (body.replace("AAMSEG", aam).replace("UPSSEG", synthetic_segment)
            .replace("DATASET", dataset))
    r = ups.http.post(EXPORTS, content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    job = r.json()
    for key in ("profileInstanceId", "jobType", "filter", "id", "schema", "mergePolicy",
                "status", "requestId", "computeGatewayJobId", "metrics", "destination",
                "updateTime", "imsOrgId", "creationTime"):
        assert key in job, key
    assert isinstance(job["id"], int) and job["status"] == "NEW" and job["jobType"] == "BATCH"
    assert job["mergePolicy"] == {"id": "e5bc94de-cd14-4cdf-a2bc-88b6e8cbfac2", "version": 1}
    assert job["filter"]["segments"][0] == {"segmentId": aam, "segmentNs": "AAM",
                                            "status": ["realized"]}
    assert "startTimeInMs" in job["metrics"]["totalTime"]
    batches = job["destination"]["batches"]
    assert [(b["segmentNs"], b["status"]) for b in batches] == [("AAM", ["realized"]),
                                                               ("UPS", ["exited"])]
    done = ups.wait(f"{EXPORTS}/{job['id']}")
    assert done["status"] == "SUCCEEDED", done
    # a 2019 qualification window matches none of the synthetic (recent) memberships
    assert done["metrics"]["totalExportedProfileCounter"] == 0
    empty = ups.read(batches[0]["batchId"])
    assert empty.num_rows == 0
    assert empty.column_names == ["personalEmail", "timeSeriesEvents"]
    # without the window the same filters export the AAM segment's realized members
    loose = json.loads(body)
    del loose["filter"]["segmentQualificationTime"]
    done = ups.export(loose)
    table = ups.read(done["destination"]["batches"][0]["batchId"])
    assert sorted(_ecids_from_store_rows(ups, table, aam)) == sorted(
        ups.ecids(f"segmentMembership['aam']['{aam}'].status = 'realized'"))
    element = table.schema.field("timeSeriesEvents").type.value_type
    assert element == pa.struct([("environment", pa.struct([("browserDetails", pa.struct(
        [("name", pa.string()), ("version", pa.string())]))]))])


def _ecids_from_store_rows(ups: Client, table: pa.Table, aam: str) -> list[str]:
    """The export above carries only personalEmail: map rows back by e-mail address."""
    emails = [r["address"] if r else None for r in table.column("personalEmail").to_pylist()]
    rows = ups.query(f"SELECT personalEmail.address, identityMap['ECID'][1].id FROM profiles "
                     f"WHERE segmentMembership['aam']['{aam}'].status = 'realized'")
    by_email: dict[Any, list[str]] = {}
    for email, ecid in rows:
        by_email.setdefault(email, []).append(ecid)
    out = []
    for email in emails:
        out.append(by_email[email].pop())
    return out


@pytest.mark.parametrize(
    ("change", "status", "needle"),
    [({"destination": None}, 400, "destination is required"),
     ({"schema": None}, 400, "schema is required"),
     ({"schema": {}}, 400, "schema.name is required"),
     ({"destination": {}}, 400, "destination.datasetId is required"),
     ({"destination": {"datasetId": "000000000000000000000000"}}, 422, "not a dataset"),
     ({"fields": 5}, 400, "fields must be a string"),
     ({"filter": {"segments": [{"segmentNs": "ups"}]}}, 400, "segmentId is required"),
     ({"filter": {"segments": [{"segmentId": "s", "status": ["entering"]}]}}, 400, "status"),
     ({"filter": {"segments": {"segmentId": "s"}}}, 400, "filter.segments must be an array"),
     ({"filter": {"fromIngestTimestamp": "yesterday"}}, 400, "RFC 3339"),
     ({"filter": {"segmentQualificationTime": {"startTime": 5}}}, 400, "RFC 3339"),
     ({"filter": {"emptyProfiles": "no"}}, 400, "emptyProfiles must be a boolean"),
     ({"additionalFields": {"eventList": {"filter": {"toIngestTimestamp": "x"}}}}, 400,
      "toIngestTimestamp"),
     ({"evaluationInfo": {"segmentation": "yes"}}, 400, "segmentation must be a boolean"),
     ({"mergePolicy": {"id": 1}}, 400, "mergePolicy.id"),
     ({"destination": "DS+spb"}, 400, "segmentPerBatch needs filter.segments")],
)
def test_bad_requests(ups: Client, dataset: str, change: dict[str, Any], status: int,
                      needle: str) -> None:
    body = _body(dataset)
    for key, value in change.items():
        if value == "DS+spb":
            value = {"datasetId": dataset, "segmentPerBatch": True}
        if value is None:
            del body[key]
        else:
            body[key] = value
    r = ups.http.post(EXPORTS, json=body)
    assert r.status_code == status, r.text
    assert needle in r.json()["detail"]


def test_datasets_must_be_profile_union_and_the_tenants_own(ups: Client,
                                                            server: EmulatorServer) -> None:
    other_schema = ups.dataset("https://ns.adobe.com/acme/schemas/events")
    r = ups.http.post(EXPORTS, json=_body(other_schema))
    assert r.status_code == 422 and "profile__union" in r.json()["detail"]
    dev_dataset = Client(server, sandbox="dev").dataset()
    r = ups.http.post(EXPORTS, json=_body(dev_dataset))
    assert r.status_code == 422 and dev_dataset in r.json()["detail"]
    assert ups.http.post(EXPORTS, content=b"{", headers={"content-type": "application/json"}
                         ).status_code == 400
    assert ups.http.post(EXPORTS, json=[1]).status_code == 400


def test_list_pages_by_cursor(server: EmulatorServer) -> None:
    client = Client(server, sandbox="listing")
    client.emulator.profiles.load_synthetic(client.tenant, profiles=50, seed=1)
    ds = client.dataset()
    ids = [client.export(_body(ds))["id"] for _ in range(3)]
    r = client.http.post(EXPORTS, json=_body(ds, fields="homeAddress"))
    ids.append(client.wait(f"{EXPORTS}/{r.json()['id']}")["id"])
    everything = client.http.get(EXPORTS).json()
    assert [j["id"] for j in everything["records"]] == ids[::-1]
    assert everything["link"] == {"next": ""}
    page = client.http.get(EXPORTS + "/", params={"limit": 3}).json()
    last = page["records"][-1]
    assert page["page"] == {"sortField": "createdTime", "sort": "desc",
                            "pageOffset": f"{last['creationTime']}_{last['id']}", "pageSize": 3}
    assert page["link"]["next"] == f"/export/jobs/?limit=3&offset={page['page']['pageOffset']}"
    offset = page["link"]["next"].split("offset=")[1]
    rest = client.http.get(EXPORTS, params={"limit": 3, "offset": offset}).json()
    assert [j["id"] for j in rest["records"]] == [ids[0]] and rest["link"]["next"] == ""
    skipped = client.http.get(EXPORTS, params={"offset": "2"}).json()
    assert [j["id"] for j in skipped["records"]] == ids[1::-1]
    assert client.http.get(EXPORTS, params={"status": "FAILED"}).json()["records"] == []
    assert len(client.http.get(EXPORTS, params={"status": "SUCCEEDED"}).json()["records"]) == 4
    assert client.http.get(EXPORTS, params={"status": "SUCEEDED"}).status_code == 400
    assert client.http.get(EXPORTS, params={"offset": "abc_def"}).status_code == 400


def test_new_job_carries_loading_batches_and_cancels(tmp_path: Path) -> None:
    emulator = Emulator(tmp_path, job_step_delay=0.3)
    emulator.profiles.load_synthetic(emulator.default_tenant, profiles=100, seed=1)
    try:
        with EmulatorServer(emulator) as srv:
            client = Client(srv)
            ds = client.dataset()
            job = client.http.post(EXPORTS, json=_body(ds)).json()
            batch_id = job["destination"]["batchId"]
            batch = client.http.get(f"/data/foundation/catalog/batches/{batch_id}").json()
            assert batch[batch_id]["status"] == "loading"
            assert client.wait(f"{EXPORTS}/{job['id']}")["status"] == "SUCCEEDED"
            batch = client.http.get(f"/data/foundation/catalog/batches/{batch_id}").json()
            assert batch[batch_id]["status"] == "success"
            # cancel
            job = client.http.post(EXPORTS, json=_body(ds)).json()
            r = client.http.delete(f"{EXPORTS}/{job['id']}")
            assert r.status_code == 200
            assert r.json() == {"status": True,
                                "message": "Export job has been marked for cancelling"}
            done = client.wait(f"{EXPORTS}/{job['id']}")
            assert done["status"] == "CANCELLED" and done["errors"]
            batch_id = job["destination"]["batchId"]
            batch = client.http.get(f"/data/foundation/catalog/batches/{batch_id}").json()
            assert batch[batch_id]["status"] == "failed"
            assert batch[batch_id]["errors"][0]["description"]
    finally:
        emulator.close()


def test_other_tenants_get_404(ups: Client, dataset: str, server: EmulatorServer) -> None:
    job = ups.export(_body(dataset, fields="identityMap"))
    for tenant in ({"client": "other-client", "secret": "other-secret", "org": "OTHER@AdobeOrg"},
                   {"sandbox": "dev"}):
        other = Client(server, **tenant)
        assert other.http.get(f"{EXPORTS}/{job['id']}").status_code == 404
        assert other.http.delete(f"{EXPORTS}/{job['id']}").status_code == 404
        assert job["id"] not in [j["id"] for j in other.http.get(EXPORTS).json()["records"]]


def test_a_job_left_running_by_a_previous_process_reads_as_failed(ups: Client,
                                                                 dataset: str) -> None:
    batch = ups.emulator.store.create_batch(ups.tenant, dataset)
    ms = int(time.time() * 1000)
    ups.emulator.store.put("exportJob", ups.tenant, "999999", {
        "id": 999999, "status": "PROCESSING", "creationTime": ms, "updateTime": ms,
        "destination": {"datasetId": dataset, "segmentPerBatch": False,
                        "batchId": batch["id"]}})
    job = ups.http.get(f"{EXPORTS}/999999").json()
    assert job["status"] == "FAILED" and "restarted" in job["errors"][0]["msg"]
    record = ups.http.get(f"/data/foundation/catalog/batches/{batch['id']}").json()
    assert record[batch["id"]]["status"] == "failed"

"""The emulator's profile store (aep_io.emulator.profiles) and ``aep-io emulator load``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from aep_io.cli import main
from aep_io.emulator import Emulator, Tenant
from aep_io.emulator.membership_state import merge_membership
from aep_io.emulator.profiles import (
    EVENTS_SCHEMA,
    MEMBERSHIP_TYPE,
    ProfileLoadError,
    ProfileStore,
    is_internal,
)
from aep_io.emulator.synthetic import SyntheticSpec, generate_table

TENANT = Tenant("ORG1@AdobeOrg", "prod")
NOW = datetime(2026, 6, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> ProfileStore:
    store = ProfileStore(tmp_path_factory.mktemp("profiles"))
    assert store.load_synthetic(TENANT, profiles=3_000, seed=5, now=NOW) == 3_000
    return store


def test_synthetic_store_layout_and_internal_columns(loaded: ProfileStore) -> None:
    path = loaded.profiles_path(TENANT)
    assert path.parent.name == "prod" and path.parent.parent.parent == loaded.root
    assert len(path.parent.parent.name) == 16  # a hash of the org, not the org itself
    schema = loaded.schema(TENANT)
    assert schema is not None
    assert schema.names[:6] == ["identityMap", "person", "personalEmail", "homeAddress", "_acme",
                                "segmentMembership"]
    assert schema.field("_emulatorProfileId").type == pa.int64()
    repo = schema.field("_repo").type
    assert [f.name for f in repo] == ["createDate", "modifyDate"]
    assert all(f.type == pa.timestamp("us", tz="UTC") for f in repo)
    table = loaded.read(TENANT, ["_emulatorProfileId", "_repo"])
    assert table.column(0).to_pylist() == list(range(3_000))
    created = pc.struct_field(table.column(1), "createDate")
    modified = pc.struct_field(table.column(1), "modifyDate")
    assert pc.all(pc.less_equal(created, modified)).as_py()
    assert pc.max(modified).as_py() <= NOW
    assert [n for n in schema.names if is_internal(n)] == ["_emulatorProfileId", "_repo"]
    assert pq.ParquetFile(path).metadata.row_group(0).column(0).compression == "SNAPPY"


def test_synthetic_rows_match_the_generator(loaded: ProfileStore) -> None:
    table = loaded.read(TENANT)
    expected = generate_table(SyntheticSpec(profiles=3_000, seed=5, now=NOW))
    assert table.select(expected.column_names).equals(expected)


def test_synthetic_events(loaded: ProfileStore) -> None:
    events = loaded.read_events(TENANT)
    assert events.schema.equals(EVENTS_SCHEMA)
    per_profile = np.bincount(events.column("_emulatorProfileId").to_numpy(), minlength=3_000)
    assert 2.5 < per_profile.mean() < 3.5 and per_profile.max() <= 12
    assert pc.count_distinct(events.column("_id")).as_py() == events.num_rows
    assert set(events.column("eventType").unique().to_pylist()) >= {"commerce.purchases",
                                                                    "web.webpagedetails.pageViews"}
    purchases = pc.equal(events.column("eventType"), "commerce.purchases")
    priced = pc.is_valid(events.column("commerce"))
    assert pc.all(pc.equal(purchases, priced)).as_py()
    ingest = events.column("_emulatorIngestTime")
    assert pc.all(pc.greater_equal(ingest, events.column("timestamp"))).as_py()
    assert pc.max(ingest).as_py() <= NOW


def test_load_is_deterministic(tmp_path: Path) -> None:
    a, b = ProfileStore(tmp_path / "a"), ProfileStore(tmp_path / "b")
    for store in (a, b):
        store.load_synthetic(TENANT, profiles=500, seed=9, now=NOW)
    assert a.read(TENANT).equals(b.read(TENANT))
    assert a.read_events(TENANT).equals(b.read_events(TENANT))


def test_load_parquet_files_adds_internal_columns(tmp_path: Path) -> None:
    table = generate_table(SyntheticSpec(profiles=200, seed=2)).drop_columns(["segmentMembership"])
    pq.write_table(table.slice(0, 120), tmp_path / "a.parquet")
    pq.write_table(table.slice(120), tmp_path / "b.parquet")
    store = ProfileStore(tmp_path / "store")
    assert store.load_files(TENANT, [tmp_path / "a.parquet", tmp_path / "b.parquet"]) == 200
    loaded = store.read(TENANT)
    assert loaded.column("_emulatorProfileId").to_pylist() == list(range(200))
    assert loaded.schema.field("segmentMembership").type == MEMBERSHIP_TYPE
    assert loaded.column("segmentMembership").null_count == 200
    assert loaded.select(table.column_names).equals(table)
    assert store.read_events(TENANT).num_rows == 0


def test_load_json_lines_and_arrays(tmp_path: Path) -> None:
    rows = [
        {"identityMap": {"email": [{"id": "ann@example.com", "primary": True,
                                    "authenticatedState": "authenticated"}]},
         "homeAddress": {"countryCode": "US"},
         "segmentMembership": {"ups": {"s1": {"version": "1", "status": "realized",
                                              "lastQualificationTime": "2024-05-01T03:04:05Z"}}},
         "_repo": {"createDate": "2024-01-01T00:00:00Z", "modifyDate": "2024-02-01T00:00:00Z"}},
        {"identityMap": {"ECID": [{"id": "4711"}]}, "homeAddress": {"countryCode": "CA"}},
    ]
    (tmp_path / "p.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    (tmp_path / "q.json").write_text(json.dumps([{"identityMap": {"ECID": [{"id": "42"}]}}]))
    store = ProfileStore(tmp_path / "store")
    assert store.load_files(TENANT, [tmp_path / "p.jsonl", tmp_path / "q.json"]) == 3
    table = store.read(TENANT)
    first = table.slice(0, 1).to_pylist()[0]
    entry = dict(dict(first["segmentMembership"])["ups"])["s1"]
    assert entry["lastQualificationTime"] == datetime(2024, 5, 1, 3, 4, 5, tzinfo=UTC)
    assert first["_repo"]["modifyDate"] == datetime(2024, 2, 1, tzinfo=UTC)
    assert dict(first["identityMap"])["email"][0]["id"] == "ann@example.com"
    assert table.column("homeAddress").to_pylist()[2] is None


@pytest.mark.parametrize(
    ("content", "needle"),
    [('{"person": {"name": "x"}}', "identityMap"),
     ('{"identityMap": "not a map"}', "identityMap"),
     ("{oops", "invalid JSON"),
     ("[1, 2]", "JSON objects")],
)
def test_load_files_rejects_bad_input(tmp_path: Path, content: str, needle: str) -> None:
    (tmp_path / "bad.json").write_text(content)
    with pytest.raises(ProfileLoadError, match=needle):
        ProfileStore(tmp_path / "s").load_files(TENANT, [tmp_path / "bad.json"])


def test_load_files_events_must_name_known_profiles(tmp_path: Path) -> None:
    (tmp_path / "p.json").write_text(json.dumps([{"identityMap": {"ECID": [{"id": "1"}]}}]))
    (tmp_path / "e.json").write_text(json.dumps([{"_emulatorProfileId": 7, "eventType": "x"}]))
    with pytest.raises(ProfileLoadError, match="no profile has"):
        ProfileStore(tmp_path / "s").load_files(TENANT, [tmp_path / "p.json"],
                                                events=[tmp_path / "e.json"])


def test_update_rewrites_atomically(tmp_path: Path) -> None:
    store = ProfileStore(tmp_path)
    store.load_synthetic(TENANT, profiles=300, seed=1, now=NOW)
    before = store.read(TENANT)

    def rename_all(table: pa.Table) -> pa.Table:
        person = table.column("person").combine_chunks()
        name = pc.struct_field(person, "name")
        renamed = pa.StructArray.from_arrays(
            [pa.array(["Zed"] * len(person)), pc.struct_field(name, "lastName")],
            fields=list(name.type))
        new_person = pa.StructArray.from_arrays(
            [renamed, pc.struct_field(person, "birthDate"), pc.struct_field(person, "gender")],
            fields=list(person.type))
        return table.set_column(table.column_names.index("person"), "person", new_person)

    store.update(TENANT, rename_all)
    after = store.read(TENANT)
    assert after.column("_emulatorProfileId").equals(before.column("_emulatorProfileId"))
    assert set(pc.struct_field(pc.struct_field(after.column("person"), "name"),
                               "firstName").to_pylist()) == {"Zed"}
    assert sorted(p.name for p in store.directory(TENANT).iterdir()) == ["events.parquet",
                                                                          "profiles.parquet"]


def _membership(rows: list[dict | None]) -> pa.Array:
    return pa.array(rows, MEMBERSHIP_TYPE)


def _entry(status: str, when: datetime, version: str = "1") -> dict:
    return {"version": version, "lastQualificationTime": when, "validUntil": None,
            "status": status}


def test_merge_membership_statuses() -> None:
    old = datetime(2025, 1, 1, tzinfo=UTC)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [
        None,                                                       # nothing, qualifies
        {"ups": {"s1": _entry("realized", old), "x": _entry("existing", old)},
         "aam": {"9": _entry("realized", old)}},                    # s1 in → out, s2 new
        {"aam": {"8": _entry("realized", old)}, "UPS": {"s2": _entry("exited", old)}},
        {},                                                         # stays out
        None,                                                       # stays out
    ]
    padded = pa.concat_arrays([_membership([None]), _membership(rows)]).slice(1)  # a slice
    qualifies = np.array([[True, False], [False, True], [False, False], [True, True],
                          [False, False]])
    now_us = int(now.timestamp() * 1e6)
    new, codes = merge_membership(padded, qualifies, ["s1", "s2"], ["3", "3"],
                                  [None, now_us + 10], now_us)
    new.validate(full=True)
    assert codes.tolist() == [[1, 0], [3, 1], [0, 4], [1, 1], [0, 0]]
    out = [None if r is None else {ns: dict(m) for ns, m in r} for r in new.to_pylist()]
    assert out[0] == {"ups": {"s1": _entry("realized", now, "3")}}
    assert list(out[1]) == ["ups", "aam"]
    assert out[1]["ups"]["x"] == _entry("existing", old)
    assert out[1]["ups"]["s1"] == _entry("exited", now, "3")
    assert out[1]["ups"]["s2"]["status"] == "realized"
    assert out[1]["ups"]["s2"]["validUntil"] is not None
    assert out[1]["aam"] == {"9": _entry("realized", old)}
    assert out[2] == {"ups": {"s2": _entry("exited", old)}, "aam": {"8": _entry("realized", old)}}
    assert out[3] == {"ups": {"s1": _entry("realized", now, "3"),
                              "s2": {**_entry("realized", now, "3"),
                                     "validUntil": out[3]["ups"]["s2"]["validUntil"]}}}
    assert out[4] is None
    # a second evaluation: realized stays in → existing, with its first qualification time kept
    again, codes = merge_membership(new, np.array([[True, False]] * 5), ["s1", "s2"],
                                    ["3", "3"], [None, None], now_us + 5)
    assert codes[:, 0].tolist() == [2, 1, 1, 2, 1]
    first = {ns: dict(m) for ns, m in again.to_pylist()[0]}
    assert first["ups"]["s1"] == _entry("existing", now, "3")


def test_duckdb_reads_the_store(loaded: ProfileStore) -> None:
    path = loaded.profiles_path(TENANT)
    ((count,),) = duckdb.sql(
        f"SELECT count(*) FROM read_parquet('{path}') "
        "WHERE segmentMembership['ups'] IS NOT NULL"
    ).fetchall()
    assert 0 < count < 3_000


def test_cli_load(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["emulator", "load", "--data", str(tmp_path), "--profiles", "250"]) == 0
    assert "250 profiles" in capsys.readouterr().out
    emulator = Emulator(tmp_path)
    try:
        assert emulator.profiles.count(emulator.default_tenant) == 250
        source = tmp_path / "p.json"
        source.write_text(json.dumps([{"identityMap": {"ECID": [{"id": "1"}]}}]))
        assert main(["emulator", "load", "--data", str(tmp_path), str(source)]) == 0
        assert emulator.profiles.count(emulator.default_tenant) == 1
    finally:
        emulator.close()
    assert main(["emulator", "load", "--data", str(tmp_path)]) == 2

"""Tests for aep_io.membership: polars, pyarrow and DuckDB forms on hand-made exports."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from polars.testing import assert_frame_equal

from aep_io.membership import (
    audience_sizes,
    create_flatten_view,
    flatten_membership,
    flatten_membership_arrow,
    flatten_sql,
    members_now,
    membership_matrix,
)

# --------------------------------------------------------------------------------------
# hand-made export
# --------------------------------------------------------------------------------------

T1 = datetime(2024, 5, 1, 3, 4, 5, tzinfo=UTC)
T2 = datetime(2024, 5, 2, 0, 0, 0, 500000, tzinfo=UTC)
V2 = datetime(2024, 6, 2, 0, 0, tzinfo=UTC)
T3 = datetime(2024, 1, 31, 23, 59, 59, tzinfo=UTC)
T4 = datetime(2023, 12, 1, 10, 0, tzinfo=UTC)
T5 = datetime(2024, 2, 29, 12, 0, 0, 123456, tzinfo=UTC)
T6 = datetime(2024, 3, 1, 1, 2, 3, tzinfo=UTC)
V6 = datetime(2025, 3, 1, 1, 2, 3, tzinfo=UTC)

# the same instants as RFC 3339 strings, in assorted spellings
STR = {
    T1: "2024-05-01T03:04:05Z",
    T2: "2024-05-02T02:00:00.5+02:00",
    V2: "2024-06-02t00:00:00z",
    T3: "2024-01-31 23:59:59Z",
    T4: "2023-12-01T05:30:00-04:30",
    T5: "2024-02-29T12:00:00.123456789Z",
    T6: "2024-03-01T01:02:03.000Z",
    V6: "2025-03-01T01:02:03+00:00",
}


def m(
    status: str | None,
    version: str | None,
    lqt: datetime | None,
    vu: datetime | None,
    score: float | None = None,
    policy: str | None = None,
) -> dict[str, Any]:
    return {
        "version": version,
        "lastQualificationTime": lqt,
        "validUntil": vu,
        "status": status,
        "payload": None if score is None else {"score": score},
        "mergePolicyId": policy,
    }


def item(id_: str, primary: bool | None, state: str = "ambiguous") -> dict[str, Any]:
    return {"id": id_, "authenticatedState": state, "primary": primary}


# one dict per profile; maps are lists of (key, value) pairs
PROFILES: list[dict[str, Any]] = [
    {  # p0: primary email; two namespaces
        "crmId": "crm0",
        "personalEmail": {"address": "zero@example.com"},
        "identityMap": [("ECID", [item("e0", False)]), ("Email", [item("a@x", True)])],
        "segmentMembership": [
            (
                "ups",
                [
                    ("s1", m("realized", "1", T1, None, 0.9, "mp1")),
                    ("s2", m("exited", "2", T2, V2)),
                ],
            ),
            ("aam", [("a1", m("existing", "1", T3, None))]),
        ],
    },
    {  # p1: upper-case namespace, legacy 'entering'
        "crmId": "crm1",
        "personalEmail": None,
        "identityMap": [("ECID", [item("e1", True)])],
        "segmentMembership": [("UPS", [("s1", m("entering", "1", T4, None))])],
    },
    {  # p2: null membership, no primary identity -> first identity
        "crmId": "crm2",
        "personalEmail": {"address": "two@example.com"},
        "identityMap": [("ECID", [item("e2", False)]), ("crmId", [item("c2", False)])],
        "segmentMembership": None,
    },
    {  # p3: empty membership, null identityMap
        "crmId": None,
        "personalEmail": {"address": None},
        "identityMap": None,
        "segmentMembership": [],
    },
    {  # p4: empty ups namespace; empty identity list and a null item before the first item
        "crmId": "crm4",
        "personalEmail": None,
        "identityMap": [("ECID", []), ("crmId", [None, item("c4", None)])],
        "segmentMembership": [("ups", []), ("aam", [("a1", m("realized", "1", T5, None))])],
    },
    {  # p5: two primaries (the first wins); a segment whose membership struct is null
        "crmId": "crm5",
        "personalEmail": {"address": "five@example.com"},
        "identityMap": [
            ("ECID", [item("e5a", False), item("e5b", True)]),
            ("Email", [item("m5", True)]),
        ],
        "segmentMembership": [("ups", [("s2", m("existing", "3", T6, V6, 0.1)), ("s3", None)])],
    },
]

ID_ITEM = pa.struct(
    [("id", pa.string()), ("authenticatedState", pa.string()), ("primary", pa.bool_())]
)


def membership_type(ts: pa.DataType) -> pa.StructType:
    return pa.struct(
        [
            ("version", pa.string()),
            ("lastQualificationTime", ts),
            ("validUntil", ts),
            ("status", pa.string()),
            ("payload", pa.struct([("score", pa.float64())])),
            ("mergePolicyId", pa.string()),
        ]
    )


def _as_list_form(value: Any, depth: int) -> Any:
    """(key, value) pairs -> [{'key', 'value'}] for `depth` nested map levels."""
    if value is None or depth == 0:
        return value
    return [{"key": k, "value": _as_list_form(v, depth - 1)} for k, v in value]


def _strings(value: Any) -> Any:
    if value is None:
        return None
    return [
        (
            ns,
            [
                (
                    s,
                    None
                    if mm is None
                    else {
                        **mm,
                        "lastQualificationTime": STR.get(mm["lastQualificationTime"]),
                        "validUntil": STR.get(mm["validUntil"]),
                    },
                )
                for s, mm in segs
            ],
        )
        for ns, segs in value
    ]


def hand_table(*, string_ts: bool = False, list_form: bool = False) -> pa.Table:
    mem_t = membership_type(pa.string() if string_ts else pa.timestamp("us", tz="UTC"))
    seg_rows = [p["segmentMembership"] for p in PROFILES]
    if string_ts:
        seg_rows = [_strings(v) for v in seg_rows]
    id_rows = [p["identityMap"] for p in PROFILES]
    if list_form:

        def kv(k: pa.DataType, v: pa.DataType) -> pa.DataType:
            return pa.list_(pa.struct([("key", k), ("value", v)]))

        seg_t = kv(pa.string(), kv(pa.string(), mem_t))
        id_t = kv(pa.string(), pa.list_(ID_ITEM))
        seg_rows = [_as_list_form(v, 2) for v in seg_rows]
        id_rows = [_as_list_form(v, 1) for v in id_rows]
    else:
        seg_t = pa.map_(pa.string(), pa.map_(pa.string(), mem_t))
        id_t = pa.map_(pa.string(), pa.list_(ID_ITEM))
    return pa.table(
        {
            "crmId": pa.array([p["crmId"] for p in PROFILES], pa.string()),
            "personalEmail": pa.array(
                [p["personalEmail"] for p in PROFILES], pa.struct([("address", pa.string())])
            ),
            "identityMap": pa.array(id_rows, id_t),
            "segmentMembership": pa.array(seg_rows, seg_t),
        }
    )


def row(
    ins: str | None,
    iid: str | None,
    ns: str | None = None,
    seg: str | None = None,
    status: str | None = None,
    version: str | None = None,
    lqt: datetime | None = None,
    vu: datetime | None = None,
    score: float | None = None,
    policy: str | None = None,
) -> dict[str, Any]:
    return {
        "identity_namespace": ins,
        "identity_id": iid,
        "namespace": ns,
        "segment_id": seg,
        "status": status,
        "version": version,
        "last_qualification_time": lqt,
        "valid_until": vu,
        "payload": None if score is None else {"score": score},
        "merge_policy_id": policy,
    }


R0 = [
    row("Email", "a@x", "ups", "s1", "realized", "1", T1, None, 0.9, "mp1"),
    row("Email", "a@x", "ups", "s2", "exited", "2", T2, V2),
    row("Email", "a@x", "aam", "a1", "existing", "1", T3, None),
]
R1 = [row("ECID", "e1", "UPS", "s1", "entering", "1", T4, None)]
R2_EMPTY = [row("ECID", "e2")]
R3_EMPTY = [row(None, None)]
R4 = [row("crmId", "c4", "aam", "a1", "realized", "1", T5, None)]
R4_EMPTY = [row("crmId", "c4")]
R5 = [
    row("ECID", "e5b", "ups", "s2", "existing", "3", T6, V6, 0.1),
    row("ECID", "e5b", "ups", "s3"),
]
EXPECTED_ALL = [*R0, *R1, *R4, *R5]
EXPECTED_KEEP = [*R0, *R1, *R2_EMPTY, *R3_EMPTY, *R4, *R5]
EXPECTED_UPS = [*R0[:2], *R1, *R5]
EXPECTED_UPS_KEEP = [*R0[:2], *R1, *R2_EMPTY, *R3_EMPTY, *R4_EMPTY, *R5]
COLUMNS = list(row(None, None))
SCHEMA = {
    "identity_namespace": pl.String,
    "identity_id": pl.String,
    "namespace": pl.String,
    "segment_id": pl.String,
    "status": pl.String,
    "version": pl.String,
    "last_qualification_time": pl.Datetime("us", "UTC"),
    "valid_until": pl.Datetime("us", "UTC"),
    "payload": pl.Struct({"score": pl.Float64}),
    "merge_policy_id": pl.String,
}


def expected(rows: list[dict[str, Any]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=SCHEMA)


# --------------------------------------------------------------------------------------
# comparison helpers
# --------------------------------------------------------------------------------------


def norm(frame: pl.DataFrame | pa.Table, *, sort: bool = True) -> pl.DataFrame:
    """Polars frame with UTC timestamps (DuckDB says Etc/UTC), rows sorted."""
    df = pl.from_arrow(frame) if isinstance(frame, pa.Table) else frame
    assert isinstance(df, pl.DataFrame)
    df = df.with_columns(
        pl.col(c).dt.convert_time_zone("UTC")
        for c, t in df.schema.items()
        if isinstance(t, pl.Datetime) and t.time_zone is not None
    )
    if sort:
        keys = [c for c, t in df.schema.items() if not isinstance(t, (pl.Struct, pl.List))]
        df = df.sort(keys, nulls_last=True)
    return df


def assert_same(*frames: pl.DataFrame | pa.Table) -> None:
    first = norm(frames[0])
    for other in frames[1:]:
        assert_frame_equal(first, norm(other))


def duck(sql: str, con: duckdb.DuckDBPyConnection | None = None) -> pl.DataFrame:
    con = con or duckdb.connect()
    return con.sql(sql).pl()


def write(table: pa.Table, path: Path, *, store_schema: bool = True) -> str:
    pq.write_table(table, path, store_schema=store_schema)
    return f"read_parquet('{path}')"


# --------------------------------------------------------------------------------------
# polars form: exact rows
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("string_ts", [False, True], ids=["timestamps", "strings"])
@pytest.mark.parametrize("list_form", [False, True], ids=["map", "list"])
def test_polars_exact_rows(string_ts: bool, list_form: bool) -> None:
    df = pl.from_arrow(hand_table(string_ts=string_ts, list_form=list_form))
    assert isinstance(df, pl.DataFrame)
    if not list_form:
        assert isinstance(df.schema["segmentMembership"], pl.Map)
    out = flatten_membership(df)
    assert isinstance(out, pl.DataFrame)
    assert out.columns == COLUMNS
    assert_frame_equal(out, expected(EXPECTED_ALL))  # also checks row order


@pytest.mark.parametrize(
    ("options", "rows"),
    [
        ({"keep_empty": True}, EXPECTED_KEEP),
        ({"namespace": "ups"}, EXPECTED_UPS),
        ({"namespace": "UpS", "keep_empty": True}, EXPECTED_UPS_KEEP),
        ({"namespace": "aam"}, [R0[2], *R4]),
        ({"namespace": "nope"}, []),
    ],
)
def test_polars_options(options: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    lf = pl.from_arrow(hand_table()).lazy()  # type: ignore[union-attr]
    out = flatten_membership(lf, **options)
    assert isinstance(out, pl.LazyFrame)
    assert_frame_equal(out.collect(), expected(rows))


def test_polars_custom_identity() -> None:
    df = pl.from_arrow(hand_table())
    out = flatten_membership(
        df, identity=["crmId", "personalEmail.address"], namespace="ups", keep_empty=True
    )
    assert out.columns[:3] == ["crmId", "personalEmail_address", "namespace"]
    got = out.select("crmId", "personalEmail_address", "segment_id").rows()
    assert got == [
        ("crm0", "zero@example.com", "s1"),
        ("crm0", "zero@example.com", "s2"),
        ("crm1", None, "s1"),
        ("crm2", "two@example.com", None),
        (None, None, None),
        ("crm4", None, None),
        ("crm5", "five@example.com", "s2"),
        ("crm5", "five@example.com", "s3"),
    ]
    assert flatten_membership(df, identity=[]).columns[0] == "namespace"


def test_string_timestamp_rules_agree(tmp_path: Path) -> None:
    """RFC 3339 strings parse to UTC; anything else is null, identically in all engines."""
    cases = {
        "2024-05-01T03:04:05Z": T1,
        "2024-05-01T05:04:05+02:00": T1,
        "2024-05-01t03:04:05z": T1,
        "2024-05-01 03:04:05.000000999Z": T1,
        "2024-05-01T03:04:05": None,  # no offset
        "2024-05-01T05:04:05+0200": None,  # not RFC 3339
        "2024-02-30T00:00:00Z": None,  # impossible date
        "garbage": None,
        "": None,
    }
    segs = [
        [("ups", [(f"s{i}", {"status": "realized", "lastQualificationTime": s})])]
        for i, s in enumerate(cases)
    ]
    mem_t = pa.struct([("status", pa.string()), ("lastQualificationTime", pa.string())])
    table = pa.table(
        {
            "id": pa.array([str(i) for i in range(len(cases))]),
            "segmentMembership": pa.array(segs, pa.map_(pa.string(), pa.map_(pa.string(), mem_t))),
        }
    )
    want = list(cases.values())
    pol = flatten_membership(pl.from_arrow(table), identity=["id"])
    assert pol["last_qualification_time"].to_list() == want
    assert pol["version"].to_list() == [None] * len(cases)  # missing standard field -> null
    arr = flatten_membership_arrow(table, identity=["id"])
    assert arr.column("last_qualification_time").to_pylist() == want
    sql = flatten_sql(write(table, tmp_path / "ts.parquet"), identity=["id"])
    assert_same(pol, arr, duck(sql))


def test_naive_and_other_unit_timestamps(tmp_path: Path) -> None:
    mem_t = pa.struct(
        [
            ("status", pa.string()),
            ("lastQualificationTime", pa.timestamp("ms")),
            ("validUntil", pa.timestamp("ns", tz="Europe/Paris")),
        ]
    )
    segs = [
        [
            (
                "ups",
                [
                    (
                        "s1",
                        {
                            "status": "realized",
                            "lastQualificationTime": 1_714_532_645_000,
                            "validUntil": 1_714_532_645_000_000_000,
                        },
                    )
                ],
            )
        ]
    ]
    table = pa.table(
        {
            "id": ["p"],
            "segmentMembership": pa.array(segs, pa.map_(pa.string(), pa.map_(pa.string(), mem_t))),
        }
    )
    pol = flatten_membership(pl.from_arrow(table), identity=["id"])
    assert pol["last_qualification_time"].to_list() == [T1]
    assert pol["valid_until"].to_list() == [T1]
    arr = flatten_membership_arrow(table, identity=["id"])
    sql = flatten_sql(write(table, tmp_path / "naive.parquet"), identity=["id"])
    assert_same(pol, arr, duck(sql))


# --------------------------------------------------------------------------------------
# arrow form
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("string_ts", [False, True], ids=["timestamps", "strings"])
@pytest.mark.parametrize("list_form", [False, True], ids=["map", "list"])
@pytest.mark.parametrize(
    "options",
    [
        {},
        {"keep_empty": True},
        {"namespace": "ups"},
        {"namespace": "UPS", "keep_empty": True},
        {"identity": ["crmId", "personalEmail.address"]},
    ],
)
def test_arrow_matches_polars(string_ts: bool, list_form: bool, options: dict[str, Any]) -> None:
    table = hand_table(string_ts=string_ts, list_form=list_form)
    arr = flatten_membership_arrow(table, **options)
    pol = flatten_membership(pl.from_arrow(table), **options)
    assert arr.column_names == pol.columns
    assert arr.schema.field("last_qualification_time").type == pa.timestamp("us", tz="UTC")
    # same rows in the same order
    assert_frame_equal(norm(arr, sort=False), norm(pol, sort=False))


def test_arrow_exact_rows() -> None:
    out = flatten_membership_arrow(hand_table(), keep_empty=True)
    assert_frame_equal(norm(out, sort=False), expected(EXPECTED_KEEP))


@pytest.mark.parametrize("keep_empty", [False, True])
def test_arrow_sliced_and_chunked(keep_empty: bool) -> None:
    table = hand_table()
    pieces = [table.slice(0, 2), table.slice(2, 1), table.slice(3, 3)]
    chunked = pa.concat_tables(pieces)
    assert chunked.column("segmentMembership").num_chunks == 3
    variants = {
        "chunked": chunked,
        "sliced": table.slice(1, 4),
        "sliced-batch": table.to_batches()[0].slice(2, 4),
        "slice-of-slice": table.slice(1, 5).slice(3, 2),
    }
    for variant in variants.values():
        ref = flatten_membership(pl.from_arrow(variant), keep_empty=keep_empty)
        got = flatten_membership_arrow(variant, keep_empty=keep_empty, namespace=None)
        assert_frame_equal(norm(got, sort=False), norm(ref, sort=False))
        got_ns = flatten_membership_arrow(variant, keep_empty=keep_empty, namespace="ups")
        ref_ns = flatten_membership(pl.from_arrow(variant), keep_empty=keep_empty, namespace="ups")
        assert_frame_equal(norm(got_ns, sort=False), norm(ref_ns, sort=False))
    whole = flatten_membership_arrow(chunked, keep_empty=keep_empty)
    assert_frame_equal(
        norm(whole, sort=False), expected(EXPECTED_KEEP if keep_empty else EXPECTED_ALL)
    )


@pytest.mark.parametrize("segments", [["s1"], ["s2", "a1"], ["nope"], []],
                         ids=["one", "two", "none-match", "empty"])
@pytest.mark.parametrize("namespace", [None, "ups"])
def test_arrow_segments_pushdown_equals_filtering_after(
    segments: list[str], namespace: str | None
) -> None:
    table = hand_table()
    variants = {
        "whole": table,
        "chunked": pa.concat_tables([table.slice(0, 2), table.slice(2, 1), table.slice(3, 3)]),
        "slice-of-slice": table.slice(1, 5).slice(3, 2),
    }
    for variant in variants.values():
        ref = flatten_membership(pl.from_arrow(variant), namespace=namespace).filter(
            pl.col("segment_id").is_in(segments))  # flatten everything, then filter
        got = flatten_membership_arrow(variant, namespace=namespace, segments=segments)
        assert_frame_equal(norm(got, sort=False), norm(ref, sort=False))


def test_arrow_segments_with_keep_empty() -> None:
    got = flatten_membership_arrow(hand_table(), segments=["s1"], keep_empty=True)
    # p0 and p1 hold s1 (p1 under "UPS"); p2..p5 are left without rows
    assert_frame_equal(
        norm(got, sort=False),
        expected([R0[0], *R1, *R2_EMPTY, *R3_EMPTY, R4_EMPTY[0], row("ECID", "e5b")]),
    )


def test_arrow_segments_on_null_slots_with_child_data() -> None:
    """Index-based selection (null slots covering child entries) composes with the filter."""
    mem_t = pa.struct([("status", pa.string())])
    inner = pa.array(
        [[("s1", {"status": "realized"}), ("s3", {"status": "a"})],
         [("s3", {"status": "exited"})],
         [("s3", {"status": "existing"}), ("s1", {"status": "b"})]],
        pa.map_(pa.string(), mem_t),
    )  # fmt: skip
    outer = pa.MapArray.from_arrays(pa.array([0, 1, 2, 3], pa.int32()), pa.array(["ups"] * 3),
                                    inner, mask=pa.array([False, True, False]))  # fmt: skip
    table = pa.table({"id": ["a", "b", "c"], "segmentMembership": outer})
    got = flatten_membership_arrow(table, identity=["id"], segments=["s3"])
    assert got.select(["id", "segment_id", "status"]).to_pylist() == [
        {"id": "a", "segment_id": "s3", "status": "a"},
        {"id": "c", "segment_id": "s3", "status": "existing"},
    ]


def test_arrow_segments_must_be_a_list_of_ids() -> None:
    with pytest.raises(TypeError, match="list of segment ids, got the string 's1'"):
        flatten_membership_arrow(hand_table(), segments="s1")
    with pytest.raises(TypeError, match="segment id strings, got 7"):
        flatten_membership_arrow(hand_table(), segments=["s1", 7])  # type: ignore[list-item]


def test_arrow_null_slots_with_child_data() -> None:
    """Arrow allows a null list slot to cover child entries: they must be skipped."""
    mem_t = pa.struct([("status", pa.string())])
    inner = pa.array(
        [
            [("s1", {"status": "realized"})],
            [("s2", {"status": "exited"})],
            [("s3", {"status": "existing"})],
        ],
        pa.map_(pa.string(), mem_t),
    )
    keys = pa.array(["ups", "ups", "aam"])
    offsets = pa.array([0, 1, 2, 3], pa.int32())
    outer = pa.MapArray.from_arrays(offsets, keys, inner, mask=pa.array([False, True, False]))
    table = pa.table({"id": ["a", "b", "c"], "segmentMembership": outer})
    got = flatten_membership_arrow(table, identity=["id"])
    assert got.select(["id", "namespace", "segment_id"]).to_pylist() == [
        {"id": "a", "namespace": "ups", "segment_id": "s1"},
        {"id": "c", "namespace": "aam", "segment_id": "s3"},
    ]


def test_arrow_empty_table() -> None:
    table = hand_table().slice(0, 0)
    out = flatten_membership_arrow(table)
    assert out.num_rows == 0
    assert out.column_names == COLUMNS


# --------------------------------------------------------------------------------------
# DuckDB form
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("lateral", [False, True], ids=["unnest", "lateral"])
@pytest.mark.parametrize("store_schema", [True, False], ids=["arrow-schema", "spark-like"])
@pytest.mark.parametrize("string_ts", [False, True], ids=["timestamps", "strings"])
@pytest.mark.parametrize(
    "options",
    [
        {},
        {"keep_empty": True},
        {"namespace": "ups"},
        {"namespace": "UPS", "keep_empty": True},
        {"identity": ["crmId", "personalEmail.address"], "keep_empty": True},
    ],
)
def test_duckdb_matches_polars_and_arrow(
    tmp_path: Path, store_schema: bool, string_ts: bool, options: dict[str, Any], lateral: bool
) -> None:
    table = hand_table(string_ts=string_ts)
    path = tmp_path / "export.parquet"
    source = write(table, path, store_schema=store_schema)
    sql = flatten_sql(source, lateral=lateral, **options)
    join = "LEFT JOIN LATERAL" if options.get("keep_empty") else "CROSS JOIN LATERAL"
    assert (sql.count(join) == 2) is lateral
    via_duck = duck(sql)
    via_polars = flatten_membership(pl.scan_parquet(path), **options).collect()
    via_arrow = flatten_membership_arrow(pq.read_table(path), **options)
    assert via_duck.columns == via_polars.columns
    assert_same(via_polars, via_arrow, via_duck)
    assert_same(via_polars, flatten_membership(pl.from_arrow(table), **options))


def test_duckdb_exact_rows(tmp_path: Path) -> None:
    source = write(hand_table(), tmp_path / "e.parquet", store_schema=False)
    assert_same(duck(flatten_sql(source)), expected(EXPECTED_ALL))
    assert_same(
        duck(flatten_sql(source, keep_empty=True, namespace="ups")), expected(EXPECTED_UPS_KEEP)
    )


def test_duckdb_list_form(tmp_path: Path) -> None:
    table = hand_table(list_form=True)
    source = write(table, tmp_path / "l.parquet")
    for options in ({}, {"keep_empty": True, "namespace": "ups"}):
        assert_same(
            duck(flatten_sql(source, **options)),
            flatten_membership(pl.from_arrow(table), **options),
        )


def test_duckdb_view_and_macro(tmp_path: Path) -> None:
    path = tmp_path / "v.parquet"
    write(hand_table(string_ts=True), path, store_schema=False)
    con = duckdb.connect()
    con.execute(f"CREATE TABLE profiles AS SELECT * FROM read_parquet('{path}')")
    ref = flatten_membership(pl.from_arrow(hand_table()), keep_empty=True)

    assert create_flatten_view(con, "profiles", "seg", keep_empty=True) == "seg"
    assert_same(con.sql("SELECT * FROM seg").pl(), ref)
    # a table name needs the caller's connection for the schema
    with pytest.raises(ValueError, match="con="):
        flatten_sql("profiles")


def test_errors() -> None:
    table = hand_table()
    df = pl.from_arrow(table)
    with pytest.raises(KeyError, match="nope"):
        flatten_membership(df, column="nope")
    with pytest.raises(KeyError, match="nope"):
        flatten_membership_arrow(table, identity=["nope.x"])
    with pytest.raises(TypeError, match="sequence"):
        flatten_membership(df, identity="crmId")
    with pytest.raises(ValueError, match="collide"):
        flatten_membership_arrow(table, identity=["crmId", "namespace"])
    with pytest.raises(TypeError, match="Map or List"):
        flatten_membership(df, column="crmId")
    with pytest.raises(ValueError, match="cannot describe"):
        flatten_sql("no_such_table")


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------


def test_members_now() -> None:
    df = pl.from_arrow(hand_table())
    s1 = members_now(df, "s1")
    assert isinstance(s1, pl.DataFrame)
    assert s1.select("identity_id", "namespace", "status").rows() == [
        ("a@x", "ups", "realized"),
        ("e1", "UPS", "entering"),
    ]
    assert members_now(df, "s2")["identity_id"].to_list() == ["e5b"]  # p0 exited
    assert members_now(df, "s3").height == 0  # null status is not membership
    assert members_now(df, "a1").height == 0  # namespace defaults to ups
    lazy = members_now(df.lazy(), "a1", namespace="AAM", identity=["crmId"])
    assert isinstance(lazy, pl.LazyFrame)
    assert lazy.collect()["crmId"].to_list() == ["crm0", "crm4"]


def test_members_now_dedupes_profiles() -> None:
    mem_t = pa.struct([("status", pa.string())])
    segs = [[("ups", [("s1", {"status": "realized"})]), ("UPS", [("s1", {"status": "existing"})])]]
    table = pa.table(
        {
            "id": ["p"],
            "segmentMembership": pa.array(segs, pa.map_(pa.string(), pa.map_(pa.string(), mem_t))),
        }
    )
    out = members_now(pl.from_arrow(table), "s1", identity=["id"])
    assert out.select("id", "namespace").rows() == [("p", "ups")]


def test_membership_matrix() -> None:
    df = pl.from_arrow(hand_table())
    got = membership_matrix(df, segment_ids=["s1", "s2", "s3"])
    want = pl.DataFrame(
        {
            "identity_namespace": ["Email", "ECID", "ECID", None, "crmId", "ECID"],
            "identity_id": ["a@x", "e1", "e2", None, "c4", "e5b"],
            "s1": [True, True, False, False, False, False],
            "s2": [False, False, False, False, False, True],
            "s3": [False] * 6,
        }
    )
    assert_frame_equal(got, want)
    assert_frame_equal(membership_matrix(df), want)  # segments discovered, sorted
    lazy = membership_matrix(df.lazy(), segment_ids=["s2"], identity=["crmId"])
    assert isinstance(lazy, pl.LazyFrame)
    assert lazy.collect().rows() == [
        ("crm0", False),
        ("crm1", False),
        ("crm2", False),
        (None, False),
        ("crm4", False),
        ("crm5", True),
    ]
    aam = membership_matrix(df, namespace="aam", identity=["crmId"])
    assert aam.columns == ["crmId", "a1"]
    assert aam["a1"].to_list() == [True, False, False, False, True, False]


def test_audience_sizes() -> None:
    df = pl.from_arrow(hand_table())
    got = audience_sizes(df)
    assert got.schema == pl.Schema(
        {"namespace": pl.String, "segment_id": pl.String, "status": pl.String, "profiles": pl.Int64}
    )
    assert got.rows() == [
        ("UPS", "s1", "entering", 1),
        ("aam", "a1", "existing", 1),
        ("aam", "a1", "realized", 1),
        ("ups", "s1", "realized", 1),
        ("ups", "s2", "existing", 1),
        ("ups", "s2", "exited", 1),
        ("ups", "s3", None, 1),
    ]
    lazy = audience_sizes(df.lazy(), namespace="ups")
    assert isinstance(lazy, pl.LazyFrame)
    assert [r[0] for r in lazy.collect().rows()] == ["UPS", "ups", "ups", "ups", "ups"]


# --------------------------------------------------------------------------------------
# synthetic export (another module; skipped until it exists)
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> tuple[pa.Table, Path]:
    try:
        from aep_io.emulator.synthetic import SyntheticSpec, generate_table
    except ImportError as exc:
        pytest.skip(f"aep_io.emulator.synthetic not available yet: {exc}")

    table = generate_table(SyntheticSpec(profiles=20_000))
    path = tmp_path_factory.mktemp("synthetic") / "synthetic.parquet"
    pq.write_table(table, path, store_schema=False)
    return table, path


@pytest.mark.parametrize(
    "options",
    [{}, {"namespace": "ups", "keep_empty": True}, {"identity": ["personalEmail.address"]}],
)
def test_synthetic_three_forms_agree(
    synthetic: tuple[pa.Table, Path], options: dict[str, Any]
) -> None:
    table, path = synthetic
    via_polars = flatten_membership(pl.scan_parquet(path), **options).collect()
    via_arrow = flatten_membership_arrow(table, **options)
    via_duck = duck(flatten_sql(f"read_parquet('{path}')", **options))
    assert via_polars.height > 100_000
    assert_same(via_polars, via_arrow, via_duck)


def test_arrow_string_view_keys_with_gathers() -> None:
    """string_view keys (e.g. from a reader asked for views) survive index gathers, which
    pyarrow 26 cannot ``take`` directly."""
    mem_t = pa.struct([("status", pa.string())])
    inner = pa.array([[("s1", {"status": "realized"}), ("s3", {"status": "a"})], [],
                      [("s3", {"status": "b"})]],
                     pa.map_(pa.string_view(), mem_t))  # fmt: skip
    outer = pa.MapArray.from_arrays(pa.array([0, 1, 2, 3], pa.int32()),
                                    pa.array(["ups", "aam", "UPS"]).cast(pa.string_view()),
                                    inner, mask=pa.array([False, True, False]))  # fmt: skip
    table = pa.table({"id": ["a", "b", "c"], "segmentMembership": outer})
    got = flatten_membership_arrow(table, identity=["id"], segments=["s3"], namespace="ups")
    assert got.select(["id", "namespace", "segment_id", "status"]).to_pylist() == [
        {"id": "a", "namespace": "ups", "segment_id": "s3", "status": "a"},
        {"id": "c", "namespace": "UPS", "segment_id": "s3", "status": "b"},
    ]

"""Tests for the synthetic AEP profile generator (aep_io.emulator.synthetic)."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from aep_io.emulator.synthetic import (
    BLOCK_ROWS,
    SyntheticSpec,
    generate_table,
    iter_record_batches,
    profile_schema,
    segment_ids,
    write_parts,
)

SPEC_50K = SyntheticSpec(profiles=50_000, seed=11)


# ----------------------------------------------------------------------------- helpers


def _one_chunk(table: pa.Table, name: str) -> pa.Array:
    """A column as a single array with offset 0 (MapArray.keys/.items ignore offsets)."""
    return pa.concat_arrays(table.column(name).chunks)


def _map_parts(arr: pa.MapArray) -> tuple[np.ndarray, pa.Array, pa.Array]:
    """(offsets starting at 0, keys, items) of a possibly sliced MapArray."""
    offsets = arr.offsets.to_numpy()
    first, last = int(offsets[0]), int(offsets[-1])
    return (
        offsets - first,
        arr.keys.slice(first, last - first),
        arr.items.slice(first, last - first),
    )


def _rows_of(offsets: np.ndarray) -> np.ndarray:
    """Row index of each child entry."""
    return np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))


@pytest.fixture(scope="module")
def table() -> pa.Table:
    return generate_table(SPEC_50K)


@pytest.fixture(scope="module")
def memberships(table: pa.Table) -> dict[str, object]:
    """Flattened segmentMembership of the 50k table."""
    outer = _one_chunk(table, "segmentMembership")
    outer_offsets, namespaces, inner = _map_parts(outer)
    inner_offsets, keys, items = _map_parts(inner)
    return {
        "outer": outer,
        "outer_offsets": outer_offsets,
        "namespaces": namespaces.to_numpy(zero_copy_only=False),
        "inner_offsets": inner_offsets,
        "keys": keys,
        "items": items,
    }


# ----------------------------------------------------------------------------- schema


def test_schema_matches_profile_schema(table: pa.Table) -> None:
    assert table.schema == profile_schema()
    assert table.num_rows == SPEC_50K.profiles
    assert table.schema.names == [
        "identityMap",
        "person",
        "personalEmail",
        "homeAddress",
        "_acme",
        "segmentMembership",
    ]
    outer = table.schema.field("segmentMembership").type
    assert isinstance(outer, pa.MapType) and isinstance(outer.item_type, pa.MapType)
    assert not outer.key_field.nullable and not outer.item_type.key_field.nullable
    item = outer.item_type.item_type
    assert item.field("lastQualificationTime").type == pa.timestamp("us", tz="UTC")


def test_tenant_names_the_field_group() -> None:
    spec = SyntheticSpec(profiles=10, tenant="globex")
    t = generate_table(spec)
    assert t.schema == profile_schema("globex")
    assert "_globex" in t.schema.names and "_acme" not in t.schema.names


# ----------------------------------------------------------------------------- determinism


def test_two_calls_are_equal_and_seed_matters() -> None:
    spec = SyntheticSpec(profiles=2_000, seed=5)
    a, b = generate_table(spec), generate_table(spec)
    assert a.equals(b)
    other = generate_table(SyntheticSpec(profiles=2_000, seed=6))
    assert not a.column("identityMap").equals(other.column("identityMap"))
    assert not a.column("segmentMembership").equals(other.column("segmentMembership"))


def test_slicing_equals_generating_a_range() -> None:
    spec = SyntheticSpec(profiles=BLOCK_ROWS + 300, seed=3)
    full = generate_table(spec)
    assert generate_table(spec, 10, 20).equals(full.slice(10, 10))
    # across the internal block boundary
    lo, hi = BLOCK_ROWS - 50, BLOCK_ROWS + 70
    assert generate_table(spec, lo, hi).equals(full.slice(lo, hi - lo))
    assert generate_table(spec, BLOCK_ROWS + 1, spec.profiles).equals(full.slice(BLOCK_ROWS + 1))
    assert generate_table(spec, 7, 7).num_rows == 0


def test_more_profiles_extend_fewer() -> None:
    small = generate_table(SyntheticSpec(profiles=100, seed=9))
    large = generate_table(SyntheticSpec(profiles=1_000, seed=9))
    assert small.equals(large.slice(0, 100))


def test_iter_record_batches_sizes_and_content() -> None:
    spec = SyntheticSpec(profiles=BLOCK_ROWS + 1_000, seed=4)
    start = BLOCK_ROWS - 9_000
    batches = list(iter_record_batches(spec, start=start, batch_rows=4_000))
    assert [b.num_rows for b in batches] == [4_000, 4_000, 2_000]
    assert all(b.schema == profile_schema() for b in batches)
    assert pa.Table.from_batches(batches).equals(generate_table(spec, start, spec.profiles))


def test_invalid_ranges_and_specs() -> None:
    spec = SyntheticSpec(profiles=10)
    with pytest.raises(ValueError):
        generate_table(spec, 5, 11)
    with pytest.raises(ValueError):
        generate_table(spec, 6, 5)
    with pytest.raises(ValueError):
        iter_record_batches(spec, batch_rows=0)  # raised eagerly, not on first next()
    with pytest.raises(ValueError):
        iter_record_batches(spec, 0, 11)
    with pytest.raises(ValueError):
        SyntheticSpec(profiles=-1)
    with pytest.raises(ValueError):
        SyntheticSpec(now=datetime(2026, 1, 1))


# ----------------------------------------------------------------------------- identities


def test_identity_map_rules(table: pa.Table) -> None:
    ident = _one_chunk(table, "identityMap")
    offsets, namespaces, lists = _map_parts(ident)
    assert ident.null_count == 0
    ns = namespaces.to_numpy(zero_copy_only=False)
    assert set(ns) == {"ECID", "Email", "crmId"}
    # every list has exactly one identity
    list_offsets = lists.offsets.to_numpy()
    assert np.all(np.diff(list_offsets) == 1)
    values = lists.values.slice(int(list_offsets[0]), int(list_offsets[-1] - list_offsets[0]))
    ids = values.field("id").to_numpy(zero_copy_only=False)
    primary = values.field("primary").to_numpy(zero_copy_only=False)
    state = values.field("authenticatedState").to_numpy(zero_copy_only=False)
    rows = _rows_of(offsets)
    n = table.num_rows

    # exactly one primary per profile, and it is the "strongest" identity
    assert np.array_equal(np.bincount(rows[primary], minlength=n), np.ones(n, dtype=np.int64))
    has = {name: np.zeros(n, dtype=bool) for name in ("ECID", "Email", "crmId")}
    for name in has:
        has[name][rows[ns == name]] = True
        # at most one key per namespace per profile
        assert np.bincount(rows[ns == name], minlength=n).max() <= 1
    assert has["ECID"].all()
    expected_primary = np.where(has["crmId"], "crmId", np.where(has["Email"], "Email", "ECID"))
    assert np.array_equal(ns[primary], expected_primary)
    assert 0.67 < has["Email"].mean() < 0.73
    assert 0.37 < has["crmId"].mean() < 0.43

    assert set(state[ns == "ECID"]) == {"ambiguous"}
    assert set(state[ns != "ECID"]) == {"authenticated"}

    ecid = ids[ns == "ECID"]
    assert len(set(ecid)) == n
    assert all(len(e) == 38 and e.isdigit() for e in ecid[:1_000])
    assert pc.all(pc.match_substring_regex(pa.array(ecid), r"^[1-9][0-9]{37}$")).as_py()
    crm = ids[ns == "crmId"]
    assert len(set(crm)) == len(crm)
    assert pc.all(pc.match_substring_regex(pa.array(crm), r"^CRM[0-9]{9}$")).as_py()

    # Email identity == personalEmail.address (both present), lower case
    email = _one_chunk(table, "personalEmail")
    address = email.field("address").to_numpy(zero_copy_only=False)
    email_rows = rows[ns == "Email"]
    assert np.array_equal(ids[ns == "Email"], address[email_rows])
    assert not email.is_null().to_numpy(zero_copy_only=False)[email_rows].any()
    assert all(a == a.lower() for a in ids[ns == "Email"][:1_000])


def test_ecid_unique_across_blocks_and_seeds() -> None:
    def ecids(spec: SyntheticSpec, start: int, stop: int) -> set[str]:
        ident = _one_chunk(generate_table(spec, start, stop), "identityMap")
        _, namespaces, lists = _map_parts(ident)
        ids = lists.values.field("id").to_numpy(zero_copy_only=False)
        return set(ids[namespaces.to_numpy(zero_copy_only=False) == "ECID"])

    spec = SyntheticSpec(profiles=3 * BLOCK_ROWS, seed=1)
    a = ecids(spec, 0, 500)
    b = ecids(spec, 2 * BLOCK_ROWS, 2 * BLOCK_ROWS + 500)
    c = ecids(SyntheticSpec(profiles=500, seed=2), 0, 500)
    assert len(a | b | c) == 1_500


def test_personal_email(table: pa.Table) -> None:
    email = _one_chunk(table, "personalEmail")
    null_share = email.null_count / len(email)
    assert 0.10 < null_share < 0.20  # ~half of the ~30 % without an Email identity
    valid = email.filter(email.is_valid())
    pattern = r"^[a-z]+\.[a-z]+[0-9]{0,4}@[a-z]+\.[a-z]+$"
    assert pc.all(pc.match_substring_regex(valid.field("address"), pattern)).as_py()
    assert set(valid.field("status").to_pylist()) == {"active", "incomplete"}
    assert set(valid.field("type").to_pylist()) == {"personal"}
    assert pc.all(valid.field("primary")).as_py()
    # children of a null personalEmail are null too
    assert email.field("address").null_count == email.null_count


# ----------------------------------------------------------------------------- other fields


def test_person_address_and_tenant_fields(table: pa.Table) -> None:
    person = _one_chunk(table, "person")
    birth = person.field("birthDate")
    assert pc.min(birth).as_py().year >= 1945 and pc.max(birth).as_py().year <= 2008
    genders = pc.value_counts(person.field("gender")).to_pylist()
    shares = {g["values"]: g["counts"] / table.num_rows for g in genders}
    assert set(shares) == {"male", "female", "not_specified", None}
    assert 0.01 < shares[None] < 0.06
    assert len(set(person.field("name").field("firstName").to_pylist())) > 150
    assert len(set(person.field("name").field("lastName").to_pylist())) > 150

    address = _one_chunk(table, "homeAddress")
    assert address.null_count == 0
    codes = address.field("countryCode").to_numpy(zero_copy_only=False)
    countries = address.field("country").to_numpy(zero_copy_only=False)
    assert 0.40 < np.mean(codes == "US") < 0.50
    assert {"US", "GB", "DE", "FR", "CA", "JP", "BR", "IN", "AU", "ES"} <= set(codes)
    pairs = set(zip(codes, countries, strict=True))
    assert len(pairs) == len(set(codes))  # one country name per code
    assert ("US", "United States") in pairs and ("DE", "Germany") in pairs
    street_re = r"^[0-9]+ [A-Za-z]+ (St|Ave|Rd)$"
    assert pc.all(pc.match_substring_regex(address.field("street1"), street_re)).as_py()
    us_zip = address.field("postalCode").filter(pa.array(codes == "US"))
    assert pc.all(pc.match_substring_regex(us_zip, r"^[0-9]{5}$")).as_py()

    acme = _one_chunk(table, "_acme")
    tiers = pc.value_counts(acme.field("loyaltyTier")).to_pylist()
    tier_counts = {t["values"]: t["counts"] for t in tiers}
    assert set(tier_counts) == {"bronze", "silver", "gold", "platinum"}
    assert max(tier_counts, key=tier_counts.__getitem__) == "bronze"
    assert tier_counts["platinum"] == min(tier_counts.values())
    ltv = acme.field("lifetimeValue").to_numpy()
    assert (ltv > 0).all() and np.allclose(ltv, np.round(ltv, 2))
    since = acme.field("customerSince")
    assert pc.min(since).as_py().year >= 2010 and pc.max(since).as_py() < SPEC_50K.now.date()


# ----------------------------------------------------------------------------- segments


def test_segment_ids_deterministic_and_well_formed() -> None:
    ids = segment_ids(SyntheticSpec())
    assert ids == segment_ids(SyntheticSpec(profiles=5))  # independent of profiles
    assert ids != segment_ids(SyntheticSpec(seed=43))
    assert len(ids["ups"]) == 170 and len(ids["aam"]) == 30
    assert len(set(ids["ups"])) == 170 and len(set(ids["aam"])) == 30
    for value in ids["ups"]:
        assert str(uuid.UUID(value)) == value
    assert all(re.fullmatch(r"[1-9][0-9]{5,7}", v) for v in ids["aam"])
    custom = segment_ids(SyntheticSpec(ups_segments=5, aam_segments=2))
    assert len(custom["ups"]) == 5 and len(custom["aam"]) == 2


def test_segment_keys_distinct_within_each_inner_map(memberships: dict) -> None:
    inner_offsets = memberships["inner_offsets"]
    codes = pc.dictionary_encode(memberships["keys"]).indices.to_numpy().astype(np.int64)
    owner = _rows_of(inner_offsets)
    pairs = owner * 1_000_000 + codes
    assert len(np.unique(pairs)) == len(pairs)
    # keys belong to the namespace of their inner map
    ids = segment_ids(SPEC_50K)
    keys = memberships["keys"].to_numpy(zero_copy_only=False)
    entry_ns = memberships["namespaces"][owner]
    assert set(keys[entry_ns == "ups"]) <= set(ids["ups"])
    assert set(keys[entry_ns == "aam"]) <= set(ids["aam"])


def test_segment_value_domains(memberships: dict) -> None:
    assert set(memberships["namespaces"]) == {"ups", "aam"}
    items = memberships["items"]
    assert items.null_count == 0
    statuses = {
        s["values"]: s["counts"] for s in pc.value_counts(items.field("status")).to_pylist()
    }
    assert set(statuses) == {"realized", "existing", "exited"}
    total = len(items)
    assert 0.77 < statuses["realized"] / total < 0.83
    assert 0.03 < statuses["exited"] / total < 0.07
    assert set(items.field("version").to_pylist()) == {"1", "2", "3"}

    now = SPEC_50K.now
    qualified = items.field("lastQualificationTime")
    assert qualified.null_count == 0
    assert pc.max(qualified).as_py() <= now
    assert pc.min(qualified).as_py() >= now - timedelta(days=731)
    valid = items.field("validUntil")
    assert 0.87 < valid.null_count / total < 0.93
    mask = valid.is_valid()
    q = qualified.filter(mask).cast(pa.int64()).to_numpy()
    v = valid.filter(mask).cast(pa.int64()).to_numpy()
    days = (v - q) / 86_400_000_000
    assert days.min() >= 30 and days.max() <= 90


def test_membership_counts_match_means(memberships: dict) -> None:
    n = SPEC_50K.profiles
    counts = np.diff(memberships["inner_offsets"])
    ns = memberships["namespaces"]
    assert counts.min() >= 1  # no empty inner map: absent namespaces have no key
    ups_mean = counts[ns == "ups"].sum() / n
    aam_mean = counts[ns == "aam"].sum() / n
    assert ups_mean == pytest.approx(SPEC_50K.mean_ups_memberships, rel=0.03)
    assert aam_mean == pytest.approx(SPEC_50K.mean_aam_memberships, rel=0.05)
    # at most one inner map per namespace per profile
    outer_rows = _rows_of(memberships["outer_offsets"])
    for name in ("ups", "aam"):
        assert np.bincount(outer_rows[ns == name], minlength=n).max() <= 1


def test_null_and_empty_segment_membership_both_occur(memberships: dict) -> None:
    outer = memberships["outer"]
    n = len(outer)
    is_null = outer.is_null().to_numpy(zero_copy_only=False)
    lengths = np.diff(memberships["outer_offsets"])
    empty = (lengths == 0) & ~is_null
    assert 0.005 < is_null.mean() < 0.02
    assert 0.005 < empty.mean() < 0.02
    assert (lengths[is_null] == 0).all()
    assert n == SPEC_50K.profiles


def test_segment_popularity_is_uneven(memberships: dict) -> None:
    counts = pc.value_counts(memberships["keys"]).field("counts").to_numpy()
    share = np.sort(counts / SPEC_50K.profiles)
    assert share[-1] > 0.15  # popular segments
    assert share[0] < 0.005  # a filter on a rare segment is selective
    assert share[-1] / share[0] > 50


def test_custom_segment_counts() -> None:
    spec = SyntheticSpec(profiles=3_000, ups_segments=4, aam_segments=0, mean_ups_memberships=3.0)
    outer = _one_chunk(generate_table(spec), "segmentMembership")
    _, namespaces, inner = _map_parts(outer)
    assert set(namespaces.to_pylist()) == {"ups"}
    inner_offsets, keys, _ = _map_parts(inner)
    assert np.diff(inner_offsets).max() <= 4
    assert set(keys.to_pylist()) <= set(segment_ids(spec)["ups"])


# ----------------------------------------------------------------------------- parquet parts


def _read_parts(paths: list[Path]) -> pa.Table:
    return pa.concat_tables([pq.read_table(p) for p in paths])


@pytest.mark.slow
def test_write_parts_same_rows_for_any_split(tmp_path: Path) -> None:
    spec = SyntheticSpec(profiles=BLOCK_ROWS + 4_000, seed=21)
    eight = write_parts(spec, tmp_path / "eight", parts=8, row_groups_per_part=3)
    three = write_parts(spec, tmp_path / "three", parts=3, row_groups_per_part=2)
    assert len(eight) == 8 and len(three) == 3
    a, b = _read_parts(eight), _read_parts(three)
    assert a.num_rows == spec.profiles
    assert a.equals(b)
    assert a.equals(generate_table(spec))
    sizes = [pq.ParquetFile(p).metadata.num_rows for p in eight]
    assert max(sizes) - min(sizes) <= 1


def test_write_parts_layout_and_names(tmp_path: Path) -> None:
    spec = SyntheticSpec(profiles=4_800, seed=8)
    paths = write_parts(spec, tmp_path / "x", parts=3, row_groups_per_part=4)
    again = write_parts(spec, tmp_path / "y", parts=3, row_groups_per_part=4)
    assert [p.name for p in paths] == [p.name for p in again]
    name_re = r"part-(\d{5})-([0-9a-f-]{36})-c000\.snappy\.parquet"
    matches = [re.fullmatch(name_re, p.name) for p in paths]
    assert all(matches)
    assert [m.group(1) for m in matches if m] == ["00000", "00001", "00002"]
    assert len({m.group(2) for m in matches if m}) == 1  # one job uuid for all parts
    other = write_parts(SyntheticSpec(profiles=10, seed=9), tmp_path / "z", parts=1)
    assert other[0].name != paths[0].name
    for path in paths:
        meta = pq.ParquetFile(path).metadata
        assert meta.num_rows == 1_600
        assert meta.num_row_groups == 4
        assert [meta.row_group(i).num_rows for i in range(4)] == [400] * 4
        assert meta.row_group(0).column(0).compression == "SNAPPY"
        assert b"ARROW:schema" in (meta.metadata or {})
    assert _read_parts(paths).equals(generate_table(spec))


def test_write_parts_without_arrow_schema(tmp_path: Path) -> None:
    spec = SyntheticSpec(profiles=1_000, seed=2)
    paths = write_parts(
        spec,
        tmp_path,
        parts=2,
        row_groups_per_part=1,
        compression="zstd",
        store_schema=False,
        name_template="chunk-{index}.{compression}.parquet",
    )
    assert [p.name for p in paths] == ["chunk-0.zstd.parquet", "chunk-1.zstd.parquet"]
    meta = pq.ParquetFile(paths[0]).metadata
    assert b"ARROW:schema" not in (meta.metadata or {})
    assert meta.num_row_groups == 1
    assert meta.row_group(0).column(0).compression == "ZSTD"
    back = _read_parts(paths)
    identity = back.schema.field("identityMap").type
    segments = back.schema.field("segmentMembership").type
    assert isinstance(identity, pa.MapType)
    assert isinstance(segments, pa.MapType) and isinstance(segments.item_type, pa.MapType)
    assert segments.item_type.item_type.field("validUntil").type == pa.timestamp("us", tz="UTC")
    assert back.schema.field("person").type.field("birthDate").type == pa.date32()
    assert back.equals(generate_table(spec))


def test_write_parts_more_parts_than_profiles(tmp_path: Path) -> None:
    spec = SyntheticSpec(profiles=3, seed=1)
    paths = write_parts(spec, tmp_path, parts=5)
    assert [pq.ParquetFile(p).metadata.num_rows for p in paths] == [0, 1, 0, 1, 1]
    assert _read_parts(paths).equals(generate_table(spec))


def test_now_controls_timestamps() -> None:
    now = datetime(2024, 2, 29, 12, tzinfo=UTC)
    spec = SyntheticSpec(profiles=500, now=now)
    outer = _one_chunk(generate_table(spec), "segmentMembership")
    _, _, inner = _map_parts(outer)
    _, _, items = _map_parts(inner)
    qualified = items.field("lastQualificationTime")
    assert pc.max(qualified).as_py() <= now
    assert pc.min(qualified).as_py() >= now - timedelta(days=731)

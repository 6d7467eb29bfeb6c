"""Tests for the PQL parser and compiler (aep_io.emulator.pql)."""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import ModuleType

import duckdb
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aep_io.emulator.pql import (
    PQLError,
    PQLSyntaxError,
    compile_pql,
    parse_pql,
    referenced_segments,
)
from aep_io.emulator.synthetic import SyntheticSpec, generate_table, profile_schema, segment_ids

SCHEMA = profile_schema()
NOW = datetime(2026, 11, 4, 15, 30, tzinfo=UTC)  # a Wednesday
ALL = {0, 1, 2, 3, 4, 5}


def _ts(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def _m(status: str, when: datetime | None = None) -> dict[str, object]:
    when = when or _ts(2026, 1, 1)
    return {"version": "1", "lastQualificationTime": when, "validUntil": None, "status": status}


def _ident(id_: str, state: str = "authenticated", primary: bool = True) -> dict[str, object]:
    return {"id": id_, "authenticatedState": state, "primary": primary}


def _addr(city: str, state: str, postal: str, country: str, code: str) -> dict[str, object]:
    return {
        "street1": "1 Main St",
        "city": city,
        "stateProvince": state,
        "postalCode": postal,
        "country": country,
        "countryCode": code,
    }


def _person(first: str, last: str, birth: date | None, gender: str | None) -> dict[str, object]:
    return {"name": {"firstName": first, "lastName": last}, "birthDate": birth, "gender": gender}


def _email(address: str, primary: bool, status: str = "active") -> dict[str, object]:
    return {"address": address, "primary": primary, "status": status, "type": "personal"}


def _acme(tier: str, value: float, since: date) -> dict[str, object]:
    return {"loyaltyTier": tier, "lifetimeValue": value, "customerSince": since}


# Six hand-built profiles; the expected sets below were worked out by hand from these rows.
PROFILES: list[dict[str, object]] = [
    {  # 0 ann
        "identityMap": [
            ("Email", [_ident("ann@example.com")]),
            ("ECID", [_ident("111", "ambiguous", False)]),
        ],
        "person": _person("Ann", "Lee", date(1990, 5, 17), "female"),
        "personalEmail": _email("ann@example.com", True),
        "homeAddress": _addr("Austin", "TX", "78701", "United States", "US"),
        "_acme": _acme("gold", 1200.5, date(2026, 10, 15)),
        "segmentMembership": [
            ("ups", [("segA", _m("realized", _ts(2026, 10, 1))), ("segB", _m("exited"))])
        ],
    },
    {  # 1 bob: upper-case UPS namespace, no personalEmail
        "identityMap": [("ECID", [_ident("222", "ambiguous")])],
        "person": _person("Bob", "O'Brien", date(2006, 11, 4), "male"),
        "personalEmail": None,
        "homeAddress": _addr("Toronto", "ON", "M5H 1A1", "Canada", "CA"),
        "_acme": _acme("silver", 300.0, date(2026, 11, 4)),
        "segmentMembership": [("UPS", [("segA", _m("existing")), ("segC", _m("exited"))])],
    },
    {  # 2 cara: lower-case values, missing birthDate and gender
        "identityMap": [("email", [_ident("Cara@Example.com")])],
        "person": _person("cara", "Back\\slash", None, None),
        "personalEmail": _email("Cara@Example.com", False, "incomplete"),
        "homeAddress": _addr("San José", "CA", "95112", "United States", "us"),
        "_acme": _acme("bronze", 0.0, date(2025, 11, 4)),
        "segmentMembership": [
            ("ups", [("segA", _m("entering", _ts(2026, 11, 4, 10)))]),
            ("aam", [("segB", _m("realized"))]),
        ],
    },
    {  # 3 dan: everything missing
        "identityMap": None,
        "person": None,
        "personalEmail": None,
        "homeAddress": None,
        "_acme": None,
        "segmentMembership": None,
    },
    {  # 4 eve
        "identityMap": [],
        "person": _person("EVE", "100%_sure", date(1985, 1, 31), "not_specified"),
        "personalEmail": _email("eve@mail.test", True),
        "homeAddress": _addr("Los Angeles", "CA", "90001", "Germany", "DE"),
        "_acme": _acme("platinum", 99.99, date(2026, 10, 31)),
        "segmentMembership": [
            ("ups", [("segA", _m("exited", _ts(2026, 9, 15, 12))), ("segC", _m("realized"))])
        ],
    },
    {  # 5 fay: segA only in another namespace, empty ups map
        "identityMap": [
            (
                "Email",
                [
                    _ident("fay@example.org", "ambiguous", False),
                    _ident("fay2@example.org", "ambiguous", False),
                ],
            )
        ],
        "person": _person("Fay", "Smith-Jones", date(2026, 11, 1), "female"),
        "personalEmail": _email("fay@example.org", True),
        "homeAddress": _addr("Lyon", "Auvergne", "69001", "France", "FR"),
        "_acme": _acme("gold", 15.0, date(2020, 2, 29)),
        "segmentMembership": [("aam", [("segA", _m("realized"))]), ("ups", [])],
    },
]


@pytest.fixture(scope="module")
def con() -> duckdb.DuckDBPyConnection:
    table = pa.Table.from_pylist(PROFILES, schema=SCHEMA)
    table = table.append_column("rn", pa.array(range(len(PROFILES)), pa.int64()))
    connection = duckdb.connect()
    connection.register("profiles", table)
    return connection


def members(con: duckdb.DuckDBPyConnection, text: str, **kwargs: object) -> set[int]:
    sql = compile_pql(text, schema=SCHEMA, now=kwargs.pop("now", NOW), **kwargs)  # type: ignore[arg-type]
    return {r[0] for r in con.sql(f"SELECT rn FROM profiles WHERE {sql}").fetchall()}


LQT = 'segmentMembership.get("ups").get("segA").lastQualificationTime'
CASES: list[tuple[str, set[int]]] = [
    # comparisons, two-valued null handling
    ('homeAddress.countryCode = "US"', {0}),
    ('homeAddress.countryCode != "US"', {1, 2, 4, 5}),
    ('not (homeAddress.countryCode = "US")', {1, 2, 3, 4, 5}),
    ('!(homeAddress.countryCode = "US")', {1, 2, 3, 4, 5}),
    ("_acme.lifetimeValue > 100", {0, 1}),
    ("_acme.lifetimeValue >= 99.99", {0, 1, 4}),
    ("_acme.lifetimeValue < 15", {2}),
    ("_acme.lifetimeValue <= 15", {2, 5}),
    ("100 < _acme.lifetimeValue", {0, 1}),
    ("personalEmail.primary = true", {0, 4, 5}),
    ("personalEmail.primary != false", {0, 4, 5}),
    ("personalEmail.primary", {0, 4, 5}),
    ("!personalEmail.primary", {1, 2, 3}),
    ("person.birthDate < date(2000, 1, 1)", {0, 4}),
    ("person.birthDate = date(2006, 11, 4)", {1}),
    ('person.birthDate >= "2026-01-01"', {5}),
    (LQT + " < date(2026, 10, 2)", {0, 4}),
    (
        LQT + ' > "2026-11-04T09:59:59Z"',
        {2},
    ),
    # boolean logic and precedence
    ('homeAddress.countryCode = "US" or homeAddress.countryCode = "CA"', {0, 1}),
    ('_acme.loyaltyTier = "gold" and homeAddress.countryCode = "FR"', {5}),
    (
        'homeAddress.countryCode = "US" or _acme.loyaltyTier = "gold" and '
        'homeAddress.countryCode = "FR"',
        {0, 5},
    ),
    (
        '(homeAddress.countryCode = "US" or _acme.loyaltyTier = "gold") and '
        'homeAddress.countryCode = "FR"',
        {5},
    ),
    (
        '(_acme.loyaltyTier = "gold" or _acme.loyaltyTier = "silver") and '
        'not (homeAddress.city = "Austin")',
        {1, 5},
    ),
    ('not homeAddress.countryCode = "US" and _acme.loyaltyTier = "gold"', {5}),
    ("not (not personalEmail.primary)", {0, 4, 5}),
    # in / notIn
    ('homeAddress.countryCode in ["US", "CA"]', {0, 1}),
    ('homeAddress.countryCode notIn ["US", "CA"]', {2, 4, 5}),
    ('not (homeAddress.countryCode in ["US", "CA"])', {2, 3, 4, 5}),
    ('person.gender notIn ["male"]', {0, 4, 5}),
    ("_acme.lifetimeValue in [300, 15]", {1, 5}),
    ("homeAddress.countryCode in []", set()),
    ("homeAddress.countryCode notIn []", {0, 1, 2, 4, 5}),
    ("person.birthDate in [date(1990, 5, 17), date(2026, 11, 1)]", {0, 5}),
    ('person.birthDate notIn ["1990-05-17"]', {1, 4, 5}),
    # string methods and the case flag
    ('person.name.firstName.startsWith("C")', set()),
    ('person.name.firstName.startsWith("C", false)', {2}),
    ('person.name.firstName.startsWith("c", true)', {2}),
    ('person.name.firstName.equals("eve")', set()),
    ('person.name.firstName.equals("eve", false)', {4}),
    ('person.name.firstName.notEqualTo("Ann")', {1, 2, 4, 5}),
    ('person.name.firstName.notEqualTo("ann", false)', {1, 2, 4, 5}),
    ('homeAddress.city.contains("an")', {2}),
    ('homeAddress.city.contains("AN", false)', {2, 4}),
    ('homeAddress.city.doesNotContain("an")', {0, 1, 4, 5}),
    ('personalEmail.address.endsWith("@example.com")', {0}),
    ('personalEmail.address.endsWith("@EXAMPLE.com", false)', {0, 2}),
    ('personalEmail.address.doesNotEndWith("@example.com", false)', {4, 5}),
    ('person.name.lastName.doesNotStartWith("S")', {0, 1, 2, 4}),
    ('homeAddress.countryCode.equals("US", false)', {0, 2}),
    ("person.name.firstName.equals(person.name.firstName)", {0, 1, 2, 4, 5}),
    # like
    ('homeAddress.city like "San%"', {2}),
    ('homeAddress.city like "L_on"', {5}),
    ('homeAddress.city like "%o%"', {1, 2, 4, 5}),
    ('homeAddress.city like "san%"', set()),
    ('person.name.lastName like "100%"', {4}),
    ('person.name.lastName like "Back\\\\slash"', {2}),  # PQL "Back\\slash" = Back\slash
    ('person.name.lastName like "%\'%"', {1}),
    # null checks
    ("person.birthDate.isNull()", {2, 3}),
    ("person.isNull()", {3}),
    ("person.isNotNull()", {0, 1, 2, 4, 5}),
    ('identityMap.get("Email").isNotNull()', {0, 5}),
    ('identityMap.get("email").isNotNull()', {2}),
    ("personalEmail.address.isNotNull()", {0, 2, 4, 5}),
    ("homeAddress.street1.isNull()", {3}),
    # arithmetic
    ("_acme.lifetimeValue * 2 + 100 > 700", {0}),
    ("_acme.lifetimeValue + 10 * 2 = 320", {1}),
    ("(_acme.lifetimeValue + 10) * 2 = 320", set()),
    ("(_acme.lifetimeValue + 10) * 2 = 620", {1}),
    ("_acme.lifetimeValue / 4 = 75", {1}),
    ("_acme.lifetimeValue / 0 > 1", set()),
    ("_acme.lifetimeValue % 0 = 0", set()),
    ("_acme.lifetimeValue % 2 = 1", {5}),
    ("-_acme.lifetimeValue < -1000", {0}),
    ("10 - 4 - 3 = 3 and 2 * 3 % 4 = 2 and 7 / 2 = 3.5 and 2 + 3 * 4 = 14", ALL),
    ("- 2 * 3 = -6 and 1.5e1 = 15", ALL),
    ("9223372036854775807 + _acme.lifetimeValue * 0 > 0", {0, 1, 2, 4, 5}),
    ("9223372036854775807 + 1 > 0 or 9223372036854775807 * 2 < 0", set()),
    # occurs: now = 2026-11-04T15:30Z (Wednesday), today = 2026-11-04
    ("_acme.customerSince occurs <= 30 days before now", {0, 1, 4}),
    ("_acme.customerSince occurs < 20 days before now", {1, 4}),
    ("_acme.customerSince occurs <= 20 days before today", {0, 1, 4}),
    ("_acme.customerSince occurs < 20 days before today", {1, 4}),
    ("_acme.customerSince occurs > 1 years before now", {2, 5}),
    ("_acme.customerSince occurs >= 1 year before today", {2, 5}),
    ("_acme.customerSince occurs = 1 years before today", {2}),
    ("_acme.customerSince occurs = 4 days before today", {4}),
    ("_acme.customerSince occurs = 0 days before today", {1}),
    ("_acme.customerSince occurs != 4 days before today", {0, 1, 2, 5}),
    ("_acme.customerSince occurs last month", {0, 4}),
    ("_acme.customerSince occurs this month", {1}),
    ("_acme.customerSince occurs next month", set()),
    ("_acme.customerSince occurs this year", {0, 1, 4}),
    ("_acme.customerSince occurs last week", {4}),
    ("_acme.customerSince occurs this week", {1}),
    ("_acme.customerSince occurs last decade", set()),
    ("_acme.customerSince occurs this decade", {0, 1, 2, 4, 5}),
    ("person.birthDate occurs last century", {0, 4}),
    ("person.birthDate occurs this millennium", {1, 5}),
    ("_acme.customerSince occurs between date(2025, 11, 4) and date(2026, 10, 15)", {0, 2}),
    ("_acme.customerSince occurs before today", {0, 2, 4, 5}),
    ("_acme.customerSince occurs after yesterday", {1}),
    ("_acme.customerSince occurs after date(2026, 10, 31)", {1}),
    ("_acme.customerSince occurs on date(2026, 10, 31)", {4}),
    ("_acme.customerSince occurs date(2026, 10, 31)", {4}),
    ("_acme.customerSince occurs today", {1}),
    ("_acme.customerSince occurs on yesterday", set()),
    (
        "_acme.customerSince occurs before date(2020, 3, 1) and _acme.customerSince occurs after "
        "date(2020, 2, 28)",
        {5},
    ),
    (
        LQT + " occurs < 6 hours before now",
        {2},
    ),
    (
        LQT + " occurs = 5 hours before now",
        {2},
    ),
    (
        LQT + " occurs = 6 hours before now",
        set(),
    ),
    (LQT + " occurs today", {2}),
    (
        LQT + " occurs between date(2026, 9, 15) and date(2026, 10, 1)",
        {0, 4},
    ),
    (LQT + " occurs before now", {0, 2, 4}),
    (LQT + " occurs after now", set()),
    ("person.birthDate occurs > 3 days after date(2026, 10, 28)", {5}),
    ("person.birthDate occurs = 4 days after date(2026, 10, 28)", {5}),
    ("person.birthDate occurs <= 5 days from date(2026, 10, 28)", {5}),
    ("person.birthDate occurs = 20 years before today", {1}),
    ("person.birthDate occurs <= 20 years before today", {1, 5}),
    ("person.birthDate occurs before _acme.customerSince", {0, 1, 4}),
    ("_acme.customerSince occurs >= 20 years after person.birthDate", {0, 1, 4}),
    ("_acme.customerSince occurs = 20 years after person.birthDate", {1}),
    ("person.birthDate occurs on _acme.customerSince", set()),
    # inSegment: ups / UPS keys, each status, other namespaces
    ('inSegment("segA")', {0, 1, 2}),
    ('inSegment("segB")', set()),
    ('inSegment("segC")', {4}),
    ('inSegment("segA") and not inSegment("segC")', {0, 1, 2}),
    ('inSegment("nope")', set()),
    # nested .get
    ('segmentMembership.get("ups").get("segA").status = "realized"', {0}),
    ('segmentMembership.get("UPS").get("segA").status = "existing"', {1}),
    ('segmentMembership.get("ups").get("segC").status.isNotNull()', {4}),
    ('identityMap.get("Email").head().id.endsWith("example.org")', {5}),
    ('identityMap.get("Email").id.includes("fay2@example.org")', {5}),
    ('identityMap.get("Email").count() = 2', {5}),
    ('identityMap.keys().includes("ECID")', {0, 1}),
    ("identityMap.count() = 0", {3, 4}),
    # small tier-2 extras
    ("person.birthDate.getYear() = 2006 and person.birthDate.getMonth() = 11", {1}),
    ("_acme.customerSince.getDayOfMonth() = currentDayOfMonth()", {1, 2}),
    ('person.name.firstName.matches("(?i)^[ab]")', {0, 1}),
    ('if(_acme.loyaltyTier = "gold", 1, 0) = 1', {0, 5}),
    # injection attempts stay inside the literal
    ('homeAddress.countryCode = "x\' OR 1=1 --"', set()),
    ('person.name.lastName = "O\'Brien"', {1}),
    ('person.name.lastName = "Back\\\\slash"', {2}),
    ('homeAddress.city = "\\"; DROP TABLE profiles; --"', set()),
    ('inSegment("x\'); DROP TABLE profiles; --")', set()),
    ('identityMap.get("E\'mail").isNull()', ALL),
]


@pytest.mark.parametrize(("text", "expected"), CASES, ids=[c[0][:60] for c in CASES])
def test_membership_table(con: duckdb.DuckDBPyConnection, text: str, expected: set[int]) -> None:
    assert members(con, text) == expected


def test_profiles_table_survives_injection(con: duckdb.DuckDBPyConnection) -> None:
    members(con, 'homeAddress.city = "\'; DROP TABLE profiles; --"')
    assert con.sql("SELECT count(*) FROM profiles").fetchall()[0][0] == len(PROFILES)


def test_in_segment_namespace_parameter(con: duckdb.DuckDBPyConnection) -> None:
    assert members(con, 'inSegment("segA")', ups_namespace="aam") == {5}
    assert members(con, 'inSegment("segB")', ups_namespace="AAM") == {2}
    assert members(con, 'inSegment("segA")', ups_namespace="UPS") == {0, 1, 2}


def test_session_time_zone_does_not_matter(con: duckdb.DuckDBPyConnection) -> None:
    text = LQT + " occurs today or _acme.customerSince occurs this week"
    expected = members(con, text)
    con.execute("SET TimeZone = 'Pacific/Kiritimati'")
    try:
        assert members(con, text) == expected == {1, 2}
    finally:
        con.execute("RESET TimeZone")


def test_now_is_a_parameter(con: duckdb.DuckDBPyConnection) -> None:
    text = "_acme.customerSince occurs this month"
    assert members(con, text, now=datetime(2026, 10, 20, tzinfo=UTC)) == {0, 4}
    assert members(con, text, now=datetime(2020, 2, 1)) == {5}  # naive = UTC
    # an aware non-UTC now is converted: 2026-11-01 01:00+03:00 is still October in UTC
    from datetime import timezone

    plus3 = datetime(2026, 11, 1, 1, tzinfo=timezone(timedelta(hours=3)))
    assert members(con, text, now=plus3) == {0, 4}


def test_output_is_a_never_null_boolean() -> None:
    sql = compile_pql('homeAddress.countryCode = "US"', schema=SCHEMA, now=NOW)
    assert sql.startswith("coalesce(") and sql.endswith(", false)")
    assert '"homeAddress"' in sql
    sql = compile_pql("personalEmail.primary", schema=SCHEMA, now=NOW)
    assert duckdb.sql(
        f'SELECT {sql} FROM (SELECT NULL::STRUCT("primary" BOOLEAN) AS "personalEmail")'
    ).fetchall() == [(False,)]


def test_iso_string_times() -> None:
    """Date-times stored as ISO strings work with occurs and date comparisons."""
    schema = pa.schema([("at", pa.string())])
    connection = duckdb.connect()
    connection.register(
        "one", pa.table({"at": ["2026-11-04T01:00:00Z", "2019-05-01T00:00:00+02:00", "junk", None]})
    )
    texts = {
        "at occurs today": [True, False, False, False],
        "at < date(2020, 1, 1)": [False, True, False, False],
        "at occurs before date(2019, 5, 1)": [False, True, False, False],
        '"2026-11-04" occurs today': [True] * 4,
    }
    for text, expected in texts.items():
        sql = compile_pql(text, schema=schema, now=NOW)
        got = [r[0] for r in connection.sql(f"SELECT {sql} FROM one").fetchall()]
        assert got == expected, text


def test_parse_pql_returns_an_ast() -> None:
    from aep_io.emulator.pql.parser import BoolOp, Call, Compare, Occurs

    node = parse_pql('inSegment("s") or x occurs last month and y = 1')
    assert isinstance(node, BoolOp) and node.op == "or"
    assert isinstance(node.operands[0], Call)
    right = node.operands[1]
    assert isinstance(right, BoolOp) and right.op == "and"
    assert isinstance(right.operands[0], Occurs) and isinstance(right.operands[1], Compare)


# ----------------------------------------------------------------------------- tier 2


EVENT = pa.struct(
    [
        ("_id", pa.string()),
        ("timestamp", pa.timestamp("us", tz="UTC")),
        ("eventType", pa.string()),
        ("value", pa.float64()),
    ]
)
EVENTS = [
    [
        {
            "_id": "e1",
            "timestamp": _ts(2026, 11, 3),
            "eventType": "commerce.purchases",
            "value": 50.0,
        },
        {
            "_id": "e2",
            "timestamp": _ts(2026, 8, 1),
            "eventType": "commerce.purchases",
            "value": 5.0,
        },
        {
            "_id": "e3",
            "timestamp": _ts(2026, 11, 4),
            "eventType": "web.webpagedetails.pageViews",
            "value": None,
        },
    ],
    [],
    None,
    [
        {
            "_id": "e4",
            "timestamp": _ts(2026, 11, 4, 12),
            "eventType": "Commerce.Checkouts",
            "value": 10.0,
        }
    ],
    [{"_id": "e5", "timestamp": _ts(2026, 11, 1), "eventType": "commerce.purchases", "value": 1.0}],
    [{"_id": "e6", "timestamp": None, "eventType": None, "value": None}],
]


@pytest.fixture(scope="module")
def events_con() -> tuple[duckdb.DuckDBPyConnection, pa.Schema]:
    table = pa.Table.from_pylist(PROFILES, schema=SCHEMA)
    table = table.append_column("timeSeriesEvents", pa.array(EVENTS, pa.list_(EVENT)))
    table = table.append_column("rn", pa.array(range(len(PROFILES)), pa.int64()))
    connection = duckdb.connect()
    connection.register("profiles", table)
    return connection, table.schema.remove(table.schema.get_field_index("rn"))


TIER2: list[tuple[str, set[int]]] = [
    ('xEvent[eventType = "commerce.purchases"].count() > 0', {0, 4}),
    ('xEvent[eventType = "commerce.purchases"].count() >= 2', {0}),
    ('xEvent[eventType = "commerce.purchases"].count() = 0', {1, 2, 3, 5}),
    ("xEvent.count() = 0", {1, 2}),
    ('xEvent[eventType.equals("commerce.checkouts", false)].count() > 0', {3}),
    (
        'xEvent[eventType = "commerce.purchases" and timestamp occurs <= 7 days before now]'
        ".count() > 0",
        {0, 4},
    ),
    (
        'xEvent[eventType = "commerce.purchases" and timestamp occurs <= 2 days before now]'
        ".count() > 0",
        {0},
    ),
    ('xEvent[value > 4 and homeAddress.countryCode = "US"].count() = 2', {0}),
    ('exists X from xEvent where X.eventType = "commerce.purchases"', {0, 4}),
    ("exists X from xEvent: X.value > 20", {0}),
    ("exists X from xEvent where X.timestamp occurs today", {0, 3}),
    ('forall X from xEvent where X.eventType.startsWith("commerce")', {1, 2, 4}),
    ('not (exists X from xEvent where X.eventType = "commerce.purchases")', {1, 2, 3, 5}),
    ('xEvent.eventType.includes("commerce.purchases")', {0, 4}),
    ("exists X from xEvent where xEvent[value > X.value].count() = 1", {0}),
    ("exists X from xEvent where X.value < _acme.lifetimeValue / 100", {0}),
]


@pytest.mark.parametrize(("text", "expected"), TIER2, ids=[c[0][:60] for c in TIER2])
def test_tier2_events(
    events_con: tuple[duckdb.DuckDBPyConnection, pa.Schema], text: str, expected: set[int]
) -> None:
    connection, schema = events_con
    sql = compile_pql(text, schema=schema, now=NOW)
    got = {r[0] for r in connection.sql(f"SELECT rn FROM profiles WHERE {sql}").fetchall()}
    assert got == expected


# ----------------------------------------------------------------------------- errors


SYNTAX_ERRORS: list[tuple[str, int, int, str]] = [
    # text, line, column, fragment of the message
    ("homeAddress.countryCode = )", 1, 27, 'unexpected token ")"'),
    ("homeAddress.countryCode = ", 1, 27, "unexpected end of input"),
    ('homeAddress.countryCode = "US', 1, 27, "unterminated string"),
    ("homeAddress.countryCode = 'US'", 1, 27, "double quotes"),
    ('homeAddress.countryCode = "US" and\n  (person.gender = "male"', 2, 26, 'expected ")"'),
    ('homeAddress.countryCode "US"', 1, 25, "expected an operator"),
    ("a = 1 AND b = 2", 1, 7, 'keywords are case-sensitive: write "and"'),
    ("a NotIn [1]", 1, 3, 'write "notIn"'),
    ("a in [1, 2", 1, 11, 'expected "," or "]"'),
    ("x occurs <= 30 dayz before now", 1, 16, 'unknown time unit "dayz"'),
    ("x occurs <= thirty days before now", 1, 13, "expected a whole number"),
    ('a = "bad \\u12"', 1, 10, "bad \\u escape"),
    ("a = 1\n\n  @", 3, 3, "'@' at line 3, column 3: expected an operator or end of input"),
    ("", 1, 1, "expected a value"),
    ("a.", 1, 3, "expected a name"),
    ("a = = 1", 1, 5, "expected a value"),
    ("select X from xEvent where X.a = 1", 1, 8, '"select" expressions are not supported'),
    ("let S = 1 in (S > 0)", 1, 5, '"let" expressions are not supported'),
    ('$1.homeAddress.city = "x"', 1, 1, "not supported by the emulator"),
    ("xEvent[a[b = ^.c]].count() > 0", 1, 14, "^ (outer level) operator is not supported"),
]


@pytest.mark.parametrize(("text", "line", "column", "fragment"), SYNTAX_ERRORS)
def test_syntax_errors(text: str, line: int, column: int, fragment: str) -> None:
    with pytest.raises(PQLSyntaxError) as info:
        compile_pql(text, schema=SCHEMA, now=NOW)
    err = info.value
    assert (err.line, err.column) == (line, column), str(err)
    assert fragment in str(err)
    assert f"at line {line}, column {column}" in str(err)
    assert isinstance(err, ValueError) and isinstance(err, PQLError)
    # the caret line points at the reported column
    caret_line = str(err).splitlines()[-1]
    assert caret_line.index("^") == column + 1  # two spaces of indent, 1-based column


def test_syntax_error_message_shape() -> None:
    with pytest.raises(PQLSyntaxError) as info:
        parse_pql("homeAddress.countryCode = )")
    assert str(info.value) == (
        'unexpected token ")" at line 1, column 27: expected a value\n'
        "  homeAddress.countryCode = )\n"
        "                            ^"
    )
    assert info.value.position == 26
    again = pickle.loads(pickle.dumps(info.value))
    assert type(again) is PQLSyntaxError and str(again) == str(info.value)


SEMANTIC_ERRORS: list[tuple[str, int, str]] = [
    # text, column, fragment
    ('homeAddress.countyCode = "US"', 13, 'did you mean "homeAddress.countryCode"'),
    ('homeadress.countryCode = "US"', 1, 'unknown field "homeadress"'),
    ("homeAddress.countryCode.size = 1", 25, "it has no field"),
    ('person.name.firstName.contain("x")', 23, 'did you mean "contains"'),
    ("person.name.firstName.contains()", 23, "takes 1 or 2 arguments, got 0"),
    ('person.name.firstName.contains("a", true, 1)', 23, "takes 1 or 2 arguments, got 3"),
    ('person.isNull("x")', 8, "takes no arguments, got 1"),
    ('homeAddress.get("city") = "x"', 13, ".get() needs a map, but homeAddress is a struct"),
    ("identityMap.Email.isNull()", 13, 'use .get("Email")'),
    ("homeAddress.countryCode = 1", 25, "cannot compare homeAddress.countryCode (string) with 1"),
    ('_acme.lifetimeValue > "10"', 21, "cannot compare"),
    ("homeAddress.countryCode in [1, 2]", 29, "cannot compare"),
    ('_acme.lifetimeValue like "1%"', 21, "like needs a string"),
    ("homeAddress.city + 1 > 2", 13, "arithmetic needs numbers"),
    ("_acme.lifetimeValue occurs last month", 21, "occurs needs a date or timestamp"),
    ("person.birthDate = date(2020, 2, 30)", 20, "invalid date"),
    ('person.name.firstName.startsWith("a", "no")', 39, "case flag"),
    ("inSegment(segA)", 11, "segment id string"),
    ("chain(xEvent, timestamp, [])", 1, "not supported by the emulator"),
    ('xEvent[eventType = "x"].sum(value) > 1', 25, "not supported by the emulator"),
    ('frobnicate("x")', 1, 'unknown function "frobnicate()"'),
    ("_acme.lifetimeValue", 7, "not a condition"),
    ('xEvent[eventType = "x"].count() > 0', 1, "timeSeriesEvents"),
    ("person.birthDate occurs <= 9000 years before now", 18, "out of range"),
    ("_acme.lifetimeValue > 99999999999999999999", 23, "out of range"),
    ("homeAddress.city.contains(1)", 27, "must be a string"),
]


@pytest.mark.parametrize(("text", "column", "fragment"), SEMANTIC_ERRORS)
def test_semantic_errors(text: str, column: int, fragment: str) -> None:
    with pytest.raises(PQLError) as info:
        compile_pql(text, schema=SCHEMA, now=NOW)
    err = info.value
    assert not isinstance(err, PQLSyntaxError)
    assert fragment in str(err), str(err)
    assert (err.line, err.column) == (1, column), str(err)
    assert err.position == column - 1


def test_compile_rejects_bad_now() -> None:
    with pytest.raises(TypeError):
        compile_pql("person.isNull()", schema=SCHEMA, now=date(2026, 1, 1))  # type: ignore[arg-type]


def test_referenced_segments() -> None:
    text = 'inSegment("a") and (inSegment("b") or homeAddress.city = "x") or !inSegment("c")'
    assert referenced_segments(text) == {"a", "b", "c"}
    assert referenced_segments('homeAddress.countryCode = "US"') == set()
    with pytest.raises(PQLSyntaxError):
        referenced_segments("inSegment(")


def test_keywords_are_case_sensitive_and_usable_as_field_names() -> None:
    schema = pa.schema([("s", pa.struct([("last", pa.string()), ("in", pa.int64())]))])
    sql = compile_pql('s.last = "x" and s.in = 1', schema=schema, now=NOW)
    assert duckdb.sql(f"SELECT {sql} FROM (SELECT {{'last': 'x', 'in': 1}} AS s)").fetchall() == [
        (True,)
    ]
    with pytest.raises(PQLSyntaxError):
        parse_pql("s.in = 1 OR s.in = 2")


# ----------------------------------------------------------------------------- properties


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=20))
def test_string_literals_round_trip(value: str) -> None:
    """Any string, escaped as PQL, compiles to SQL that compares equal to that very string."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    schema = pa.schema([("s", pa.string())])
    sql = compile_pql(f's = "{escaped}" and s.contains("{escaped}")', schema=schema, now=NOW)
    connection = duckdb.connect()
    connection.register("one", pa.table({"s": [value, value + "x"]}))
    assert connection.sql(f"SELECT {sql} FROM one").fetchall() == [(True,), (False,)]


# ----------------------------------------------------------------------------- agreement


@pytest.fixture(scope="module")
def synthetic() -> tuple[duckdb.DuckDBPyConnection, list[dict[str, object]], pa.Schema]:
    table = generate_table(SyntheticSpec(profiles=2000))
    connection = duckdb.connect()
    connection.register("profiles", table.append_column("rn", pa.array(range(2000))))
    return connection, table.to_pylist(), table.schema


def _python_in_segment(row: dict[str, object], segment: str) -> bool:
    for ns, entries in row["segmentMembership"] or []:  # type: ignore[union-attr]
        if ns.lower() == "ups":
            for seg, membership in entries:
                if seg == segment and membership["status"] in ("realized", "existing"):
                    return True
    return False


def test_agreement_with_python_on_synthetic_profiles(
    synthetic: tuple[duckdb.DuckDBPyConnection, list[dict[str, object]], pa.Schema],
) -> None:
    connection, rows, schema = synthetic
    now = SyntheticSpec().now
    segment = segment_ids(SyntheticSpec())["ups"][0]
    today = datetime(now.year, now.month, now.day)

    def g(row: dict, *path: str) -> object:
        for key in path:
            row = row.get(key) if isinstance(row, dict) else None  # type: ignore[assignment]
        return row

    checks = {
        'homeAddress.countryCode in ["US", "CA"] and _acme.lifetimeValue > 200': lambda r: (
            g(r, "homeAddress", "countryCode") in ("US", "CA")
            and (g(r, "_acme", "lifetimeValue") or 0) > 200
        ),
        f'inSegment("{segment}")': lambda r: _python_in_segment(r, segment),
        f'not inSegment("{segment}") and person.gender notIn ["male"]': lambda r: (
            not _python_in_segment(r, segment) and g(r, "person", "gender") not in (None, "male")
        ),
        'person.name.firstName.startsWith("j", false) or '
        'personalEmail.address.endsWith(".org")': lambda r: (
            (g(r, "person", "name", "firstName") or "").lower().startswith("j")
            or (g(r, "personalEmail", "address") or "").endswith(".org")
        ),
        "person.birthDate occurs <= 30 years before today": lambda r: (
            datetime(1996, now.month, now.day)
            <= datetime.combine(g(r, "person", "birthDate"), datetime.min.time())
            <= today
        ),
        "_acme.customerSince occurs last year": lambda r: (
            g(r, "_acme", "customerSince").year == now.year - 1
        ),
        'identityMap.get("crmId").isNotNull() and _acme.loyaltyTier like "%l%"': lambda r: (
            "crmId" in dict(r["identityMap"]) and "l" in g(r, "_acme", "loyaltyTier")
        ),
    }
    for text, predicate in checks.items():
        sql = compile_pql(text, schema=schema, now=now)
        got = {r[0] for r in connection.sql(f"SELECT rn FROM profiles WHERE {sql}").fetchall()}
        want = {i for i, row in enumerate(rows) if predicate(row)}
        assert got == want, text
        assert 0 < len(want) < len(rows), text  # each check discriminates


def test_agreement_with_hand_written_duckdb(
    synthetic: tuple[duckdb.DuckDBPyConnection, list[dict[str, object]], pa.Schema],
) -> None:
    connection, _, schema = synthetic
    segment = segment_ids(SyntheticSpec())["ups"][3]
    sql = compile_pql(
        f'inSegment("{segment}") or homeAddress.city = "Austin"',
        schema=schema,
        now=SyntheticSpec().now,
    )
    hand = f"""
        SELECT rn FROM profiles
        WHERE list_contains(['realized', 'existing'],
                            segmentMembership['ups']['{segment}'].status)
           OR homeAddress.city = 'Austin'
    """
    got = connection.sql(f"SELECT rn FROM profiles WHERE {sql} ORDER BY rn").fetchall()
    assert got == connection.sql(hand + " ORDER BY rn").fetchall()
    assert len(got) > 0



# --------------------------------------------------------------------------- parser tables cache


@pytest.fixture
def parser_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """``aep_io.emulator.pql.parser`` with its LALR tables cached under ``tmp_path``."""
    from aep_io.emulator.pql import parser

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    parser._lark.cache_clear()
    parser._parse.cache_clear()
    yield parser
    parser._lark.cache_clear()
    parser._parse.cache_clear()


def _parses_and_fails_alike(parser: ModuleType) -> None:
    text = 'homeAddress.countryCode = "US"'
    tree = parse_pql(text)
    parser._parse.cache_clear()
    assert parse_pql(text) == tree
    for text, line, column, fragment in SYNTAX_ERRORS:
        with pytest.raises(PQLSyntaxError) as info:
            parse_pql(text)
        assert (info.value.line, info.value.column) == (line, column)
        assert fragment in str(info.value)


def test_parser_tables_are_saved_and_loaded(
    parser_cache: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    built = parser_cache._lark()
    path = parser_cache._lark_cache_file()
    assert path.is_file()
    parser_cache._lark.cache_clear()
    loads: list[object] = []
    real_load = parser_cache.Lark._load

    def spy(self: object, *args: object, **kwargs: object) -> object:
        loads.append(self)
        return real_load(self, *args, **kwargs)

    monkeypatch.setattr(parser_cache.Lark, "_load", spy)
    loaded = parser_cache._lark()
    assert loads == [loaded]  # the tables came from the file, not from analysing the grammar
    assert loaded is not built and loaded.options.propagate_positions
    assert {t.name for t in loaded.terminals} == {t.name for t in built.terminals}
    _parses_and_fails_alike(parser_cache)


@pytest.mark.parametrize("damage", ["other key", "truncated", "garbage"])
def test_parser_tables_cache_damaged_or_stale(parser_cache: ModuleType, damage: str) -> None:
    parser_cache._lark()
    path = parser_cache._lark_cache_file()
    good = path.read_bytes()
    key, _, tables = good.partition(b"\n")
    path.write_bytes({"other key": b"0" * len(key) + b"\n" + tables,
                      "truncated": good[: len(good) // 2],
                      "garbage": key + b"\nnot a pickle"}[damage])  # fmt: skip
    parser_cache._lark.cache_clear()
    parser_cache._lark()  # builds the parser, and saves good tables again
    assert path.read_bytes().partition(b"\n")[0] == key
    parser_cache._lark.cache_clear()
    assert parser_cache._lark() is not None  # loads them
    _parses_and_fails_alike(parser_cache)


def test_parser_without_a_writable_cache(
    parser_cache: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    parser_cache._lark()
    assert not parser_cache._lark_cache_file().exists()
    _parses_and_fails_alike(parser_cache)

"""Typed SQL fragments and calendar arithmetic used by the PQL compiler.

Times are naive UTC :class:`~datetime.datetime` values in Python and naive UTC ``TIMESTAMP``
values in SQL. Functions that move or truncate a time take either a Python datetime (computed
here, so compiled SQL holds plain literals) or a SQL expression string (compiled to DuckDB
``date_trunc`` / ``to_days``-style arithmetic, which clamps month ends the same way).

Example::

    >>> from datetime import datetime
    >>> shift(datetime(2026, 1, 31), 1, "month")
    datetime.datetime(2026, 2, 28, 0, 0)
    >>> trunc(datetime(2026, 11, 4, 15, 30), "week")
    datetime.datetime(2026, 11, 2, 0, 0)
    >>> shift('"ts"', -3, "day")
    '("ts" + to_days(-3))'
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pyarrow as pa

__all__ = [
    "MISSING",
    "Span",
    "TimeRangeError",
    "Value",
    "as_datetime",
    "date_value",
    "kind_of",
    "naive_utc",
    "period",
    "shift",
    "sql_ident",
    "sql_string",
    "sql_time",
    "time_value",
    "trunc",
]

#: Marks a :class:`Value` that is not a compile-time constant.
MISSING: Any = object()

_FIXED_UNITS = {
    "millisecond": timedelta(milliseconds=1),
    "second": timedelta(seconds=1),
    "minute": timedelta(minutes=1),
    "hour": timedelta(hours=1),
    "day": timedelta(days=1),
    "week": timedelta(weeks=1),
}
_MONTH_UNITS = {"month": 1, "year": 12, "decade": 120, "century": 1200, "millennium": 12000}


class TimeRangeError(ValueError):
    """A computed time falls outside years 1..9999."""


def sql_string(value: str) -> str:
    """A DuckDB string literal (standard strings: only the quote needs doubling)."""
    return "'" + value.replace("'", "''") + "'"


def sql_ident(name: str) -> str:
    """A double-quoted DuckDB identifier."""
    return '"' + name.replace('"', '""') + '"'


def kind_of(t: pa.DataType | None) -> str:
    """The PQL kind of an Arrow type: string, number, bool, date, timestamp, map, struct, list."""
    checks = (
        ("string", (pa.types.is_string, pa.types.is_large_string, pa.types.is_string_view)),
        ("bool", (pa.types.is_boolean,)),
        ("number", (pa.types.is_integer, pa.types.is_floating, pa.types.is_decimal)),
        ("date", (pa.types.is_date,)),
        ("timestamp", (pa.types.is_timestamp,)),
        ("map", (pa.types.is_map,)),
        ("struct", (pa.types.is_struct,)),
        ("list", (pa.types.is_list, pa.types.is_large_list, pa.types.is_fixed_size_list)),
    )
    if t is None:
        return "null"
    for kind, tests in checks:
        if any(test(t) for test in tests):
            return kind
    return str(t)


@dataclass(frozen=True)
class Value:
    """A compiled sub-expression: SQL text, PQL kind, Arrow type, constant value if known."""

    sql: str
    kind: str
    atype: pa.DataType | None = None
    const: Any = MISSING
    day: bool = False  # denotes a whole day (dates, today, date(...))
    pred: bool = False  # a two-valued boolean (never NULL)


@dataclass(frozen=True)
class Span:
    """A time reference: ``start`` and, for days and periods, ``end``; datetimes or SQL."""

    start: datetime | str
    end: datetime | str | None = None


def naive_utc(t: datetime) -> datetime:
    """``t`` as a naive UTC datetime (naive input is taken to be UTC already)."""
    return t.astimezone(UTC).replace(tzinfo=None) if t.tzinfo is not None else t


def as_datetime(value: date | datetime) -> datetime:
    """Midnight of a date; datetimes pass through."""
    if isinstance(value, datetime):
        return value
    return datetime(value.year, value.month, value.day)


def sql_time(t: datetime | str) -> str:
    """A ``TIMESTAMP`` literal for a datetime; SQL strings pass through."""
    if isinstance(t, str):
        return t
    return f"TIMESTAMP '{t.isoformat(sep=' ', timespec='microseconds')}'"


def date_value(d: date) -> Value:
    """A constant date (a whole day)."""
    return Value(f"DATE '{d.isoformat()}'", "date", pa.date32(), d, day=True)


def time_value(t: datetime) -> Value:
    """A constant naive-UTC timestamp."""
    return Value(sql_time(t), "timestamp", pa.timestamp("us"), t)


def _add_months(t: datetime, months: int) -> datetime:
    year, month0 = divmod(t.year * 12 + t.month - 1 + months, 12)
    if not 1 <= year <= 9999:
        raise TimeRangeError("time is out of range")
    last_day = calendar.monthrange(year, month0 + 1)[1]
    return t.replace(year=year, month=month0 + 1, day=min(t.day, last_day))


def shift(t: datetime | str, n: int, unit: str) -> datetime | str:
    """``t`` moved by ``n`` units; month-based units move calendar months, clamping the day."""
    if isinstance(t, str):
        if unit in _FIXED_UNITS:
            return f"({t} + to_{unit}s({n}))"
        return f"({t} + to_months({n * _MONTH_UNITS[unit]}))"
    if unit in _FIXED_UNITS:
        try:
            return t + n * _FIXED_UNITS[unit]
        except OverflowError:
            raise TimeRangeError("time is out of range") from None
    return _add_months(t, n * _MONTH_UNITS[unit])


def trunc(t: datetime | str, unit: str) -> datetime | str:
    """Start of the calendar ``unit`` holding ``t`` (weeks start on Monday, as in DuckDB)."""
    if isinstance(t, str):
        return f"date_trunc('{unit}', {t})"
    midnight = datetime(t.year, t.month, t.day)
    if unit == "week":
        try:
            return midnight - timedelta(days=t.weekday())
        except OverflowError:
            raise TimeRangeError("time is out of range") from None
    if unit in _FIXED_UNITS:
        step = _FIXED_UNITS[unit]
        return midnight + (t - midnight) // step * step
    months = _MONTH_UNITS[unit]
    index = (t.year * 12 + t.month - 1) // months * months
    if index < 12:
        raise TimeRangeError("time is out of range")
    return datetime(index // 12, index % 12 + 1, 1)


def period(now: datetime, which: str, unit: str) -> Span:
    """``this``, ``last`` or ``next`` calendar ``unit`` relative to ``now``."""
    base = trunc(now, unit)
    offset = {"last": -1, "this": 0, "next": 1}[which]
    return Span(shift(base, offset, unit), shift(base, offset + 1, unit))

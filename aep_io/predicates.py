"""Translate a polars predicate into a pyarrow expression, conjunct by conjunct.

polars hands an IO plugin its predicate as a ``pl.Expr``; the plugin must apply it (polars does
not re-apply it). aep_io always applies the polars predicate itself, and additionally hands the
translatable AND-conjuncts to pyarrow, which skips row groups by their statistics and drops
rows before they are converted. A conjunct that cannot be translated is simply left to polars:
translation never changes results, only how much is read.

Supported: columns and struct fields, comparisons, ``&``/``|``/``~``, ``is_null``/``is_not_null``,
literals (int, float, str, bool, and ``pl.datetime``/``pl.date`` constructors).

Example:
    >>> import polars as pl
    >>> str(to_arrow_filter((pl.col("a") > 5) & pl.col("s").struct.field("x").is_null()))
    '((a > 5) and is_null(FieldRef.Nested(FieldRef.Name(s) FieldRef.Name(x)), {nan_is_null=false}))'
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

import polars as pl
import pyarrow as pa

if TYPE_CHECKING:  # imported where a predicate is translated (~30 ms: most reads have none)
    import pyarrow.compute as pc

__all__ = ["to_arrow_filter"]

log = logging.getLogger("aep_io.predicates")

_COMPARE = {"Eq": "__eq__", "NotEq": "__ne__", "Lt": "__lt__", "LtEq": "__le__",
            "Gt": "__gt__", "GtEq": "__ge__"}


class _Untranslatable(Exception):
    pass


def _literal(node: dict[str, Any]) -> Any:
    lit = node["Literal"]
    inner = lit.get("Dyn") or lit.get("Scalar")
    if not isinstance(inner, dict) or len(inner) != 1:
        raise _Untranslatable(lit)
    ((kind, value),) = inner.items()
    if kind in ("Int", "Float", "String", "Boolean"):
        return value
    if kind.startswith(("Int", "UInt", "Float")) and isinstance(value, int | float):
        return value
    if kind == "Null":
        return None
    if kind == "List" and isinstance(value, list):  # a Series literal, as Arrow IPC bytes
        table = pa.ipc.open_stream(bytes(value)).read_all()
        return table.column(0).cast(_plain(table.column(0).type)).to_pylist()
    raise _Untranslatable(kind)


def _plain(t: pa.DataType) -> pa.DataType:
    if pa.types.is_string_view(t) or pa.types.is_large_string(t):
        return pa.string()
    if pa.types.is_binary_view(t) or pa.types.is_large_binary(t):
        return pa.binary()
    return t


def _field(node: Any) -> pc.Expression:
    import pyarrow.compute as pc

    if "Column" in node:
        return pc.field(node["Column"])
    fn = node.get("Function")
    if fn and isinstance(fn.get("function"), dict):
        struct = fn["function"].get("StructExpr")
        if isinstance(struct, dict) and "FieldByName" in struct:
            parent = _field(fn["input"][0])
            return pc.field(*_path(parent), struct["FieldByName"])
    raise _Untranslatable(node)


def _path(expr: pc.Expression) -> tuple[str, ...]:
    text = str(expr)
    if text.startswith("FieldRef.Nested("):
        names = text[len("FieldRef.Nested(") : -1].split(" ")
        return tuple(n[len("FieldRef.Name(") : -1] for n in names)
    return (text,)


def _temporal(node: dict[str, Any]) -> Any:
    fn = node["Function"]
    temporal = fn.get("function", {}).get("TemporalExpr", {})
    args = [_literal(a) for a in fn["input"] if "Literal" in a]
    if "DatetimeFunction" in temporal:
        zone = (temporal["DatetimeFunction"].get("time_zone") or {}).get("inner")
        if zone not in (None, "UTC"):
            raise _Untranslatable(zone)
        y, m, d, hh, mm, ss, us = (list(args[:7]) + [0] * 7)[:7]
        return datetime(y, m, d, hh, mm, ss, us, tzinfo=UTC if zone else None)
    if "DateFunction" in temporal or temporal == "Date":
        return date(*args[:3])
    raise _Untranslatable(temporal)


def _operand(node: Any) -> Any:
    if "Literal" in node:
        return _literal(node)
    if "Function" in node and "TemporalExpr" in node["Function"].get("function", {}):
        return _temporal(node)
    return _field(node)


def _translate(node: Any) -> pc.Expression:
    import pyarrow.compute as pc

    if "BinaryExpr" in node:
        b = node["BinaryExpr"]
        op = b["op"]
        if op in ("And", "LogicalAnd"):
            return _translate(b["left"]) & _translate(b["right"])
        if op in ("Or", "LogicalOr"):
            return _translate(b["left"]) | _translate(b["right"])
        if op in _COMPARE:
            left, right = _operand(b["left"]), _operand(b["right"])
            if not isinstance(left, pc.Expression):
                if not isinstance(right, pc.Expression):
                    raise _Untranslatable(node)
                flipped = {"Lt": "__gt__", "LtEq": "__ge__", "Gt": "__lt__", "GtEq": "__le__"}
                return getattr(right, flipped.get(op, _COMPARE[op]))(left)
            if right is None:
                raise _Untranslatable("comparison with null")
            return getattr(left, _COMPARE[op])(right)
        raise _Untranslatable(op)
    if "Function" in node:
        fn = node["Function"]
        boolean = fn.get("function", {}).get("Boolean")
        if boolean == "IsNull":
            return _field(fn["input"][0]).is_null()
        if boolean == "IsNotNull":
            return _field(fn["input"][0]).is_valid()
        if boolean == "Not":
            return ~_translate(fn["input"][0])
        if isinstance(boolean, dict) and "IsBetween" in boolean:
            target = _field(fn["input"][0])
            low, high = _literal(fn["input"][1]), _literal(fn["input"][2])
            if low is None or high is None:
                raise _Untranslatable("between null")
            closed = boolean["IsBetween"].get("closed", "Both")
            lower = target >= low if closed in ("Both", "Left") else target > low
            upper = target <= high if closed in ("Both", "Right") else target < high
            return lower & upper
        if isinstance(boolean, dict) and "IsIn" in boolean:
            values = _literal(fn["input"][1])
            if not isinstance(values, list) or any(v is None for v in values):
                raise _Untranslatable("is_in with nulls")
            return _field(fn["input"][0]).isin(values)
    raise _Untranslatable(node)


def _conjuncts(node: Any) -> list[Any]:
    b = node.get("BinaryExpr") if isinstance(node, dict) else None
    if b and b["op"] in ("And", "LogicalAnd"):
        return _conjuncts(b["left"]) + _conjuncts(b["right"])
    return [node]


def to_arrow_filter(predicate: pl.Expr | None) -> pc.Expression | None:
    """The AND of the translatable conjuncts of ``predicate``, or None when none is."""
    if predicate is None:
        return None
    try:
        tree = json.loads(predicate.meta.serialize(format="json"))
    except Exception as exc:
        log.debug("cannot serialize predicate %s: %s", predicate, exc)
        return None
    parts = []
    for conjunct in _conjuncts(tree):
        try:
            parts.append(_translate(conjunct))
        except (_Untranslatable, KeyError, TypeError, ValueError, IndexError) as exc:
            log.debug("conjunct left to polars: %s", exc)
    if not parts:
        return None
    result = parts[0]
    for part in parts[1:]:
        result = result & part
    return result

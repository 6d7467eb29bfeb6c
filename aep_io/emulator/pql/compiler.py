"""Compile a PQL AST to a DuckDB SQL boolean expression over one profile row.

Semantics (the emulator's reading of PQL):

* Two-valued logic: every predicate (comparison, ``in``, ``like``, string method, ``occurs``)
  is false when an operand is missing (NULL); ``not``/``!`` negates that two-valued result,
  so ``not (x = "a")`` is true for a missing ``x`` while ``x != "a"`` is false. ``notIn`` is
  false on a missing value (it is not the negation of ``in``).
* Times are compared as naive UTC timestamps: ``date32`` values mean midnight UTC,
  time-zone-aware timestamps are converted with ``timezone('UTC', ...)`` (independent of the
  DuckDB session time zone). ``now`` is the compile-time ``now``; ``today`` is the start of
  its UTC day; ``yesterday``/``tomorrow``/``date(Y, M, D)`` are whole days.
* ``occurs``: ``on T`` is inside T (a day, a period, or the instant), ``before T`` is before
  T starts, ``after T`` is after T ends, ``between T1 and T2`` spans from the start of T1 to
  the end of T2. ``<cmp> N unit before A`` (A = the start of the anchor) sets B = A - N units:
  ``<=`` is B <= x <= A, ``<`` is B < x <= A, ``>=`` is x <= B, ``>`` is x < B; ``=`` is the
  calendar unit holding B (``= 3 days before today`` is that day, ``= 5 hours before now`` that
  clock hour, ``= 20 years before today`` that calendar year) and ``!=`` any other non-null
  time. ``after``/``from`` mirror it (B = A + N units; ``<=`` is A <= x <= B...).
  ``this|last|next unit`` is the current/previous/next calendar period (weeks start on Monday).
  Months, years, decades, centuries and millennia use calendar months (day clamped).
* Arithmetic: ``/`` is real division; division or modulo by zero and integer overflow give
  a missing value (so the comparison is false) instead of failing the query.
* ``inSegment("id")``: the profile's ``segmentMembership`` entry for the namespace (matched
  case-insensitively) has the segment with status realized, existing or entering.
* ``xEvent`` is the ``timeSeriesEvents`` column; inside ``list[cond]`` bare names are fields
  of the element first.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, TypeVar

import pyarrow as pa

from aep_io.emulator.pql import parser as ast
from aep_io.emulator.pql.errors import PQLError
from aep_io.emulator.pql.parser import parse_pql
from aep_io.emulator.pql.values import (
    MISSING,
    Span,
    TimeRangeError,
    Value,
    as_datetime,
    date_value,
    kind_of,
    naive_utc,
    period,
    shift,
    sql_ident,
    sql_string,
    sql_time,
    time_value,
    trunc,
)

__all__ = ["compile_pql", "referenced_segments"]

_T = TypeVar("_T")

_MEMBER_STATUSES = ("realized", "existing", "entering")
_STRING_METHODS = {
    "contains": "contains({s}, {a})",
    "doesNotContain": "NOT contains({s}, {a})",
    "startsWith": "starts_with({s}, {a})",
    "doesNotStartWith": "NOT starts_with({s}, {a})",
    "endsWith": "ends_with({s}, {a})",
    "doesNotEndWith": "NOT ends_with({s}, {a})",
    "equals": "{s} = {a}",
    "notEqualTo": "{s} <> {a}",
}
_OTHER_METHODS = (
    "get isNull isNotNull count includes head keys values matches getYear getMonth "  # noqa: SIM905
    "getDayOfMonth".split()
)
_UNSUPPORTED = frozenset(
    "sum average min max topN bottomN distinct intersects intersection subsetOf supersetOf "  # noqa: SIM905
    "filter map groupBy regexGroup chain let select WHAT WHEN COUNT".split()
)
_FUNCTIONS = ("date", "inSegment", "currentYear", "currentMonth", "currentDayOfMonth", "if")


@dataclass
class _Frame:
    param: str
    elem: pa.DataType
    var: str | None  # quantifier variable; None for the implicit element of a filter


@dataclass
class _Compiler:
    text: str
    schema: pa.Schema
    now: datetime  # naive UTC
    ups: str
    members: Mapping[str, str] = field(default_factory=dict)
    frames: list[_Frame] = field(default_factory=list)
    lambdas: int = 0

    # ------------------------------------------------------------------ helpers
    def err(self, node: ast.Node | int, msg: str, hint: str | None = None) -> PQLError:
        pos = node if isinstance(node, int) else node.pos
        return PQLError(msg, text=self.text, position=pos, hint=hint)

    def show(self, node: ast.Node) -> str:
        if isinstance(node, ast.Name):
            return node.name
        if isinstance(node, ast.Field):
            return f"{self.show(node.obj)}.{node.name}"
        if isinstance(node, ast.Method):
            return f"{self.show(node.obj)}.{node.name}(...)"
        if isinstance(node, ast.Literal):
            return repr(node.value) if not isinstance(node.value, str) else f'"{node.value}"'
        return "the expression"

    def close(self, name: str, options: list[str], what: str, prefix: str = "") -> str:
        """A hint naming the closest options to ``name`` (or listing them)."""
        lower = {o.lower(): o for o in options}
        near = difflib.get_close_matches(name, options, n=3, cutoff=0.6)
        if name.lower() in lower and lower[name.lower()] not in near:
            near.insert(0, lower[name.lower()])
        if near:
            return "did you mean " + " or ".join(f'"{prefix}{n}"' for n in near) + "?"
        shown = ", ".join(options[:12]) + (", ..." if len(options) > 12 else "")
        return f"{what}: {shown}" if options else f"no {what}"

    def fresh(self) -> str:
        self.lambdas += 1
        return f"__pql_{self.lambdas}"

    def pred(self, v: Value, node: ast.Node) -> str:
        if v.pred:
            return v.sql
        if v.kind != "bool":
            raise self.err(node, f"{self.show(node)} is a {v.kind}, not a condition")
        return f"coalesce({v.sql}, false)"

    def ts(self, v: Value) -> str:
        """SQL for ``v`` as a naive UTC TIMESTAMP."""
        if v.const is not MISSING:
            return sql_time(as_datetime(v.const))
        if v.kind == "date":
            return f"CAST({v.sql} AS TIMESTAMP)"
        if v.kind == "string":
            return f"timezone('UTC', TRY_CAST({v.sql} AS TIMESTAMPTZ))"
        if isinstance(v.atype, pa.TimestampType) and v.atype.tz is not None:
            return f"timezone('UTC', {v.sql})"
        return v.sql

    def temporal(self, v: Value, node: ast.Node) -> Value:
        """Turn a string literal into a date/timestamp constant; other values pass through."""
        if v.kind != "string" or not isinstance(v.const, str):
            return v
        try:
            return date_value(date.fromisoformat(v.const))
        except ValueError:
            pass
        try:
            return time_value(naive_utc(datetime.fromisoformat(v.const)))
        except ValueError:
            raise self.err(node, f'"{v.const}" is not an ISO date or date-time') from None

    def pair(
        self, lv: Value, rv: Value, ln: ast.Node, rn: ast.Node, at: ast.Node
    ) -> tuple[str, str]:
        """SQL for two operands of a comparison, after checking and aligning their types."""
        temporal = {"date", "timestamp"}
        if lv.kind in temporal and rv.kind == "string":
            rv = self.temporal(rv, rn)
        elif rv.kind in temporal and lv.kind == "string":
            lv = self.temporal(lv, ln)
        kinds = {lv.kind, rv.kind}
        if kinds <= temporal or (kinds & temporal and "string" in kinds and len(kinds) == 2):
            if lv.kind == rv.kind == "date":
                return lv.sql, rv.sql
            return self.ts(lv), self.ts(rv)
        if lv.kind == rv.kind and lv.kind in ("string", "number", "bool"):
            return lv.sql, rv.sql
        raise self.err(
            at,
            f"cannot compare {self.show(ln)} ({lv.kind}) with {self.show(rn)} ({rv.kind})",
        )

    # ------------------------------------------------------------------ dispatch
    def expr(self, node: ast.Node) -> Value:
        method = getattr(self, "c_" + type(node).__name__.lower(), None)
        if method is None:  # pragma: no cover - every node type has a method
            raise self.err(node, f"unsupported construct {type(node).__name__}")
        return method(node)

    def c_literal(self, node: ast.Literal) -> Value:
        value = node.value
        if isinstance(value, bool):
            return Value("true" if value else "false", "bool", pa.bool_(), value, pred=True)
        if isinstance(value, str):
            return Value(sql_string(value), "string", pa.string(), value)
        if isinstance(value, int):
            if not -(2**63) <= value < 2**63:
                raise self.err(node, f"integer {value} is out of range")
            return Value(str(value), "number", pa.int64(), value)
        if not math.isfinite(value):
            raise self.err(node, "number is out of range")
        return Value(f"CAST({value!r} AS DOUBLE)", "number", pa.float64(), value)

    def c_timeword(self, node: ast.TimeWord) -> Value:
        if node.word == "now":
            return time_value(self.now)
        today = self.now.date() + timedelta(days={"today": 0, "yesterday": -1}.get(node.word, 1))
        return date_value(today)

    def c_array(self, node: ast.Array) -> Value:
        items = [self.expr(i) for i in node.items]
        if any(i.const is MISSING for i in items):
            raise self.err(node, "array literals may only hold literal values")
        return Value("[" + ", ".join(i.sql for i in items) + "]", "list", None)

    def c_name(self, node: ast.Name) -> Value:
        for frame in reversed(self.frames):
            if frame.var == node.name:
                return Value(frame.param, kind_of(frame.elem), frame.elem)
            if frame.var is None and pa.types.is_struct(frame.elem):
                idx = frame.elem.get_field_index(node.name)
                if idx >= 0:
                    t = frame.elem.field(idx).type
                    return Value(
                        f"struct_extract({frame.param}, {sql_string(node.name)})", kind_of(t), t
                    )
        name = node.name
        if name == "xEvent" and self.schema.get_field_index(name) < 0:
            name = "timeSeriesEvents"
            if self.schema.get_field_index(name) < 0:
                raise self.err(node, "xEvent needs a timeSeriesEvents column in the profile store")
        idx = self.schema.get_field_index(name)
        if idx < 0:
            raise self.err(
                node,
                f'unknown field "{name}"',
                self.close(name, self.schema.names, "profile fields are"),
            )
        t = self.schema.field(idx).type
        return Value(sql_ident(name), kind_of(t), t)

    def c_field(self, node: ast.Field) -> Value:
        obj = self.expr(node.obj)
        if obj.kind == "list" and pa.types.is_struct(getattr(obj.atype, "value_type", None)):
            elem = obj.atype.value_type
            if elem.get_field_index(node.name) >= 0:
                p, t = self.fresh(), elem.field(node.name).type
                lam = f"lambda {p}: struct_extract({p}, {sql_string(node.name)})"
                return Value(f"list_transform({obj.sql}, {lam})", "list", pa.list_(t))
            obj = Value(obj.sql, "struct", elem)  # report the unknown field below
        if obj.kind == "map":
            raise self.err(
                node,
                f"{self.show(node.obj)} is a map",
                f'use .get("{node.name}") to read its "{node.name}" entry',
            )
        if obj.kind != "struct":
            raise self.err(
                node, f'{self.show(node.obj)} is a {obj.kind}; it has no field "{node.name}"'
            )
        idx = obj.atype.get_field_index(node.name)
        if idx < 0:
            names = [f.name for f in obj.atype]
            prefix = self.show(node.obj)
            raise self.err(
                node,
                f'unknown field "{self.show(node)}"',
                self.close(node.name, names, f"fields of {prefix} are", prefix + "."),
            )
        t = obj.atype.field(idx).type
        return Value(f"struct_extract({obj.sql}, {sql_string(node.name)})", kind_of(t), t)

    # ------------------------------------------------------------------ methods
    def arity(self, node: ast.Method | ast.Call, low: int, high: int | None = None) -> None:
        high = low if high is None else high
        n = len(node.args)
        if not low <= n <= high:
            want = "no" if high == 0 else str(low) if low == high else f"{low} or {high}"
            plural = "" if want == "1" else "s"
            raise self.err(node, f"{node.name}() takes {want} argument{plural}, got {n}")

    def c_method(self, node: ast.Method) -> Value:
        name = node.name
        if name in _UNSUPPORTED:
            raise self.err(node, f".{name}() is not supported by the emulator")
        if name not in _STRING_METHODS and name not in _OTHER_METHODS:
            raise self.err(
                node,
                f'unknown method ".{name}()"',
                self.close(name, [*_STRING_METHODS, *_OTHER_METHODS], "methods are"),
            )
        obj = self.expr(node.obj)
        if name in ("isNull", "isNotNull"):
            self.arity(node, 0)
            return Value(
                f"({obj.sql} IS {'NOT ' if name == 'isNotNull' else ''}NULL)", "bool", pred=True
            )
        if name in _STRING_METHODS:
            return self.string_method(node, obj)
        if name == "matches":
            self.arity(node, 1)
            self.receiver(node, obj, "string")
            pattern = self.need(node, "string", node.args[0])
            return Value(
                f"coalesce(regexp_matches({obj.sql}, {pattern}), false)", "bool", pred=True
            )
        if name in ("getYear", "getMonth", "getDayOfMonth"):
            self.arity(node, 0)
            if obj.kind not in ("date", "timestamp"):
                raise self.err(
                    node,
                    f".{name}() needs a date or timestamp, "
                    f"but {self.show(node.obj)} is a {obj.kind}",
                )
            fn = {"getYear": "year", "getMonth": "month", "getDayOfMonth": "day"}[name]
            return Value(f"{fn}({self.ts(obj)})", "number", pa.int64())
        if name in ("get", "keys", "values"):
            self.receiver(node, obj, "map")
            if name != "get":
                self.arity(node, 0)
                t = obj.atype.key_type if name == "keys" else obj.atype.item_type
                return Value(f"map_{name}({obj.sql})", "list", pa.list_(t))
            self.arity(node, 1)
            key = self.need(node, "string", node.args[0])
            t = obj.atype.item_type
            return Value(f"map_extract_value({obj.sql}, {key})", kind_of(t), t)
        if not (name == "count" and obj.kind == "map"):
            self.receiver(node, obj, "list")
        if name == "count":
            self.arity(node, 0)
            fn = "cardinality" if obj.kind == "map" else "len"
            return Value(f"coalesce({fn}({obj.sql}), 0)", "number", pa.int64())
        if name == "head":
            self.arity(node, 0)
            t = getattr(obj.atype, "value_type", None)
            return Value(f"({obj.sql})[1]", kind_of(t), t)
        self.arity(node, 1)  # includes
        item = self.expr(node.args[0])
        return Value(f"coalesce(list_contains({obj.sql}, {item.sql}), false)", "bool", pred=True)

    def need(self, node: ast.Method, kind: str, arg: ast.Node) -> str:
        """SQL for argument ``arg`` of method ``node``, which must be of ``kind``."""
        value = self.expr(arg)
        if value.kind != kind:
            raise self.err(
                arg, f"the argument of .{node.name}() must be a {kind}, not a {value.kind}"
            )
        return value.sql

    def receiver(self, node: ast.Method, obj: Value, kind: str) -> None:
        if obj.kind != kind:
            raise self.err(
                node, f".{node.name}() needs a {kind}, but {self.show(node.obj)} is a {obj.kind}"
            )

    def string_method(self, node: ast.Method, obj: Value) -> Value:
        self.arity(node, 1, 2)
        self.receiver(node, obj, "string")
        arg = self.need(node, "string", node.args[0])
        subject = obj.sql
        if len(node.args) == 2:
            flag = node.args[1]
            if not (isinstance(flag, ast.Literal) and isinstance(flag.value, bool)):
                raise self.err(flag, f"the case flag of .{node.name}() must be true or false")
            if not flag.value:
                subject, arg = f"lower({subject})", f"lower({arg})"
        sql = _STRING_METHODS[node.name].format(s=subject, a=arg)
        return Value(f"coalesce(({sql}), false)", "bool", pred=True)

    # ------------------------------------------------------------------ functions
    def c_call(self, node: ast.Call) -> Value:
        name = node.name
        if name in _UNSUPPORTED:
            raise self.err(node, f"{name}() is not supported by the emulator")
        if name == "date":
            self.arity(node, 3)
            parts = [a.value if isinstance(a, ast.Literal) else None for a in node.args]
            if not all(type(p) is int for p in parts):
                raise self.err(node, "date() takes three whole numbers: date(year, month, day)")
            try:
                return date_value(date(*parts))  # type: ignore[arg-type]
            except ValueError as exc:
                raise self.err(node, f"invalid date: {exc}") from None
        if name == "inSegment":
            self.arity(node, 1)
            arg = node.args[0]
            if not (isinstance(arg, ast.Literal) and isinstance(arg.value, str)):
                raise self.err(arg, "inSegment() takes a segment id string")
            return Value(self.in_segment(node, arg.value), "bool", pred=True)
        if name in ("currentYear", "currentMonth", "currentDayOfMonth"):
            self.arity(node, 0)
            value = {
                "currentYear": self.now.year,
                "currentMonth": self.now.month,
                "currentDayOfMonth": self.now.day,
            }[name]
            return Value(str(value), "number", pa.int64(), value)
        if name == "if":
            self.arity(node, 3)
            test = self.pred(self.expr(node.args[0]), node.args[0])
            a, b = self.expr(node.args[1]), self.expr(node.args[2])
            if a.kind != b.kind:
                raise self.err(node, f"if() branches differ in type: {a.kind} and {b.kind}")
            return Value(f"(CASE WHEN {test} THEN {a.sql} ELSE {b.sql} END)", a.kind, a.atype)
        raise self.err(
            node,
            f'unknown function "{name}()"',
            self.close(name, list(_FUNCTIONS), "functions are"),
        )

    def in_segment(self, node: ast.Node, segment: str) -> str:
        if segment in self.members and self.ups.lower() == "ups":
            return f"coalesce({self.members[segment]}, false)"
        idx = self.schema.get_field_index("segmentMembership")
        t = self.schema.field(idx).type if idx >= 0 else None
        ok = (
            isinstance(t, pa.MapType)
            and isinstance(t.item_type, pa.MapType)
            and pa.types.is_struct(t.item_type.item_type)
            and t.item_type.item_type.get_field_index("status") >= 0
        )
        if not ok:
            raise self.err(
                node,
                "inSegment() needs a segmentMembership column of type "
                "map<string, map<string, struct<..., status>>>",
            )
        p = self.fresh()
        entry = f"map_extract_value(struct_extract({p}, 'value'), {sql_string(segment)})"
        statuses = ", ".join(sql_string(s) for s in _MEMBER_STATUSES)
        cond = (
            f"lower(struct_extract({p}, 'key')) = {sql_string(self.ups.lower())} AND "
            f"lower(struct_extract({entry}, 'status')) IN ({statuses})"
        )
        members = f'list_filter(map_entries("segmentMembership"), lambda {p}: {cond})'
        return f"coalesce(len({members}) > 0, false)"

    # ------------------------------------------------------------------ logic
    def c_not(self, node: ast.Not) -> Value:
        return Value(f"(NOT {self.pred(self.expr(node.operand), node.operand)})", "bool", pred=True)

    def c_boolop(self, node: ast.BoolOp) -> Value:
        parts = [self.pred(self.expr(o), o) for o in node.operands]
        return Value("(" + f" {node.op.upper()} ".join(parts) + ")", "bool", pred=True)

    def c_compare(self, node: ast.Compare) -> Value:
        lv, rv = self.expr(node.left), self.expr(node.right)
        left, right = self.pair(lv, rv, node.left, node.right, node)
        op = "<>" if node.op == "!=" else node.op
        return Value(f"coalesce(({left} {op} {right}), false)", "bool", pred=True)

    def c_membership(self, node: ast.Membership) -> Value:
        lv = self.expr(node.left)
        if not isinstance(node.right, ast.Array):
            rv = self.expr(node.right)
            if rv.kind != "list":
                raise self.err(
                    node,
                    f"{'notIn' if node.negated else 'in'} needs an array, "
                    f"but {self.show(node.right)} is a {rv.kind}",
                )
            test = f"list_contains({rv.sql}, {lv.sql})"
        else:
            items = [(self.expr(i), i) for i in node.right.items]
            for iv, inode in items:
                if iv.const is MISSING:
                    raise self.err(inode, "in [...] may only hold literal values")
            if not items:
                test = "false"
            else:
                pairs = [self.pair(lv, iv, node.left, inode, inode) for iv, inode in items]
                if len({left for left, _ in pairs}) > 1:  # mixed date/timestamp items
                    left = self.ts(self.temporal(lv, node.left))
                    pairs = [(left, self.ts(self.temporal(iv, i))) for iv, i in items]
                test = f"{pairs[0][0]} IN ({', '.join(right for _, right in pairs)})"
        if node.negated:
            return Value(
                f"coalesce(({lv.sql} IS NOT NULL AND NOT ({test})), false)", "bool", pred=True
            )
        return Value(f"coalesce(({test}), false)", "bool", pred=True)

    def c_like(self, node: ast.Like) -> Value:
        lv = self.expr(node.left)
        if lv.kind != "string":
            raise self.err(node, f"like needs a string, but {self.show(node.left)} is a {lv.kind}")
        pat = node.pattern
        if not (isinstance(pat, ast.Literal) and isinstance(pat.value, str)):
            raise self.err(pat, "the pattern of like must be a string literal")
        escaped = sql_string(pat.value.replace("\\", "\\\\"))  # backslash is not special in PQL
        return Value(f"coalesce(({lv.sql} LIKE {escaped} ESCAPE '\\'), false)", "bool", pred=True)

    # ------------------------------------------------------------------ arithmetic
    def number(self, node: ast.Node) -> str:
        v = self.expr(node)
        if v.kind != "number":
            raise self.err(node, f"arithmetic needs numbers, but {self.show(node)} is a {v.kind}")
        return v.sql

    def c_arith(self, node: ast.Arith) -> Value:
        a, b = self.number(node.left), self.number(node.right)
        if node.op == "/":
            sql = f"(CAST({a} AS DOUBLE) / NULLIF({b}, 0))"
        elif node.op == "%":
            sql = f"({a} % NULLIF({b}, 0))"
        else:  # TRY: an integer overflow gives NULL (false) instead of failing the query
            sql = f"TRY({a} {node.op} {b})"
        return Value(sql, "number", pa.float64())

    def c_neg(self, node: ast.Neg) -> Value:
        return Value(f"TRY(-{self.number(node.operand)})", "number", pa.float64())

    # ------------------------------------------------------------------ lists (tier 2)
    def elements(self, node: ast.Node) -> tuple[Value, pa.DataType]:
        v = self.expr(node)
        elem = getattr(v.atype, "value_type", None)
        if v.kind != "list" or elem is None:
            raise self.err(node, f"{self.show(node)} is a {v.kind}, not a list")
        return v, elem

    def c_filter(self, node: ast.Filter) -> Value:
        source, elem = self.elements(node.obj)
        p = self.fresh()
        self.frames.append(_Frame(p, elem, None))
        try:
            cond = self.pred(self.expr(node.cond), node.cond)
        finally:
            self.frames.pop()
        return Value(f"list_filter({source.sql}, lambda {p}: {cond})", "list", source.atype)

    def c_quantifier(self, node: ast.Quantifier) -> Value:
        source, elem = self.elements(node.source)
        p = self.fresh()
        self.frames.append(_Frame(p, elem, node.var))
        try:
            cond = self.pred(self.expr(node.cond), node.cond)
        finally:
            self.frames.pop()
        if node.kind == "exists":
            sql = f"coalesce(len(list_filter({source.sql}, lambda {p}: {cond})) > 0, false)"
        else:
            sql = f"coalesce(len(list_filter({source.sql}, lambda {p}: NOT {cond})) = 0, true)"
        return Value(sql, "bool", pred=True)

    # ------------------------------------------------------------------ occurs
    def span(self, node: ast.Node) -> Span:
        """The time reference ``node`` (now, today, date(...), a period or a path)."""
        if isinstance(node, ast.Period):
            return self.timed(node, period, self.now, node.which, node.unit)
        v = self.temporal(self.expr(node), node)
        if v.kind not in ("date", "timestamp"):
            raise self.err(node, f"{self.show(node)} is a {v.kind}, not a time")
        if v.const is not MISSING:
            start = as_datetime(v.const)
            return Span(start, self.timed(node, shift, start, 1, "day") if v.day else None)
        start_sql = self.ts(v)
        return Span(start_sql, f"({start_sql} + to_days(1))" if v.kind == "date" else None)

    def timed(self, node: ast.Node, fn: Callable[..., _T], *args: Any) -> _T:
        """``fn(*args)`` with a time out of range reported at ``node``."""
        try:
            return fn(*args)
        except TimeRangeError:
            raise self.err(node, "time is out of range") from None

    def c_occurs(self, node: ast.Occurs) -> Value:
        sv = self.temporal(self.expr(node.subject), node.subject)
        if sv.kind not in ("date", "timestamp", "string"):
            raise self.err(
                node,
                f"occurs needs a date or timestamp, but {self.show(node.subject)} is a {sv.kind}",
            )
        s = self.ts(sv)
        lit = sql_time
        a = self.span(node.anchor)
        if node.form == "on":
            cond = (
                f"{s} = {lit(a.start)}"
                if a.end is None
                else (f"{s} >= {lit(a.start)} AND {s} < {lit(a.end)}")
            )
        elif node.form == "before":
            cond = f"{s} < {lit(a.start)}"
        elif node.form == "after":
            cond = f"{s} > {lit(a.start)}" if a.end is None else f"{s} >= {lit(a.end)}"
        elif node.form == "between":
            assert node.end is not None
            b = self.span(node.end)
            upper = f"{s} <= {lit(b.start)}" if b.end is None else f"{s} < {lit(b.end)}"
            cond = f"{s} >= {lit(a.start)} AND {upper}"
        else:
            cond = self.relative(node, s, a.start)
        return Value(f"coalesce(({cond}), false)", "bool", pred=True)

    def relative(self, node: ast.Occurs, s: str, anchor: datetime | str) -> str:
        assert node.amount is not None and node.unit is not None
        n, unit, lit = node.amount, node.unit, sql_time
        sign = -1 if node.direction == "before" else 1
        a = lit(anchor)
        boundary = self.timed(node, shift, anchor, sign * n, unit)
        b = lit(boundary)
        start = self.timed(node, trunc, boundary, unit)  # the calendar unit holding the boundary
        slot = f"{s} >= {lit(start)} AND {s} < {lit(self.timed(node, shift, start, 1, unit))}"
        if node.cmp == "=":
            return slot
        if node.cmp == "!=":
            return f"{s} IS NOT NULL AND NOT ({slot})"
        if sign < 0:
            return {
                "<": f"{s} > {b} AND {s} <= {a}",
                "<=": f"{s} >= {b} AND {s} <= {a}",
                ">": f"{s} < {b}",
                ">=": f"{s} <= {b}",
            }[node.cmp]
        return {
            "<": f"{s} >= {a} AND {s} < {b}",
            "<=": f"{s} >= {a} AND {s} <= {b}",
            ">": f"{s} > {b}",
            ">=": f"{s} >= {b}",
        }[node.cmp]


# ---------------------------------------------------------------------- public API


def compile_pql(
    text: str, *, schema: pa.Schema, now: datetime, ups_namespace: str = "ups",
    members: Mapping[str, str] | None = None,
) -> str:
    """Compile PQL ``text`` to a DuckDB boolean SQL expression over one profile row.

    Args:
        text: the PQL expression.
        schema: Arrow schema of the profile store (the table or view the SQL runs against).
        now: the evaluation moment (naive values are read as UTC).
        ups_namespace: the ``segmentMembership`` namespace ``inSegment`` looks in (matched
            case-insensitively).
        members: segment id -> a boolean SQL expression saying whether the row's profile is a
            member, used by ``inSegment`` instead of looking in ``segmentMembership`` (for
            memberships the query computes itself, or keeps beside the store); only for the
            ``ups`` namespace.

    Returns:
        SQL that is never NULL, e.g. ``coalesce((...), false)``.

    Raises:
        PQLSyntaxError: ``text`` does not parse.
        PQLError: unknown field or method, wrong arity, mismatched types...
    """
    if not isinstance(now, datetime):
        raise TypeError(f"now must be a datetime, got {type(now).__name__}")
    node = parse_pql(text)
    compiler = _Compiler(text, schema, naive_utc(now), ups_namespace, dict(members or {}))
    value = compiler.expr(node)
    if value.kind != "bool":
        raise compiler.err(node, f"{compiler.show(node)} is a {value.kind}, not a condition")
    sql = compiler.pred(value, node)
    # predicate SQL starting with coalesce( is one coalesce call already
    return sql if value.pred and sql.startswith("coalesce(") else f"coalesce({sql}, false)"


def referenced_segments(text: str) -> set[str]:
    """The segment ids used by ``inSegment("...")`` in PQL ``text`` (parses, does not compile)."""
    return {
        n.args[0].value
        for n in ast.iter_nodes(parse_pql(text))
        if isinstance(n, ast.Call)
        and n.name == "inSegment"
        and len(n.args) == 1
        and isinstance(n.args[0], ast.Literal)
        and isinstance(n.args[0].value, str)
    }

"""Parse PQL text into a small typed AST (frozen dataclasses with source positions).

The grammar (:mod:`aep_io.emulator.pql.grammar`) is parsed with lark's LALR parser and
contextual lexer; lark errors are turned into :class:`PQLSyntaxError` with the line, column
and a readable list of what was expected. Every AST node has ``pos``, the 0-based character
offset used by the compiler to point at semantic errors.

Example::

    >>> from aep_io.emulator.pql.parser import parse_pql
    >>> parse_pql('homeAddress.countryCode = "US"')  # doctest: +ELLIPSIS
    Compare(pos=24, op='=', left=Field(pos=12, obj=Name(pos=0, name='homeAddress'), ...
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from lark import Lark, Token, Transformer, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, VisitError
from lark.exceptions import UnexpectedToken as LarkUnexpectedToken
from lark.lexer import PatternStr

from aep_io.emulator.pql.errors import PQLError, PQLSyntaxError
from aep_io.emulator.pql.grammar import GRAMMAR

__all__ = [
    "UNITS",
    "Arith",
    "Array",
    "BoolOp",
    "Call",
    "Compare",
    "Field",
    "Filter",
    "Like",
    "Literal",
    "Membership",
    "Method",
    "Name",
    "Neg",
    "Node",
    "Not",
    "Occurs",
    "Period",
    "Quantifier",
    "TimeWord",
    "iter_nodes",
    "parse_pql",
]

#: Time-unit words (singular and plural) -> canonical unit.
UNITS: dict[str, str] = {
    **{w: w for w in ("millisecond", "second", "minute", "hour", "day", "week", "month")},
    **{w + "s": w for w in ("millisecond", "second", "minute", "hour", "day", "week", "month")},
    "year": "year",
    "years": "year",
    "decade": "decade",
    "decades": "decade",
    "century": "century",
    "centuries": "century",
    "millennium": "millennium",
    "millennia": "millennium",
}


# --------------------------------------------------------------------------- AST


@dataclass(frozen=True)
class Node:
    """Base AST node; ``pos`` is the 0-based offset of the node (or its operator) in the text."""

    pos: int


@dataclass(frozen=True)
class Literal(Node):
    value: str | int | float | bool


@dataclass(frozen=True)
class TimeWord(Node):
    word: str  # now | today | yesterday | tomorrow


@dataclass(frozen=True)
class Array(Node):
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Name(Node):
    name: str


@dataclass(frozen=True)
class Field(Node):
    obj: Node
    name: str  # pos points at the field name


@dataclass(frozen=True)
class Method(Node):
    obj: Node
    name: str  # pos points at the method name
    args: tuple[Node, ...]


@dataclass(frozen=True)
class Call(Node):
    name: str
    args: tuple[Node, ...]


@dataclass(frozen=True)
class Filter(Node):
    obj: Node
    cond: Node


@dataclass(frozen=True)
class Not(Node):
    operand: Node


@dataclass(frozen=True)
class BoolOp(Node):
    op: str  # and | or
    operands: tuple[Node, ...]


@dataclass(frozen=True)
class Compare(Node):
    op: str  # = != < <= > >=
    left: Node
    right: Node


@dataclass(frozen=True)
class Membership(Node):
    negated: bool  # notIn
    left: Node
    right: Node


@dataclass(frozen=True)
class Like(Node):
    left: Node
    pattern: Node


@dataclass(frozen=True)
class Arith(Node):
    op: str  # + - * / %
    left: Node
    right: Node


@dataclass(frozen=True)
class Neg(Node):
    operand: Node


@dataclass(frozen=True)
class Period(Node):
    which: str  # this | last | next
    unit: str  # canonical unit


@dataclass(frozen=True)
class Occurs(Node):
    """``subject occurs ...``; ``form`` is relative, between, before, after or on.

    relative: ``subject occurs <cmp> <amount> <unit> <direction> <anchor>`` (direction is
    before or after; ``from`` is read as after). between: ``anchor`` and ``end``.
    before/after/on: ``anchor`` only.
    """

    subject: Node
    form: str
    anchor: Node
    end: Node | None = None
    cmp: str | None = None
    amount: int | None = None
    unit: str | None = None
    direction: str | None = None


@dataclass(frozen=True)
class Quantifier(Node):
    kind: str  # exists | forall
    var: str
    source: Node
    cond: Node


def iter_nodes(node: Node) -> Iterator[Node]:
    """Yield ``node`` and all nodes below it (depth first)."""
    yield node
    for value in vars(node).values():
        if isinstance(value, Node):
            yield from iter_nodes(value)
        elif isinstance(value, tuple):
            for item in value:
                if isinstance(item, Node):
                    yield from iter_nodes(item)


# --------------------------------------------------------------------------- tree -> AST

_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_ESCAPE_RE = re.compile(r"\\(u[0-9A-Fa-f]{4}|.)", re.S)


def _unquote(token: Token, text: str) -> str:
    """Decode a PQL string token; unknown escapes such as ``\\w`` are kept as written."""

    def repl(m: re.Match[str]) -> str:
        seq = m.group(1)
        if len(seq) == 5:
            return chr(int(seq[1:], 16))
        if seq == "u":
            raise PQLSyntaxError(
                "bad \\u escape in string",
                text=text,
                position=token.start_pos + 1 + m.start(),
                hint="expected four hex digits",
            )
        return _ESCAPES.get(seq, m.group(0))

    return _ESCAPE_RE.sub(repl, token.value[1:-1])


def _pos(item: Tree | Token | Node) -> int:
    if isinstance(item, Token):
        return item.start_pos or 0
    if isinstance(item, Node):
        return item.pos
    return item.meta.start_pos if not item.meta.empty else 0


class _ToAST(Transformer[Token, Node]):
    """Turn lark's parse tree into AST nodes (rule names are the grammar aliases)."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    # literals
    def string(self, c: list[Token]) -> Node:
        return Literal(_pos(c[0]), _unquote(c[0], self.text))

    def int(self, c: list[Token]) -> Node:
        return Literal(_pos(c[0]), int(c[0].value))

    def float(self, c: list[Token]) -> Node:
        return Literal(_pos(c[0]), float(c[0].value))

    def true(self, c: list[Token]) -> Node:
        return Literal(_pos(c[0]), True)

    def false(self, c: list[Token]) -> Node:
        return Literal(_pos(c[0]), False)

    def time_word(self, c: list[Token]) -> Node:
        return TimeWord(_pos(c[0]), c[0].value)

    def array(self, c: list[Any]) -> Node:
        return Array(_pos(c[0]), tuple(c[1] or ()))

    def args(self, c: list[Node]) -> list[Node]:
        return list(c)

    # paths and calls
    def name(self, c: list[Token]) -> Node:
        return Name(_pos(c[0]), c[0].value)

    def call(self, c: list[Any]) -> Node:
        return Call(_pos(c[0]), c[0].value, tuple(c[1] or ()))

    def field(self, c: list[Any]) -> Node:
        return Field(_pos(c[1]), c[0], c[1].value)

    def method(self, c: list[Any]) -> Node:
        return Method(_pos(c[1]), c[0], c[1].value, tuple(c[2] or ()))

    def filter(self, c: list[Any]) -> Node:
        return Filter(_pos(c[1]), c[0], c[2])

    # boolean logic
    def or_expr(self, c: list[Node]) -> Node:
        return BoolOp(_pos(c[0]), "or", tuple(c))

    def and_expr(self, c: list[Node]) -> Node:
        return BoolOp(_pos(c[0]), "and", tuple(c))

    def not_(self, c: list[Any]) -> Node:
        return Not(_pos(c[0]), c[1])

    def exists(self, c: list[Any]) -> Node:
        return Quantifier(_pos(c[0]), "exists", c[1].value, c[3], c[-1])

    def forall(self, c: list[Any]) -> Node:
        return Quantifier(_pos(c[0]), "forall", c[1].value, c[3], c[-1])

    # predicates
    def compare(self, c: list[Any]) -> Node:
        return Compare(_pos(c[1]), c[1].value, c[0], c[2])

    def in_(self, c: list[Any]) -> Node:
        return Membership(_pos(c[1]), False, c[0], c[2])

    def not_in(self, c: list[Any]) -> Node:
        return Membership(_pos(c[1]), True, c[0], c[2])

    def like(self, c: list[Any]) -> Node:
        return Like(_pos(c[1]), c[0], c[2])

    def arith(self, c: list[Any]) -> Node:
        return Arith(_pos(c[1]), c[1].value, c[0], c[2])

    def neg(self, c: list[Any]) -> Node:
        return Neg(_pos(c[0]), c[1])

    # occurs
    def _unit(self, token: Token) -> str:
        unit = UNITS.get(token.value)
        if unit is None:
            raise PQLSyntaxError(
                f'unknown time unit "{token.value}"',
                text=self.text,
                position=_pos(token),
                hint="expected one of millisecond(s), second(s), minute(s), hour(s), day(s), "
                "week(s), month(s), year(s), decade(s), century, centuries, millennium, millennia",
            )
        return unit

    def direction(self, c: list[Token]) -> str:
        return "after" if c[0].value == "from" else c[0].value

    def period(self, c: list[Token]) -> Node:
        return Period(_pos(c[0]), c[0].value, self._unit(c[1]))

    def occurs(self, c: list[Any]) -> Node:
        subject, token, spec = c
        form, fields = spec
        return Occurs(_pos(token), subject, form, **fields)

    def occurs_rel(self, c: list[Any]) -> tuple[str, dict[str, Any]]:
        cmp, amount, unit, direction, anchor = c
        return "relative", {
            "anchor": anchor,
            "cmp": cmp.value,
            "amount": int(amount.value),
            "unit": self._unit(unit),
            "direction": direction,
        }

    def occurs_between(self, c: list[Any]) -> tuple[str, dict[str, Any]]:
        return "between", {"anchor": c[1], "end": c[2]}

    def occurs_dir(self, c: list[Any]) -> tuple[str, dict[str, Any]]:
        return c[0], {"anchor": c[1]}

    def occurs_on(self, c: list[Any]) -> tuple[str, dict[str, Any]]:
        return "on", {"anchor": c[-1]}

    def start(self, c: list[Node]) -> Node:
        return c[0]


# --------------------------------------------------------------------------- errors

_OPERATORS = {
    "COMP_OP",
    "IN",
    "NOTIN",
    "LIKE",
    "OCCURS",
    "_AND",
    "_OR",
    "DOT",
    "LSQB",
    "LPAR",
    "PLUS",
    "MINUS",
    "STAR",
    "SLASH",
    "PERCENT",
}
_KEYWORDS = {
    k.lower(): k
    for k in (
        "and",
        "or",
        "not",
        "in",
        "notIn",
        "like",
        "occurs",
        "between",
        "before",
        "after",
        "from",
        "on",
        "this",
        "last",
        "next",
        "now",
        "today",
        "yesterday",
        "tomorrow",
        "true",
        "false",
        "exists",
        "forall",
        "where",
    )
}
_UNSUPPORTED_CHARS = {
    "'": "strings use double quotes",
    "$": "$n parameters are not supported by the emulator",
    "^": "the ^ (outer level) operator is not supported by the emulator",
}
_ARITH = {"PLUS", "MINUS", "STAR", "SLASH", "PERCENT"}
_FRIENDLY = {
    "$END": "end of input",
    "COMP_OP": "a comparison operator",
    "NAME": "a name",
    "STRING": "a string",
    "INT": "a whole number",
    "FLOAT": "a number",
}


_LARK_OPTIONS: dict[str, Any] = {"parser": "lalr", "lexer": "contextual",
                                 "propagate_positions": True}


def _lark_cache_file() -> Path:
    """Where the analysed grammar is kept between processes (the user's cache directory)."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "aep_io" / "pql-parser.lark"


@cache
def _lark() -> Lark:
    """The PQL parser. Building it (grammar analysis, LALR tables) takes 50-100 ms, a large
    part of a fresh process's first evaluation; lark's own cache (``cache=path``: the tables,
    stamped with a digest of the grammar, the options and the lark and Python versions, which
    lark checks before using them) loads them in ~7 ms. The file lives in the user's cache
    directory (:func:`_lark_cache_file`); when it cannot be read or written, lark builds the
    parser as if there were no cache."""
    path = _lark_cache_file()
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
    return Lark(GRAMMAR, **_LARK_OPTIONS, cache=str(path))


@cache
def _terminal_text() -> dict[str, str]:
    terminals = _lark().terminals
    return {t.name: f'"{t.pattern.value}"' for t in terminals if isinstance(t.pattern, PatternStr)}


def _expected(names: set[str]) -> str:
    """A short English list of what the parser would have accepted."""
    names = set(names)
    if "STRING" in names:
        return "expected a value"
    words: list[str] = []
    if names & {"COMP_OP", "_AND", "_OR"} and len(names & _OPERATORS) > 3:
        names -= _OPERATORS
        words.append("an operator")
    elif names >= _ARITH:
        names -= _ARITH
        words.append("an arithmetic operator")
    text = _terminal_text()
    for name in sorted(names, key=lambda n: (n == "$END", n)):
        words.append(_FRIENDLY.get(name) or text.get(name) or name.strip("_").lower())
    if len(words) > 1:
        return "expected " + ", ".join(words[:-1]) + " or " + words[-1]
    return "expected " + (words[0] if words else "something else")


def _accepts_at(text: str, pos: int) -> set[str]:
    """Terminals the parser accepts after ``text[:pos]`` (empty if that cannot be told)."""
    try:
        interactive = _lark().parse_interactive(text[:pos])
        interactive.exhaust_lexer()
        return set(interactive.accepts())
    except UnexpectedInput:
        return set()


def _syntax_error(exc: UnexpectedInput, text: str) -> PQLSyntaxError:
    if isinstance(exc, UnexpectedCharacters):
        pos = exc.pos_in_stream
        char = text[pos] if pos < len(text) else ""
        if char == '"':
            return PQLSyntaxError(
                "unterminated string", text=text, position=pos, hint="expected a closing quote"
            )
        expected = _accepts_at(text, pos) or set(exc.allowed or ())
        hint = _UNSUPPORTED_CHARS.get(char) or _expected(expected)
        return PQLSyntaxError(f"unexpected character {char!r}", text=text, position=pos, hint=hint)
    if isinstance(exc, LarkUnexpectedToken) and exc.token.type != "$END":
        token = exc.token
        value = token.value if len(token.value) <= 40 else token.value[:37] + "..."
        shown = value if token.type == "STRING" else f'"{value}"'
        keyword = _KEYWORDS.get(value.lower()) if token.type == "NAME" else None
        before = re.search(r"([A-Za-z]+)\s*$", text[: token.start_pos or 0])
        if keyword and keyword != value:
            hint = f'keywords are case-sensitive: write "{keyword}"'
        elif before and before.group(1) in ("select", "let"):
            hint = f'"{before.group(1)}" expressions are not supported by the emulator'
        else:
            hint = _expected(set(exc.accepts or exc.expected or ()))
        return PQLSyntaxError(
            f"unexpected token {shown}", text=text, position=token.start_pos or 0, hint=hint
        )
    expected: set[str] = set(getattr(exc, "accepts", None) or getattr(exc, "expected", ()) or ())
    return PQLSyntaxError(
        "unexpected end of input", text=text, position=len(text), hint=_expected(expected)
    )


def parse_pql(text: str) -> Node:
    """Parse PQL ``text`` into an AST; raise :class:`PQLSyntaxError` if it is not valid PQL.

    Results are cached (the AST is immutable): a segment job lists a definition's
    ``inSegment`` references and then compiles it, and definitions are evaluated many times.
    """
    if not isinstance(text, str):
        raise TypeError(f"PQL text must be a str, got {type(text).__name__}")
    return _parse(text)


@lru_cache(maxsize=1024)
def _parse(text: str) -> Node:
    # Errors are raised outside the ``except`` blocks: an exception raised inside one keeps the
    # lark exception as ``__context__``, and pickling helpers that carry the context along
    # (tblib, installed by distributed) then fail on lark's parser state.
    error: PQLError | None = None
    try:
        tree = _lark().parse(text)
    except (UnexpectedCharacters, LarkUnexpectedToken, UnexpectedEOF) as exc:
        error = _syntax_error(exc, text)
    if error is not None:
        raise error
    try:
        return _ToAST(text).transform(tree)
    except VisitError as exc:
        if not isinstance(exc.orig_exc, PQLError):
            raise
        error = exc.orig_exc
    error.__context__ = None
    raise error

"""Errors raised by the PQL parser and compiler.

Both carry the position of the problem in the PQL text (``position`` is a 0-based character
offset, ``line`` and ``column`` are 1-based) and render a caret line under the offending text::

    unexpected token ")" at line 1, column 27: expected a value
      homeAddress.countryCode = )
                                ^
"""

from __future__ import annotations

__all__ = ["PQLError", "PQLSyntaxError", "locate"]


def locate(text: str, position: int) -> tuple[int, int]:
    """The 1-based ``(line, column)`` of the 0-based character offset ``position`` in ``text``."""
    position = max(0, min(position, len(text)))
    line = text.count("\n", 0, position) + 1
    line_start = text.rfind("\n", 0, position) + 1
    return line, position - line_start + 1


def _caret(text: str, position: int) -> str:
    """The source line holding ``position`` and a caret under it, both indented two spaces."""
    position = max(0, min(position, len(text)))
    start = text.rfind("\n", 0, position) + 1
    end = text.find("\n", position)
    source = text[start : len(text) if end < 0 else end]
    # keep tabs so the caret lines up with what a terminal shows
    pad = "".join(ch if ch == "\t" else " " for ch in source[: position - start])
    return f"  {source}\n  {pad}^"


class PQLError(ValueError):
    """A PQL expression that cannot be compiled (unknown field or method, wrong types...).

    Attributes:
        message: the bare message (headline and hint), without position or caret line.
        headline: what is wrong, e.g. ``unexpected token ")"``.
        hint: what would be right, e.g. ``expected a value`` (or ``None``).
        text: the PQL text (or ``None`` when unknown).
        position: 0-based character offset of the problem in ``text`` (or ``None``).
        line: 1-based line of ``position`` (or ``None``).
        column: 1-based column of ``position`` (or ``None``).
    """

    def __init__(
        self,
        message: str,
        *,
        text: str | None = None,
        position: int | None = None,
        hint: str | None = None,
    ):
        self.headline = message
        self.hint = hint
        self.message = f"{message}: {hint}" if hint else message
        self.text = text
        self.position = position
        self.line: int | None = None
        self.column: int | None = None
        if text is not None and position is not None:
            self.line, self.column = locate(text, position)
        super().__init__(self._render())

    def _render(self) -> str:
        if self.text is None or self.position is None:
            return self.message
        body = f"{self.headline} at line {self.line}, column {self.column}"
        if self.hint:
            body += f": {self.hint}"
        return f"{body}\n{_caret(self.text, self.position)}"

    def __reduce__(self) -> tuple[object, ...]:  # keep keyword arguments when pickled
        return (_rebuild, (type(self), self.headline, self.text, self.position, self.hint))


class PQLSyntaxError(PQLError):
    """PQL text that does not parse. A :class:`PQLError`, hence a :class:`ValueError`."""


def _rebuild(
    cls: type[PQLError], message: str, text: str | None, position: int | None, hint: str | None
) -> PQLError:
    return cls(message, text=text, position=position, hint=hint)

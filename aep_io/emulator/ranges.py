"""HTTP ``Range`` header parsing (RFC 9110 §14) for single byte ranges.

Example:
    >>> parse_range("bytes=0-99", 1000), parse_range("bytes=-8", 1000), parse_range(None, 10)
    ((0, 99), (992, 999), None)
"""

from __future__ import annotations

import re

__all__ = ["RangeNotSatisfiable", "parse_range"]

_RANGE = re.compile(r"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)


class RangeNotSatisfiable(Exception):
    """The range lies wholly outside the resource: answer 416 with ``bytes */size``."""


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive ``(first, last)`` byte positions to serve, or None to serve the whole file.

    A missing, malformed or multi-range header is ignored (the whole file is served, as RFC 9110
    allows). A range starting at or past the end, or an empty suffix, is unsatisfiable.
    """
    if header is None:
        return None
    match = _RANGE.match(header)
    if match is None:
        return None
    first_text, last_text = match.groups()
    if not first_text and not last_text:
        return None
    if not first_text:  # suffix: the last N bytes
        suffix = int(last_text)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable
        return (max(0, size - suffix), size - 1)
    first = int(first_text)
    if last_text:
        last = int(last_text)
        if last < first:
            return None  # syntactically invalid: ignore the header
    else:
        last = size - 1
    if first >= size:
        raise RangeNotSatisfiable
    return (first, min(last, size - 1))

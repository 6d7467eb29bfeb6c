"""PQL (Adobe Experience Platform Profile Query Language) for the local AEP emulator.

:func:`compile_pql` turns a segment definition's ``pql/text`` into a DuckDB boolean SQL
expression over one row of the profile store (a table or view whose columns follow the given
Arrow schema). :func:`referenced_segments` lists the segment ids a definition uses through
``inSegment``, so segments of segments can be evaluated in order. Invalid text raises
:class:`PQLSyntaxError`; valid text that does not fit the schema raises :class:`PQLError`
(both are ``ValueError``\\ s with ``line``, ``column`` and ``position``).

Supported: literals (strings, numbers, booleans, ``date(Y, M, D)``, arrays), dotted paths,
``.get("key")`` on maps, ``= != < <= > >=``, ``and``/``or``/``not``/``!``, ``in``/``notIn``,
``like``, string methods with the case flag, ``isNull``/``isNotNull``, ``+ - * / %``,
``occurs`` (relative, ``between``, ``before``/``after``/``on``, ``this|last|next unit``),
``inSegment``, and from tier 2 ``xEvent[cond]``/``.count()``, ``exists``/``forall ... from
... where``, ``.includes``, ``.head()``, ``.matches``, ``getYear``-style methods and ``if``.

Example::

    >>> from datetime import datetime, UTC
    >>> import duckdb
    >>> from aep_io.emulator.pql import compile_pql
    >>> from aep_io.emulator.synthetic import SyntheticSpec, generate_table
    >>> profiles = generate_table(SyntheticSpec(profiles=100))
    >>> where = compile_pql('homeAddress.countryCode in ["US", "CA"] and '
    ...                     'person.birthDate occurs <= 30 years before now',
    ...                     schema=profiles.schema, now=datetime(2026, 11, 1, tzinfo=UTC))
    >>> duckdb.sql(f"SELECT count(*) FROM profiles WHERE {where}").fetchall()[0][0] > 0
    True
"""

from aep_io.emulator.pql.compiler import compile_pql, referenced_segments
from aep_io.emulator.pql.errors import PQLError, PQLSyntaxError
from aep_io.emulator.pql.parser import parse_pql

__all__ = ["PQLError", "PQLSyntaxError", "compile_pql", "parse_pql", "referenced_segments"]

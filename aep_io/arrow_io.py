"""Arrow streams and tables over export batches (pandas users: ``read_arrow(...).to_pandas()``).

Example:
    >>> # reader = to_arrow_batch_reader("01JBATCH...", columns=["identityMap"])
    >>> # for batch in reader: ...
    >>> # table = read_arrow("01JBATCH...", filter=pc.field("_acme", "loyaltyTier") == "gold")
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import fields
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from fsspec.spec import AbstractFileSystem

from aep_io.client import AEPClient
from aep_io.planning import BatchFile
from aep_io.reader import ReadOptions, iter_record_batches, to_record_batch_reader
from aep_io.settings import Settings
from aep_io.sources import Source

if TYPE_CHECKING:  # pyarrow.compute costs ~30 ms to import; only filters need it
    import pyarrow.compute as pc

__all__ = ["read_arrow", "to_arrow_batch_reader"]


def _source(
    batches: str | BatchFile | Iterable[str | BatchFile],
    client: AEPClient | None,
    settings: Settings | None,
    filesystem: AbstractFileSystem | None,
    storage_options: dict[str, Any] | None,
) -> Source:
    return Source.of(batches, client=client, settings=settings, filesystem=filesystem,
                     storage_options=storage_options)


def _pa_expression() -> type:
    import pyarrow.compute  # only when a filter is given (an import of ~30 ms)

    return pyarrow.compute.Expression


def _options(columns: Sequence[str] | None, filter: pc.Expression | None, limit: int | None,
             options: dict[str, Any]) -> ReadOptions:
    """The read options, or a TypeError/ValueError naming the argument that is wrong."""
    if isinstance(columns, str) or (columns is not None and (
            not isinstance(columns, Iterable) or not all(isinstance(c, str) for c in columns))):
        hint = f" (did you mean [{columns!r}]?)" if isinstance(columns, str) else ""
        raise TypeError(f"columns must be a list of column names, not {columns!r:.80}{hint}")
    if columns is not None and not columns:
        raise ValueError("columns=[] selects nothing: give column names, or None for all")
    if filter is not None and not isinstance(filter, _pa_expression()):
        raise TypeError(f"filter must be a pyarrow.compute expression, e.g. "
                        f"pc.field('x') == 1, not {type(filter).__name__} {filter!r:.60}")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)):
        raise TypeError(f"limit must be an integer (or None), not {type(limit).__name__}")
    unknown = set(options) - {f.name for f in fields(ReadOptions)}
    if unknown:
        raise TypeError(f"unknown read option(s) {', '.join(sorted(unknown))}; the options are "
                        f"{', '.join(f.name for f in fields(ReadOptions))}")
    return ReadOptions(columns=None if columns is None else list(columns), filter=filter,
                       limit=limit, **options)


@contextmanager
def _missing_columns_named(filter: pc.Expression | None) -> Iterator[None]:
    """Turn pyarrow's "No match for FieldRef" for the filter into a ValueError that says so."""
    try:
        yield
    except pa.ArrowInvalid as exc:
        if filter is None or "No match for FieldRef" not in str(exc):
            raise
        said = str(exc).split(" in ", 1)[0]
        raise ValueError(f"the filter {filter} names a column the files do not have ({said}); "
                         "check the name against the schema") from None


def _named(reader: pa.RecordBatchReader, filter: pc.Expression | None) -> Iterator[pa.RecordBatch]:
    with _missing_columns_named(filter):
        yield from reader


def to_arrow_batch_reader(
    batches: str | BatchFile | Iterable[str | BatchFile],
    *,
    columns: Sequence[str] | None = None,
    filter: pc.Expression | None = None,
    limit: int | None = None,
    client: AEPClient | None = None,
    settings: Settings | None = None,
    filesystem: AbstractFileSystem | None = None,
    storage_options: dict[str, Any] | None = None,
    **options: Any,
) -> pa.RecordBatchReader:
    """A streaming ``pyarrow.RecordBatchReader`` (bounded memory; reads the first footer now).

    ``options`` go to :class:`~aep_io.reader.ReadOptions` (``max_inflight``, ``io_threads``,
    ``batch_size``).
    """
    source = _source(batches, client, settings, filesystem, storage_options)
    opts = _options(columns, filter, limit, options)
    with _missing_columns_named(filter):
        reader = to_record_batch_reader(source, opts)
    if filter is None:
        return reader
    return pa.RecordBatchReader.from_batches(reader.schema, _named(reader, filter))


def read_arrow(
    batches: str | BatchFile | Iterable[str | BatchFile],
    *,
    columns: Sequence[str] | None = None,
    filter: pc.Expression | None = None,
    limit: int | None = None,
    client: AEPClient | None = None,
    settings: Settings | None = None,
    filesystem: AbstractFileSystem | None = None,
    storage_options: dict[str, Any] | None = None,
    **options: Any,
) -> pa.Table:
    """Read the batches (or URLs) into one Arrow table."""
    source = _source(batches, client, settings, filesystem, storage_options)
    opts = _options(columns, filter, limit, options)
    with _missing_columns_named(filter):
        batches_read = list(iter_record_batches(source, opts))
        if batches_read:
            return pa.Table.from_batches(batches_read)
        return to_record_batch_reader(source, opts).read_all()

"""Arrow streams and tables over export batches (pandas users: ``read_arrow(...).to_pandas()``).

Example:
    >>> # reader = to_arrow_batch_reader("01JBATCH...", columns=["identityMap"])
    >>> # for batch in reader: ...
    >>> # table = read_arrow("01JBATCH...", filter=pc.field("_acme", "loyaltyTier") == "gold")
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from fsspec.spec import AbstractFileSystem

from aep_io.client import AEPClient
from aep_io.planning import BatchFile
from aep_io.reader import ReadOptions, iter_record_batches, to_record_batch_reader
from aep_io.settings import Settings
from aep_io.sources import Source

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
    return to_record_batch_reader(
        source, ReadOptions(columns=columns, filter=filter, limit=limit, **options)
    )


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
    opts = ReadOptions(columns=columns, filter=filter, limit=limit, **options)
    batches_read = list(iter_record_batches(source, opts))
    if batches_read:
        return pa.Table.from_batches(batches_read)
    return to_record_batch_reader(source, opts).read_all()

"""DuckDB over export batches: lazy views with pushdown, and ``aep://`` in plain SQL.

:func:`to_duckdb` registers a view backed by a pyarrow dataset over the files: DuckDB pushes
projection and filters into it, so a query reads only the column chunks (and row groups) it
needs. :func:`register` installs the ``aep://`` filesystem so that SQL can name batches
directly: ``SELECT ... FROM read_parquet('aep://<batch>/*/*.parquet')``.

Example:
    >>> # con = to_duckdb(["01JBATCH..."], name="audience")
    >>> # con.sql("SELECT count(*) FROM audience WHERE homeAddress.countryCode = 'US'")
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa
from fsspec.spec import AbstractFileSystem

from aep_io.client import AEPClient
from aep_io.filesystem import AEPFileSystem
from aep_io.planning import BatchFile
from aep_io.reader import CorruptFileError
from aep_io.settings import Settings
from aep_io.sources import Source

if TYPE_CHECKING:  # imported when a view is made: pyarrow.dataset imports pandas (~0.2 s)
    import pyarrow.dataset as pads

__all__ = ["register", "to_dataset", "to_duckdb"]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def to_dataset(source: Source) -> pads.Dataset:
    """A pyarrow dataset over the source's files (resolves the file list, reads no data)."""
    import pyarrow.dataset as pads

    files = source.files()
    if not files:
        raise FileNotFoundError(f"{source.description}: no parquet files to read")
    filesystems = {id(f.fs): f.fs for f in files}
    try:
        if len(filesystems) > 1:
            return pads.dataset(
                [pads.dataset([f.path], filesystem=f.fs, format="parquet") for f in files]
            )
        fs = files[0].fs
        fmt = pads.ParquetFileFormat(
            default_fragment_scan_options=pads.ParquetFragmentScanOptions(pre_buffer=True)
        )
        return pads.dataset([f.path for f in files], filesystem=fs, format=fmt)
    except pa.ArrowInvalid as exc:  # not parquet: the same error as the other readers give
        raise CorruptFileError(f"{source.description}: {str(exc).splitlines()[0]}") from None


def to_duckdb(
    batches: str | BatchFile | Iterable[str | BatchFile],
    con: duckdb.DuckDBPyConnection | None = None,
    *,
    name: str = "audience",
    client: AEPClient | None = None,
    settings: Settings | None = None,
    filesystem: AbstractFileSystem | None = None,
    storage_options: dict[str, Any] | None = None,
) -> duckdb.DuckDBPyConnection:
    """Register a view ``name`` over the batches (or URLs) in ``con``; returns the connection.

    The file list is resolved now; no data is read until a query runs, and then only what the
    query needs (projection and filter pushdown into the pyarrow dataset).

    Example:
        >>> # con = to_duckdb("01JBATCH...", name="audience")
        >>> # con.sql("SELECT homeAddress.countryCode, count(*) FROM audience GROUP BY 1")
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str (the view's name), not {type(name).__name__}")
    if not _NAME.match(name):
        raise ValueError(f"view name {name!r} must be a plain SQL identifier")
    con = con if con is not None else duckdb.connect()
    source = Source.of(batches, client=client, settings=settings, filesystem=filesystem,
                       storage_options=storage_options)
    con.register(name, to_dataset(source))
    return con


def register(
    con: duckdb.DuckDBPyConnection,
    *,
    client: AEPClient | None = None,
    settings: Settings | None = None,
    filesystem: AEPFileSystem | None = None,
) -> AEPFileSystem:
    """Make ``aep://`` paths readable in ``con`` (``read_parquet('aep://<batch>/*/*.parquet')``).

    Returns the registered filesystem (its listings are cached per batch).
    """
    fs = filesystem or AEPFileSystem(client if client is not None else AEPClient(settings))
    con.register_filesystem(fs)
    return fs

"""DuckDB over export batches: lazy views with pushdown, and ``aep://`` in plain SQL.

:func:`to_duckdb` defines a view over the files. Over export batches it is DuckDB's own parquet
reader on ``aep://`` paths, so a query reads only the leaf column chunks (and row groups) it
needs and DuckDB decodes the maps itself; over other locations it is a pyarrow dataset, into
which DuckDB pushes projection and filters. :func:`register` installs the ``aep://`` filesystem
so that SQL can name batches directly: ``SELECT ... FROM read_parquet('aep://<batch>/*/*.parquet')``.

Example:
    >>> # con = to_duckdb(["01JBATCH..."], name="audience")
    >>> # con.sql("SELECT count(*) FROM audience WHERE homeAddress.countryCode = 'US'")
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa
from fsspec.spec import AbstractFileSystem

from aep_io.client import AEPClient
from aep_io.filesystem import AEPFileSystem
from aep_io.planning import BatchFile
from aep_io.reader import CorruptFileError, _OpenFile
from aep_io.settings import Settings
from aep_io.sources import ScanFile, Source

if TYPE_CHECKING:  # imported when a view is made: pyarrow.dataset imports pandas (~0.2 s)
    import pyarrow.dataset as pads

__all__ = ["register", "to_dataset", "to_duckdb"]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# The aep filesystem aep_io registered in each connection (DuckDB cannot say which one it holds).
_REGISTERED: weakref.WeakKeyDictionary[duckdb.DuckDBPyConnection, AEPFileSystem] = (
    weakref.WeakKeyDictionary()
)


def _aep_filesystem_of(con: duckdb.DuckDBPyConnection) -> AEPFileSystem | None:
    """The aep filesystem aep_io registered in ``con``, if it is still the registered one."""
    fs = _REGISTERED.get(con)
    return fs if fs is not None and con.filesystem_is_registered(fs.protocol) else None


def _native_view(con: duckdb.DuckDBPyConnection, name: str, files: list[ScanFile]) -> bool:
    """Define ``name`` as DuckDB's ``read_parquet`` over the files when they are all on one
    aep filesystem that ``con`` holds or can hold; False when not (other locations, or an aep
    filesystem of another client already registered)."""
    fs = files[0].fs
    if not isinstance(fs, AEPFileSystem) or any(f.fs is not fs for f in files):
        return False
    if _aep_filesystem_of(con) is not fs:
        if con.filesystem_is_registered(fs.protocol):
            return False
        con.register_filesystem(fs)
        _REGISTERED[con] = fs
    try:
        source = read_parquet_sql(files)
        con.execute(f'CREATE OR REPLACE TEMP VIEW "{name}" AS SELECT * FROM {source}')
    except duckdb.Error as exc:  # binding reads every footer
        _raise_unreadable(files)
        raise exc from None  # every footer reads fine: DuckDB's own complaint, as it is
    return True


def read_parquet_sql(files: list[ScanFile]) -> str:
    """DuckDB's ``read_parquet`` over the files' URLs, columns matched by name across files
    (the connection must hold their filesystems: :func:`register`)."""
    paths = ", ".join("'" + f.display.replace("'", "''") + "'" for f in files)
    return f"read_parquet([{paths}], union_by_name = true)"


def _raise_unreadable(files: list[ScanFile]) -> None:
    """Raise what is wrong with the first file whose footer cannot be read (DuckDB's errors
    name neither the file nor aep_io's error): the reader's own footer check, which raises
    CorruptFileError naming the file, or the failed request's error."""
    for f in files:
        _OpenFile(f)


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
    """Define a view ``name`` over the batches (or URLs) in ``con``; returns the connection.

    The file list is resolved now and the footers are read; no data is read until a query
    runs, and then only what the query needs. Over export batches (``aep://``) the view is
    DuckDB's own ``read_parquet`` (a temporary view: it is not saved in a database file), which
    reads single leaves of nested columns and decodes maps natively; the connection then holds
    the batches' ``aep`` filesystem (:func:`register`). Other locations, or a connection that
    already holds an ``aep`` filesystem of another client, get a view over a pyarrow dataset
    (projection and filter pushdown by top-level column).

    Example:
        >>> # con = to_duckdb("01JBATCH...", name="audience")
        >>> # con.sql("SELECT homeAddress.countryCode, count(*) FROM audience GROUP BY 1")
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str (the view's name), not {type(name).__name__}")
    if not _NAME.match(name):
        raise ValueError(f"view name {name!r} must be a plain SQL identifier")
    con = con if con is not None else duckdb.connect()
    held = _aep_filesystem_of(con)
    if filesystem is None and held is not None and settings is None and (
            client is None or client is held.client):
        filesystem = held  # the batches' listings land in the filesystem DuckDB already holds
    source = Source.of(batches, client=client, settings=settings, filesystem=filesystem,
                       storage_options=storage_options)
    files = source.files()
    if not (files and _native_view(con, name, files)):
        con.register(name, to_dataset(source))  # which says so when there are no files
    return con


def register(
    con: duckdb.DuckDBPyConnection,
    *,
    client: AEPClient | None = None,
    settings: Settings | None = None,
    filesystem: AEPFileSystem | None = None,
) -> AEPFileSystem:
    """Make ``aep://`` paths readable in ``con`` (``read_parquet('aep://<batch>/*/*.parquet')``).

    Returns the registered filesystem (its listings are cached per batch). When ``con`` already
    holds one that aep_io registered (by an earlier call or a :func:`to_duckdb` view), it is
    returned as it is if it fits the arguments (same client, or none given), else replaced: the
    views read through whichever one the connection holds, listing batches with its client.
    """
    held = _aep_filesystem_of(con)
    if held is not None:
        if filesystem is held or (filesystem is None and settings is None
                                  and (client is None or client is held.client)):
            return held
        con.unregister_filesystem(held.protocol)
    fs = filesystem or AEPFileSystem(client if client is not None else AEPClient(settings))
    con.register_filesystem(fs)
    _REGISTERED[con] = fs  # to_duckdb views of the same client reuse it
    return fs

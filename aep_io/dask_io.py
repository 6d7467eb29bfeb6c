"""Dask DataFrames over export batches: partitions read on the workers, through ``aep://``.

:func:`read_batches` plans the files on the client side (the only listing requests), reads the
first footer for ``meta`` (one request) and returns a lazy ``dask.dataframe.DataFrame`` with
one partition per parquet part (or per ``split_row_groups`` row groups). Each partition task
carries its part's planned listing, the projection, the filter and the flatten options; on a
worker it is read by aep_io's reader core (footer + the needed column chunks of the row groups
the filter can match, as ranged GETs), optionally flattened with
:func:`~aep_io.membership.flatten_membership_arrow`, and handed to pandas with
``pd.ArrowDtype`` columns (maps, structs and UTC timestamps survive as Arrow types).

Credentials: a task carries the connection settings (the secret travels inside the pickled
task, as every Dask credential does, and is never part of a repr, a task key or a log line);
with ``credentials="worker-env"`` it carries none and each worker reads ``AEP_CLIENT_SECRET`` /
``AEP_ACCESS_TOKEN`` from its own environment. Each worker process keeps **one** client per
connection, so a worker fetches one token (and refreshes it when due), whatever the number of
tasks it runs.

Needs the optional extra: ``pip install 'aep_io[dask]'``. Dask is imported only when called.

Example:
    >>> # ddf = read_batches(["01JBATCH..."], columns=["identityMap", "segmentMembership"])
    >>> # flat = read_batches(["01JBATCH..."], flatten=True, namespace="ups")
    >>> # flat.groupby("segment_id").size().compute()
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from fsspec.spec import AbstractFileSystem

from aep_io.client import AEPClient
from aep_io.filesystem import AEPFileSystem
from aep_io.membership import CURRENT_STATUSES, flatten_membership_arrow
from aep_io.planning import BatchFile
from aep_io.reader import (
    ReadOptions,
    _filter_columns,
    _OpenFile,
    iter_record_batches,
)
from aep_io.settings import Settings
from aep_io.sources import ScanFile, Source

if TYPE_CHECKING:
    import dask.dataframe as dd
    import pandas as pd

__all__ = ["audience_sizes", "local_cluster", "membership_matrix", "read_batches"]

log = logging.getLogger("aep_io.dask")

Credentials = Literal["ship", "worker-env"]
_SECRET_FIELDS = ("client_secret", "access_token")

# CPython 3.11 can deadlock when the GC runs inside ``sys._current_frames()`` and collects a
# ``threading.local`` (CPython gh-106883, dask/distributed#8616); distributed's worker profiler
# calls it every 10 ms. 3.12+ runs the GC only at eval-breaker points: not affected.
_PROFILER_DEADLOCK = sys.version_info < (3, 12)
_PROFILER_GUARDED = False


def _dask() -> Any:
    try:
        import dask.dataframe as dd
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "aep_io's Dask support needs Dask: pip install 'aep_io[dask]' "
            f"(importing dask.dataframe failed: {exc})"
        ) from None
    return dd


# -- connections: how a task reaches AEP from a worker --------------------------------------------

_SHARED: dict[Any, AEPClient] = {}
_SHARED_LOCK = threading.Lock()


class _Connection:
    """The settings a worker needs to build its AEP client; never shows a secret.

    In the process that built it, the caller's own client is used. Unpickled elsewhere (on a
    worker), it resolves to one client per worker process and connection, shared by all the
    tasks that process runs: one token fetch per worker, not one per task, and one connection
    pool. With ``credentials="worker-env"`` the secret is not part of it at all: the worker
    takes ``AEP_CLIENT_SECRET`` / ``AEP_ACCESS_TOKEN`` from its own environment.
    """

    __slots__ = ("_local", "_max_connections", "_public", "_retry", "_settings")

    def __init__(self, client: AEPClient, credentials: Credentials = "ship") -> None:
        if credentials not in ("ship", "worker-env"):
            raise ValueError(f"credentials={credentials!r}: use 'ship' or 'worker-env'")
        s = client.settings
        self._public = tuple(
            (f.name, getattr(s, f.name)) for f in fields(s) if f.name not in _SECRET_FIELDS
        )
        self._settings: Settings | None = s if credentials == "ship" else None
        self._retry = client.retry
        self._max_connections = client.max_connections
        self._local: AEPClient | None = client

    @classmethod
    def _restore(
        cls, settings: Settings | None, public: tuple[tuple[str, Any], ...], retry: Any,
        max_connections: int,
    ) -> _Connection:
        conn = cls.__new__(cls)
        conn._settings = settings
        conn._public = public
        conn._retry = retry
        conn._max_connections = max_connections
        conn._local = None
        return conn

    def __reduce__(self) -> tuple[Any, ...]:
        # the caller's client stays behind; the worker builds (or reuses) its own
        return (
            _Connection._restore,
            (self._settings, self._public, self._retry, self._max_connections),
        )

    @property
    def mode(self) -> str:
        return "ship" if self._settings is not None else "worker-env"

    def _get(self, name: str) -> Any:
        return dict(self._public)[name]

    def __repr__(self) -> str:
        return (
            f"AEPConnection(platform_url={self._get('platform_url')!r}, "
            f"org_id={self._get('org_id')!r}, sandbox={self._get('sandbox')!r}, "
            f"credentials={self.mode!r})"
        )

    def __dask_tokenize__(self) -> Any:
        # keys are derived from public settings only: no hash of a secret ends up in a key
        return ("aep_io.connection", self.mode, repr(self._public))

    def client(self) -> AEPClient:
        """The client to read with in this process."""
        if self._local is not None:
            return self._local
        key = (self._settings, self._public, self._retry, self._max_connections)
        with _SHARED_LOCK:
            found = _SHARED.get(key)
            if found is None:
                settings = self._settings
                if settings is None:
                    settings = Settings.from_env(**dict(self._public))
                found = AEPClient(settings, retry=self._retry,
                                  max_connections=self._max_connections)
                _SHARED[key] = found
            return found


def _guard_worker_profiler() -> None:
    """On CPython 3.11, stop the statistical profiler of the Dask worker running this task.

    Without it a worker can hang for good (see ``_PROFILER_DEADLOCK``); the profiler only feeds
    the dashboard's profile page. Clusters built by :func:`local_cluster` never start it.
    """
    global _PROFILER_GUARDED
    if _PROFILER_GUARDED or not _PROFILER_DEADLOCK:
        return
    _PROFILER_GUARDED = True
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):  # not on a distributed worker
        return
    callback = worker.periodic_callbacks.get("profile")
    if callback is None or not callback.is_running():
        return
    worker.loop.add_callback(callback.stop)
    log.warning(
        "aep_io: stopped this Dask worker's statistical profiler: on Python 3.11 it can "
        "deadlock the worker (CPython gh-106883). Use Python >= 3.12, or start workers with "
        "distributed.worker.profile.enabled=False, to keep profiling and silence this"
    )


def local_cluster(
    n_workers: int = 2, threads_per_worker: int = 1, **kwargs: Any
) -> Any:
    """A ``distributed.LocalCluster`` on 127.0.0.1, without dashboard, in worker processes.

    On Python 3.11 the workers' statistical profiler is off (it can deadlock them, CPython
    gh-106883). ``kwargs`` go to ``LocalCluster``.

    Example:
        >>> # with local_cluster(2) as cluster, distributed.Client(cluster) as client: ...
    """
    from distributed import LocalCluster

    options: dict[str, Any] = {
        "host": "127.0.0.1", "dashboard_address": None, "processes": True,
    }
    options.update(kwargs)
    if options["dashboard_address"] is None:
        # no dashboard; the scheduler's small HTTP server (health, metrics) on a free loopback
        # port rather than 8787
        options["scheduler_kwargs"] = {"dashboard_address": "127.0.0.1:0",
                                       **options.get("scheduler_kwargs", {})}
    if _PROFILER_DEADLOCK:
        # the nannies' own config (a dotted key: it survives worker restarts)
        options["config"] = {**options.get("config", {}),
                             "distributed.worker.profile.enabled": False}
    return LocalCluster(n_workers=n_workers, threads_per_worker=threads_per_worker, **options)


# -- pieces: what one partition reads -------------------------------------------------------------


@dataclass(frozen=True)
class _Piece:
    """One partition's input: a file (all of it, or some of its row groups)."""

    file: BatchFile | None = None  # an aep:// file: its listing travels with the task
    connection: _Connection | None = None
    scan: ScanFile | None = None  # a file of any other fsspec filesystem
    row_groups: tuple[int, ...] | None = None

    def __repr__(self) -> str:
        where = f"aep://{self.file.path}" if self.file is not None else self._scan().display
        groups = "" if self.row_groups is None else f", row_groups={list(self.row_groups)}"
        return f"AEPPiece({where!r}{groups})"

    def _scan(self) -> ScanFile:
        assert self.scan is not None
        return self.scan

    def __dask_tokenize__(self) -> Any:
        if self.file is not None:
            f = self.file
            assert self.connection is not None
            where: Any = (f.path, f.size, f.url, self.connection.__dask_tokenize__())
        else:
            from dask.base import tokenize

            s = self._scan()
            where = (s.path, s.size, tokenize(s.fs))
        return ("aep_io.piece", where, self.row_groups)

    def scan_file(self) -> ScanFile:
        """The file to hand to the reader (an ``aep://`` filesystem holding its listing)."""
        if self.file is None:
            return self._scan()
        assert self.connection is not None
        fs = AEPFileSystem(self.connection.client(), files=[self.file])
        return ScanFile(fs, self.file.path, self.file.size, self.file.batch_id)

    @property
    def nbytes(self) -> int:
        return self.file.size if self.file is not None else self._scan().size


# -- reading one partition ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Flatten:
    identity: tuple[str, ...] | None
    namespace: str | None
    keep_empty: bool
    column: str
    identity_map: str

    def kwargs(self) -> dict[str, Any]:
        return {
            "identity": None if self.identity is None else list(self.identity),
            "namespace": self.namespace,
            "keep_empty": self.keep_empty,
            "column": self.column,
            "identity_map": self.identity_map,
        }

    def input_columns(self, names: Sequence[str]) -> list[str]:
        """The top-level columns flattening needs."""
        if self.identity is None:
            wanted = [self.column, self.identity_map]
        else:
            wanted = [self.column] + [p if p in names else p.split(".")[0] for p in self.identity]
        return list(dict.fromkeys(wanted))


def _read_row_groups(f: ScanFile, row_groups: Sequence[int], opts: ReadOptions) -> pa.Table | None:
    """Some row groups of one file, with the reader core's footer, pruning and range logic."""
    opened = _OpenFile(f)
    keep = set(row_groups)
    groups = [rg for rg in opened.row_groups(opts.filter) if rg in keep]
    columns = list(opts.columns) if opts.columns is not None else None
    needed: set[str] | None = None
    read_cols: list[str] | None = None
    if columns is not None:
        unknown = sorted(c for c in columns if opened.owner_of(c) is None)
        if unknown:
            raise KeyError(
                f"{f.display} has no column(s) {', '.join(unknown)}; "
                f"it has {', '.join(opened.schema.names)}"
            )
        by_filter = sorted(_filter_columns(opts.filter, opened.schema))
        needed = set(columns) | set(by_filter)
        read_cols = list(dict.fromkeys(columns + by_filter))
    if not groups:
        return None
    ranges = [r for rg in groups for r in opened.ranges(rg, needed, opts.coalesce_gap)]
    with ThreadPoolExecutor(max_workers=opts.io_threads, thread_name_prefix="aep-dask") as pool:
        opened.fetch(ranges, pool)
    table = opened.decode(groups, read_cols)
    opened.release(ranges)
    if opts.filter is not None:
        table = table.filter(opts.filter)
    if columns is not None:
        table = table.select(list(dict.fromkeys(opened.owner_of(c) or c for c in columns)))
    return table


def _to_pandas(table: pa.Table) -> pd.DataFrame:
    import pandas as pd

    return table.replace_schema_metadata(None).to_pandas(types_mapper=pd.ArrowDtype)


def _from_pandas(frame: pd.DataFrame) -> pa.Table:
    return pa.Table.from_pandas(frame, preserve_index=False)


class _PartitionReader:
    """The function of every partition: read a piece, maybe flatten it, return pandas.

    Dask pushes column selections into it (its ``columns`` argument): only those columns'
    chunks are fetched.
    """

    def __init__(
        self,
        *,
        columns: list[str] | None,
        owners: dict[str, str],
        input_schema: pa.Schema,
        filter: pc.Expression | None,
        flatten: _Flatten | None,
        options: dict[str, Any],
    ) -> None:
        self.columns = columns
        self.owners = owners
        self.input_schema = input_schema
        self.filter = filter
        self.flatten = flatten
        self.options = options

    def __repr__(self) -> str:
        flt = "" if self.filter is None else f", filter={str(self.filter)!r}"
        flat = "" if self.flatten is None else ", flatten=True"
        return f"AEPPartitionReader(columns={self.columns!r}{flt}{flat})"

    def __dask_tokenize__(self) -> Any:
        return (
            "aep_io.partition_reader",
            self.columns,
            sorted(self.owners.items()),
            str(self.input_schema),
            None if self.filter is None else str(self.filter),
            self.flatten,
            sorted(self.options.items()),
        )

    def read_table(self, piece: _Piece, columns: Sequence[str] | None = None) -> pa.Table:
        """The partition as an Arrow table (``columns``: the output columns Dask wants)."""
        wanted = list(columns) if columns is not None else None
        if self.flatten is not None:
            read_cols: list[str] | None = self.columns or self.flatten.input_columns(
                self.input_schema.names
            )
        else:
            read_cols = self.columns
            if wanted is not None:
                every = self.columns if self.columns is not None else self.input_schema.names
                read_cols = [c for c in every if self.owners.get(c, c) in set(wanted)]
        opts = ReadOptions(columns=read_cols, filter=self.filter, **self.options)
        scan = piece.scan_file()
        try:
            if piece.row_groups is None:
                batches = list(iter_record_batches([scan], opts))
                table = pa.Table.from_batches(batches) if batches else None
            else:
                table = _read_row_groups(scan, piece.row_groups, opts)
        finally:
            if piece.file is not None:
                scan.fs.close()
        if table is None:
            keep = read_cols if read_cols is not None else self.input_schema.names
            names = list(dict.fromkeys(self.owners.get(c, c) for c in keep))
            table = pa.schema([self.input_schema.field(n) for n in names]).empty_table()
        if self.flatten is not None:
            table = flatten_membership_arrow(table, **self.flatten.kwargs())
        if wanted is not None and table.column_names != wanted:
            table = table.select(wanted)
        return table

    def __call__(self, piece: _Piece, columns: Sequence[str] | None = None) -> pd.DataFrame:
        _guard_worker_profiler()
        return _to_pandas(self.read_table(piece, columns))


# -- building the frame ---------------------------------------------------------------------------


def _to_filter(filters: Any, schema: pa.Schema) -> pc.Expression | None:
    """A pyarrow expression from an expression or DNF filters (``[("col", "==", v), ...]``)."""
    if filters is None or isinstance(filters, pc.Expression):
        return filters

    def column(name: Any) -> Any:
        if isinstance(name, str) and name not in schema.names and "." in name:
            return tuple(name.split("."))  # a struct field: "homeAddress.countryCode"
        return name

    dnf = list(filters)
    if not dnf:
        return None
    if not isinstance(dnf[0], list):
        dnf = [dnf]
    converted = [[(column(c), op, v) for c, op, v in conj] for conj in dnf]
    return pq.filters_to_expression(converted)


def _pieces(
    files: Sequence[ScanFile],
    split_row_groups: bool | int,
    flt: pc.Expression | None,
    first: _OpenFile,
    connections: dict[int, _Connection],
    io_threads: int,
) -> list[_Piece]:
    def piece(f: ScanFile, groups: tuple[int, ...] | None) -> _Piece:
        if isinstance(f.fs, AEPFileSystem):
            return _Piece(f.fs._file(f.path), connections[id(f.fs)], None, groups)
        return _Piece(None, None, f, groups)

    if split_row_groups is False:
        return [piece(f, None) for f in files]
    per = 1 if split_row_groups is True else int(split_row_groups)
    if per < 1:
        raise ValueError(f"split_row_groups={split_row_groups!r} must be True, False or >= 1")

    def groups_of(f: ScanFile) -> list[int]:
        opened = first if f is files[0] else _OpenFile(f)
        return opened.row_groups(flt)  # a filter drops row groups its statistics rule out

    with ThreadPoolExecutor(max_workers=io_threads, thread_name_prefix="aep-footer") as pool:
        all_groups = list(pool.map(groups_of, files))
    out = []
    for f, groups in zip(files, all_groups, strict=True):
        for i in range(0, len(groups), per):
            out.append(piece(f, tuple(groups[i : i + per])))
    return out


def read_batches(
    batches: str | BatchFile | Iterable[str | BatchFile] | Source,
    *,
    columns: Sequence[str] | None = None,
    filters: pc.Expression | Sequence[Any] | None = None,
    flatten: bool = False,
    identity: Sequence[str] | None = None,
    namespace: str | None = None,
    keep_empty: bool = False,
    membership_column: str = "segmentMembership",
    identity_map: str = "identityMap",
    split_row_groups: bool | int = False,
    client: AEPClient | None = None,
    settings: Settings | None = None,
    filesystem: AbstractFileSystem | None = None,
    storage_options: dict[str, Any] | None = None,
    credentials: Credentials = "ship",
    io_threads: int = 8,
    max_inflight: int = 4,
    batch_size: int = 65_536,
) -> dd.DataFrame:
    """A Dask DataFrame over export batches (or ``aep://`` paths, planned files, fsspec URLs).

    Files are planned here, on the client (the only listing requests); the first footer gives
    the ``meta`` (one request). Workers make no listing request: each task carries its file's
    listing.

    Args:
        batches: batch ids, planned :class:`~aep_io.planning.BatchFile` s, ``aep://`` paths or
            other fsspec URLs (as :func:`~aep_io.polars_io.scan_batches`), or a
            :class:`~aep_io.sources.Source` (then ``client`` ... ``storage_options`` are unused).
        columns: columns to read (None: all); dotted leaf paths prune nested columns, as in
            :class:`~aep_io.reader.ReadOptions`. Later column selections on the frame are
            pushed into the reads as well.
        filters: a pyarrow expression or DNF filters (``[("_acme.loyaltyTier", "==", "gold")]``,
            a list of such lists for OR); rows not matching are dropped, row groups whose
            statistics rule them out are never fetched.
        flatten: one row per (profile, namespace, segment) instead of one per profile
            (:func:`~aep_io.membership.flatten_membership_arrow`, per partition); ``identity``,
            ``namespace``, ``keep_empty``, ``membership_column`` and ``identity_map`` are its
            options. With ``columns=None`` only the columns it needs are read.
        split_row_groups: False: one partition per parquet part; True: one per row group; an
            int N: N row groups per partition (reads every footer here, once, to know them;
            with ``filters``, partitions whose row groups are all ruled out are dropped).
        client: the AEP client (from ``settings`` or the environment when omitted).
        settings: settings for a new client.
        filesystem: an fsspec filesystem for the non-``aep`` URLs.
        storage_options: options for fsspec when it builds a filesystem from a URL.
        credentials: ``"ship"``: tasks carry the credentials (never shown in a repr, key or log);
            ``"worker-env"``: they carry none, and workers read ``AEP_CLIENT_SECRET`` or
            ``AEP_ACCESS_TOKEN`` (other settings from the client) from their environment.
        io_threads: concurrent range requests per partition being read.
        max_inflight: row-group units fetched ahead of decoding per partition (memory bound).
        batch_size: rows per record batch inside the reader.

    Returns:
        a ``dask.dataframe.DataFrame`` with ``pd.ArrowDtype`` columns and unknown divisions.

    Example:
        >>> # ddf = read_batches("01JBATCH...", columns=["person", "_acme"])
        >>> # ddf = read_batches("01JBATCH...", filters=pc.field("_acme", "loyaltyTier") == "gold")
        >>> # ddf.shape[0].compute()
    """
    dd = _dask()
    if isinstance(columns, str):
        raise TypeError("columns must be a sequence of column names, not a str")
    if isinstance(batches, Source):
        source = batches
    else:
        source = Source.of(batches, client=client, settings=settings, filesystem=filesystem,
                           storage_options=storage_options)
    files = source.files()
    if not files:
        raise FileNotFoundError(f"{source.description}: no parquet files to read")
    connections: dict[int, _Connection] = {}
    for f in files:
        if isinstance(f.fs, AEPFileSystem) and id(f.fs) not in connections:
            connections[id(f.fs)] = _Connection(f.fs.client, credentials)

    first = _OpenFile(files[0])  # meta: one footer request
    flt = _to_filter(filters, first.schema)
    cols = list(columns) if columns is not None else None
    owners: dict[str, str] = {}
    for c in cols or []:
        owner = first.owner_of(c)
        if owner is None:
            raise KeyError(
                f"{files[0].display} has no column {c!r}; it has {', '.join(first.schema.names)}"
            )
        owners[c] = owner
    if cols is None:
        input_schema = first.schema
    else:
        empty = first.decode([], cols)  # no row group: the (pruned) schema without any data
        input_schema = empty.select(list(dict.fromkeys(owners[c] for c in cols))).schema
    input_schema = input_schema.remove_metadata()
    flat: _Flatten | None = None
    out_schema = input_schema
    if flatten:
        if isinstance(identity, str):
            raise TypeError("identity must be a sequence of column names / dot paths, not a str")
        flat = _Flatten(
            None if identity is None else tuple(identity), namespace, keep_empty,
            membership_column, identity_map,
        )
        out_schema = flatten_membership_arrow(input_schema.empty_table(), **flat.kwargs()).schema
    reader = _PartitionReader(
        columns=cols,
        owners=owners,
        input_schema=input_schema,
        filter=flt,
        flatten=flat,
        options={"io_threads": io_threads, "max_inflight": max_inflight,
                 "batch_size": batch_size},
    )
    pieces = _pieces(files, split_row_groups, flt, first, connections, io_threads)
    meta = _to_pandas(out_schema.empty_table())
    if not pieces:  # every row group ruled out by the filter
        return dd.from_pandas(meta, npartitions=1)
    return dd.from_map(reader, pieces, meta=meta, label="read-aep", enforce_metadata=False)


# -- membership helpers on Dask frames ------------------------------------------------------------


def _polars_part(
    fn: Callable[..., Any], part: pd.DataFrame, **kwargs: Any
) -> pd.DataFrame:
    import polars as pl

    frame = pl.from_arrow(_from_pandas(part))
    assert isinstance(frame, pl.DataFrame)
    return _to_pandas(fn(frame, **kwargs).to_arrow())


def _segments_part(
    part: pd.DataFrame, *, namespace: str | None, column: str, identity_map: str
) -> pd.DataFrame:
    import polars as pl

    from aep_io.membership import flatten_membership

    frame = pl.from_arrow(_from_pandas(part))
    assert isinstance(frame, pl.DataFrame)
    flat = flatten_membership(
        frame, identity=[], namespace=namespace, column=column, identity_map=identity_map
    )
    segs = flat.select(pl.col("segment_id").cast(pl.String).drop_nulls().unique())
    return _to_pandas(segs.to_arrow())


def membership_matrix(
    ddf: dd.DataFrame,
    *,
    segment_ids: Sequence[str] | None = None,
    namespace: str | None = "ups",
    identity: Sequence[str] | None = None,
    statuses: Sequence[str] = CURRENT_STATUSES,
    column: str = "segmentMembership",
    identity_map: str = "identityMap",
) -> dd.DataFrame:
    """Identity columns + one boolean column per segment, for a Dask frame of profiles.

    The same rows as :func:`aep_io.membership.membership_matrix` on the same profiles (it runs
    per partition). ``segment_ids=None`` lists every segment seen in ``namespace`` first (one
    extra pass over the data, computed now); pass ``segment_ids`` to stay lazy.

    Example:
        >>> # m = membership_matrix(read_batches("01JBATCH..."), segment_ids=["seg-a", "seg-b"])
    """
    if segment_ids is None:
        seen = ddf.map_partitions(
            _segments_part, namespace=namespace, column=column, identity_map=identity_map,
            meta=_to_pandas(pa.schema([("segment_id", pa.string())]).empty_table()),
        )
        segs = sorted({str(s) for s in seen["segment_id"].unique().compute().tolist()})
    else:
        segs = list(dict.fromkeys(segment_ids))
    kwargs = {
        "segment_ids": segs, "namespace": namespace, "identity": identity,
        "statuses": list(statuses), "column": column, "identity_map": identity_map,
    }
    meta = _matrix_part(ddf._meta, **kwargs)
    return ddf.map_partitions(_matrix_part, meta=meta, **kwargs)


def _matrix_part(part: pd.DataFrame, **kwargs: Any) -> pd.DataFrame:
    from aep_io import membership

    return _polars_part(membership.membership_matrix, part, **kwargs)


def _sizes_chunk(part: pd.DataFrame, *, namespace: str | None, column: str) -> pd.DataFrame:
    from aep_io import membership

    return _polars_part(membership.audience_sizes, part, namespace=namespace, column=column)


def _sizes_combine(parts: pd.DataFrame) -> pd.DataFrame:
    import polars as pl

    frame = pl.from_arrow(_from_pandas(parts))
    assert isinstance(frame, pl.DataFrame)
    out = (
        frame.group_by("namespace", "segment_id", "status")
        .agg(pl.col("profiles").sum().cast(pl.Int64))
        .sort("namespace", "segment_id", "status", nulls_last=True)
    )
    return _to_pandas(out.to_arrow())


def audience_sizes(
    ddf: dd.DataFrame,
    *,
    namespace: str | None = None,
    column: str = "segmentMembership",
) -> dd.DataFrame:
    """Profiles per (namespace, segment_id, status) of a Dask frame of profiles.

    A tree reduction of :func:`aep_io.membership.audience_sizes` per partition: the same rows,
    sorted the same way, in a one-partition Dask frame.

    Example:
        >>> # audience_sizes(read_batches("01JBATCH...", columns=["segmentMembership"])).compute()
    """
    meta = _sizes_chunk(ddf._meta, namespace=namespace, column=column)
    return ddf.reduction(
        _sizes_chunk,
        aggregate=_sizes_combine,
        combine=_sizes_combine,
        meta=meta,
        chunk_kwargs={"namespace": namespace, "column": column},
    )

"""The reader core: parquet parts in, a bounded stream of Arrow record batches out.

All concurrency of aep_io's reads lives here. The unit of work is one row group of one file:

1. A file's footer is fetched with one suffix range (more only when the footer is larger) and
   parsed by pyarrow. Row groups whose statistics cannot match the filter are skipped.
2. For each remaining row group, the byte ranges of the needed column chunks (projection plus
   filter columns) are fetched, nearby ranges coalesced, into a sparse, file-sized anonymous
   memory map: pyarrow then decodes the row group zero-copy from it, as if it were local.
3. Up to ``max_inflight`` units (consecutive row groups) are fetched ahead of the consumer, so
   transfer overlaps decode; the next unit is decoded on a worker thread while the consumer
   handles the current one. Memory is bounded by that window (compressed bytes) plus two
   decoded units: a unit's fetched pages are returned to the OS once decoded.

Errors in any fetch reach the consumer, naming the file. Closing the stream early (or reaching
``limit`` rows) cancels what is pending and sends no further request.

Example:
    >>> # reader = to_record_batch_reader(Source.of(["01JBATCH..."]),
    >>> #                                 ReadOptions(columns=["identityMap"]))
    >>> # for batch in reader: ...
"""

from __future__ import annotations

import ctypes
import functools
import itertools
import logging
import mmap
import re
import sys
import threading
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from aep_io.errors import AEPError, IncompleteReadError
from aep_io.sources import ScanFile, Source

if TYPE_CHECKING:  # pyarrow.compute costs ~30 ms to import; only filters need it
    import pyarrow.compute as pc

__all__ = [
    "CorruptFileError",
    "ReadOptions",
    "iter_record_batches",
    "leaf_paths",
    "read_schema",
    "to_record_batch_reader",
]

log = logging.getLogger("aep_io.reader")

_FOOTER_GUESS = 64 * 1024
_COALESCE_GAP = 32 * 1024
# units decoded ahead of the one the consumer handles (each holds a decoded unit in memory)
DECODE_AHEAD = 3
_PAGE = mmap.PAGESIZE
# The pool of the sparse file buffers: the system allocator, whose large blocks are plain
# mappings that _OpenFile.choose_pages puts on small or huge pages. Arrow's default pool
# (mimalloc in pyarrow >= 26) may hand out segments on transparent huge pages, where writing
# one 64 KiB column chunk commits and zeroes a whole 2 MiB page.
_BUFFER_POOL = pa.system_memory_pool()
_MADV_DONTNEED = 4  # give the pages back to the OS
_MADV_HUGEPAGE = 14
_MADV_NOHUGEPAGE = 15


class CorruptFileError(AEPError):
    """A file is not valid parquet (bad magic, bad footer or an undecodable page)."""


@dataclass(frozen=True)
class ReadOptions:
    """How to read.

    Attributes:
        columns: columns to return (None: all). A dotted leaf path (``"segmentMembership.
            key_value.value.key_value.value.status"``) reads only that leaf of a nested column,
            which comes back as its top-level column pruned to the leaves asked for. Filter
            columns are read as needed.
        filter: a pyarrow compute expression; rows not matching are dropped, and row groups
            whose statistics rule it out are never fetched.
        limit: stop after this many rows (fetching stops early too).
        batch_size: rows per record batch handed to the consumer (at most).
        max_inflight: row groups fetched ahead of the consumer (bounds memory).
        io_threads: concurrent range requests.
        unit_bytes: consecutive row groups are fetched and decoded together until their needed
            bytes reach this size (fewer, larger decode calls for narrow projections).
        sequential: fetch one row group (and one footer) at a time; for consumers that may
            stop after the first rows without knowing how many rows that will take (e.g. a
            predicate followed by ``head``).
    """

    columns: Sequence[str] | None = None
    filter: pc.Expression | None = None
    limit: int | None = None
    batch_size: int = 65_536
    max_inflight: int = 4
    io_threads: int = 8
    coalesce_gap: int = _COALESCE_GAP
    sequential: bool = False
    unit_bytes: int = 4 * 1024 * 1024

    def __post_init__(self) -> None:
        if self.limit is not None and self.limit < 0:
            raise ValueError(f"limit={self.limit} must be >= 0")
        if self.max_inflight < 1 or self.io_threads < 1 or self.batch_size < 1:
            raise ValueError("max_inflight, io_threads and batch_size must be at least 1")


_UNLIMITED = threading.BoundedSemaphore(1 << 30)


def _read_into(
    f: ScanFile, start: int, out: memoryview, slots: threading.BoundedSemaphore = _UNLIMITED
) -> None:
    with slots:  # the cap on requests in flight, shared by footers and column chunks
        _read_unlimited(f, start, out)


def _read_unlimited(f: ScanFile, start: int, out: memoryview) -> None:
    read_into = getattr(f.fs, "read_into", None)
    if read_into is not None:
        read_into(f.path, start, out)
        return
    data = f.fs.cat_file(f.path, start=start, end=start + len(out))
    if len(data) != len(out):
        raise AEPError(f"{f.display}: read {len(data)} bytes at {start}, expected {len(out)}")
    out[:] = data


def _leaf_owner(schema: pa.Schema) -> list[str]:
    """For each parquet leaf column (in order), the top-level field it belongs to."""

    def leaves(t: pa.DataType) -> int:
        if pa.types.is_struct(t):
            return sum(leaves(t.field(i).type) for i in range(t.num_fields))
        if pa.types.is_map(t):
            return leaves(t.key_type) + leaves(t.item_type)
        if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
            return leaves(t.value_type)
        return 1

    owners: list[str] = []
    for f in schema:
        owners.extend([f.name] * leaves(f.type))
    return owners


@functools.cache
def _libc() -> Any:
    try:
        return ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None
    except OSError:
        return None


def _advise_pages(address: int, length: int, advice: int) -> None:
    """``madvise`` the whole pages inside a range (a hint: failures are ignored); a no-op off
    Linux."""
    libc = _libc()
    lo = -(-address // _PAGE) * _PAGE
    hi = ((address + length) // _PAGE) * _PAGE
    if libc is not None and hi > lo:
        libc.madvise(ctypes.c_void_p(lo), ctypes.c_size_t(hi - lo), advice)


class _OpenFile:
    """One file being read: its sparse buffer, metadata and pruned row groups."""

    def __init__(
        self,
        f: ScanFile,
        footer_guess: int = _FOOTER_GUESS,
        slots: threading.BoundedSemaphore = _UNLIMITED,
    ) -> None:
        self.file = f
        self.slots = slots
        self.size = f.size or int(f.fs.size(f.path))
        if self.size < 12:
            raise CorruptFileError(f"{f.display}: {self.size} bytes is too small for parquet")
        # A file-sized buffer owned by Arrow (its pages are only committed where bytes are
        # written). Not an mmap wrapped with py_buffer: that ties a C++ buffer to a Python
        # object, and freeing it during interpreter teardown aborted the process.
        self._buffer = pa.allocate_buffer(self.size, memory_pool=_BUFFER_POOL)
        _advise_pages(self._buffer.address, self.size, _MADV_NOHUGEPAGE)  # see choose_pages
        self.view = memoryview(self._buffer).cast("B")
        tail = min(self.size, footer_guess)
        _read_into(f, self.size - tail, self.view[self.size - tail :], slots)
        self.filled_from = self.size - tail  # bytes from here to the end are already here
        if bytes(self.view[-4:]) != b"PAR1":
            raise CorruptFileError(f"{f.display}: not a parquet file (no PAR1 magic at the end)")
        footer_len = int.from_bytes(self.view[-8:-4], "little")
        if footer_len + 8 > self.size:
            raise CorruptFileError(f"{f.display}: footer length {footer_len} exceeds the file")
        if footer_len + 8 > tail:
            start = self.size - footer_len - 8
            _read_into(f, start, self.view[start : self.size - tail], slots)
            self.filled_from = start
        self.footer_start = self.size - footer_len - 8
        try:
            self.parquet = pq.ParquetFile(pa.BufferReader(self._buffer))
        except (pa.ArrowException, OSError) as exc:
            raise CorruptFileError(f"{f.display}: unreadable parquet footer: {exc}") from None
        self.metadata = self.parquet.metadata
        self.schema = self.parquet.schema_arrow
        self.owners = _leaf_owner(self.schema)
        self.leaf_paths = [
            self.metadata.schema.column(j).path for j in range(self.metadata.num_columns)
        ]
        if len(self.owners) != self.metadata.num_columns:  # unusual nesting: map per leaf path
            self.owners = [p.split(".")[0] for p in self.leaf_paths]

    def owner_of(self, column: str) -> str | None:
        """The top-level column a requested name or dotted leaf path belongs to."""
        if column in self.schema.names:
            return column
        for path, owner in zip(self.leaf_paths, self.owners, strict=True):
            if path == column or path.startswith(column + "."):
                return owner
        return None

    def _wanted(self, j: int, columns: set[str]) -> bool:
        if self.owners[j] in columns:
            return True
        path = self.leaf_paths[j]
        return any(path == c or path.startswith(c + ".") for c in columns)

    def row_groups(self, flt: pc.Expression | None) -> list[int]:
        """Row groups that may hold matching rows (by footer statistics)."""
        all_groups = list(range(self.metadata.num_row_groups))
        if flt is None:
            return all_groups
        import pyarrow.dataset as pads  # imported only when a filter needs pruning

        try:
            fragment = pads.ParquetFileFormat().make_fragment(
                pa.BufferReader(self._buffer)
            )
            return [rg.id for rg in fragment.subset(filter=flt).row_groups]
        except (pa.ArrowException, TypeError, ValueError) as exc:
            log.debug("%s: no row-group pruning for %s (%s)", self.file.display, flt, exc)
            return all_groups

    def ranges(self, rg: int, columns: set[str] | None, gap: int) -> list[tuple[int, int]]:
        """Coalesced byte ranges of the row group's needed column chunks."""
        group = self.metadata.row_group(rg)
        spans = []
        for j in range(group.num_columns):
            if columns is not None and not self._wanted(j, columns):
                continue
            col = group.column(j)
            start = col.data_page_offset
            if col.has_dictionary_page and col.dictionary_page_offset:
                start = min(start, col.dictionary_page_offset)
            end = min(start + col.total_compressed_size, self.footer_start, self.filled_from)
            if end > start:  # the part of a chunk inside the fetched footer tail is not refetched
                spans.append((start, end))
        spans.sort()
        merged: list[tuple[int, int]] = []
        for start, end in spans:
            # Merge a small gap (one request instead of two), but only when the bytes it adds
            # are a small share of what is needed: bytes moved stay within ~5% of the chunks.
            if merged and start - merged[-1][1] <= min(
                gap, (end - start + merged[-1][1] - merged[-1][0]) // 20
            ):
                merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
            else:
                merged.append((start, end))
        return merged

    def choose_pages(self, needed: int) -> None:
        """Put the not yet fetched part of the buffer on huge pages when at least half the file
        will be fetched (a full read faults 2 MiB at a time instead of 4 KiB: ~0.1-0.4 s less
        system time for 275 MB here); it stays on small pages, as allocated, when the needed
        chunks are sparse (a huge page per 64 KiB chunk would commit the whole file)."""
        if 2 * needed >= self.size:
            _advise_pages(self._buffer.address, self.filled_from, _MADV_HUGEPAGE)

    def fetch(self, ranges: list[tuple[int, int]], pool: ThreadPoolExecutor) -> None:
        """Fetch ``ranges`` into the buffer, concurrently."""
        futures = [
            pool.submit(_read_into, self.file, s, self.view[s:e], self.slots) for s, e in ranges
        ]
        for fut in futures:
            fut.result()

    def release(self, ranges: list[tuple[int, int]]) -> None:
        """Give the pages of decoded ranges back to the OS."""
        for start, end in ranges:
            _advise_pages(self._buffer.address + start, end - start, _MADV_DONTNEED)

    def decode(self, row_groups: list[int], columns: list[str] | None) -> pa.Table:
        """Decode row groups (their ranges must have been fetched). Each call has its own
        parquet reader over the shared buffer and footer, so units of one file decode in
        parallel (a read-ahead window mostly holds units of the same file)."""
        reader = pq.ParquetFile(pa.BufferReader(self._buffer), metadata=self.metadata)
        try:
            return reader.read_row_groups(row_groups, columns=columns, use_threads=True)
        except (pa.ArrowException, OSError) as exc:
            raise CorruptFileError(
                f"{self.file.display}: row group(s) {row_groups} could not be decoded: {exc}"
            ) from None


@dataclass
class _Unit:
    """Consecutive row groups of one file, fetched and decoded together."""

    file: _OpenFile
    row_groups: list[int]
    ranges: list[tuple[int, int]]
    rows: int
    future: Future[None] | None = None  # the fetch
    decoded: Future[pa.Table] | None = None

    @property
    def nbytes(self) -> int:
        return sum(e - s for s, e in self.ranges)


def _filter_columns(flt: pc.Expression | None, schema: pa.Schema) -> set[str]:
    """Top-level columns an expression refers to (pyarrow has no public accessor for this)."""
    if flt is None:
        return set()
    text = str(flt)
    return {n for n in schema.names if re.search(rf"(?<![\w.]){re.escape(n)}(?![\w])", text)}


def read_schema(source: Source) -> pa.Schema:
    """The Arrow schema of the source (from the first file's footer)."""
    files = source.files()
    if not files:
        raise FileNotFoundError(f"{source.description}: no parquet files to read")
    return _OpenFile(files[0]).schema


def leaf_paths(source: Source) -> list[str]:
    """The dotted parquet leaf paths of the source (from the first file's footer)."""
    files = source.files()
    if not files:
        raise FileNotFoundError(f"{source.description}: no parquet files to read")
    return list(_OpenFile(files[0]).leaf_paths)


def iter_record_batches(
    source: Source | Sequence[ScanFile], options: ReadOptions | None = None
) -> Iterator[pa.RecordBatch]:
    """Stream the source's rows as record batches (see the module docstring).

    The generator owns a thread pool; close it (or exhaust it) to release the pool. Breaking
    out of a ``for`` loop closes it.
    """
    opts = options or ReadOptions()
    files = source.files() if isinstance(source, Source) else list(source)
    if opts.limit == 0 or not files:
        return
    pool = ThreadPoolExecutor(max_workers=opts.io_threads, thread_name_prefix="aep-read")
    cancel = threading.Event()
    rows_by_batch: Counter[str] = Counter()
    finished = False
    try:
        yield from _pipeline(files, opts, pool, cancel, rows_by_batch)
        finished = True
    finally:
        cancel.set()
        # After a complete read the threads are idle: join them, so that none is alive when the
        # process exits (pyarrow's teardown then aborted with "terminate called without an
        # active exception" in ~1 run of 8). An early close does not wait for running fetches.
        pool.shutdown(wait=finished, cancel_futures=True)
    if isinstance(source, Source) and opts.filter is None and opts.limit is None:
        _check_record_counts(source, rows_by_batch)


def _check_record_counts(source: Source, rows_by_batch: Counter[str]) -> None:
    """After a complete read, every planned batch must have yielded Catalog's record count."""
    for batch_id, expected in source.record_counts.items():
        if rows_by_batch[batch_id] != expected:
            raise IncompleteReadError(
                f"batch {batch_id}: read {rows_by_batch[batch_id]:,} rows but Catalog records "
                f"{expected:,}; the batch's file listing or files are incomplete"
            )


def _pipeline(
    files: list[ScanFile],
    opts: ReadOptions,
    pool: ThreadPoolExecutor,
    cancel: threading.Event,
    rows_by_batch: Counter[str],
) -> Iterator[pa.RecordBatch]:
    remaining = opts.limit
    footers: deque[Future[_OpenFile]] = deque()
    next_file = 0
    # Without a limit, footers of a few files ahead are fetched in the background.
    careful = opts.limit is not None or opts.sequential
    footer_lookahead = 1 if careful else 2
    max_inflight = 1 if opts.sequential else opts.max_inflight

    footer_guess = [_FOOTER_GUESS]
    slots = threading.BoundedSemaphore(opts.io_threads)

    def open_more() -> None:
        nonlocal next_file
        while next_file < len(files) and len(footers) < footer_lookahead:
            footers.append(pool.submit(_OpenFile, files[next_file], footer_guess[0], slots))
            next_file += 1

    def units() -> Iterator[_Unit]:
        first_schema: pa.Schema | None = None
        while True:
            if not footers:
                open_more()
            if not footers:
                return
            opened = footers.popleft().result()
            # parts of one export have similar footers: size the next guess on this one
            footer_guess[0] = max(4096, int((opened.size - opened.footer_start) * 1.25) + 1024)
            if not careful:
                open_more()  # prefetch the next footers while this file's row groups stream
            if first_schema is None:
                first_schema = opened.schema
            needed: set[str] | None = None
            if opts.columns is not None:
                needed = set(opts.columns) | _filter_columns(opts.filter, opened.schema)
                unknown = {c for c in opts.columns if opened.owner_of(c) is None}
                if unknown:
                    raise KeyError(
                        f"{opened.file.display} has no column(s) {', '.join(sorted(unknown))}; "
                        f"it has {', '.join(opened.schema.names)}"
                    )
            planned = [
                (rg, opened.ranges(rg, needed, opts.coalesce_gap))
                for rg in opened.row_groups(opts.filter)
            ]
            if not careful:  # with a limit, only the first row groups may be fetched
                opened.choose_pages(sum(e - s for _, rs in planned for s, e in rs))
            unit: _Unit | None = None
            for rg, ranges in planned:
                rows = opened.metadata.row_group(rg).num_rows
                if unit is not None and unit.row_groups[-1] == rg - 1:
                    unit.row_groups.append(rg)
                    unit.ranges.extend(ranges)
                    unit.rows += rows
                else:
                    if unit is not None:
                        yield unit
                    unit = _Unit(opened, [rg], ranges, rows)
                # Small row groups are grouped (fewer, larger decode calls); with a limit,
                # one row group at a time so that no more than needed is fetched.
                if careful or unit.nbytes >= opts.unit_bytes:
                    yield unit
                    unit = None
            if unit is not None:
                yield unit

    window: deque[_Unit] = deque()
    source_units = units()
    exhausted = False
    scheduled_rows = 0

    def fill() -> None:
        nonlocal exhausted, scheduled_rows
        while not exhausted and len(window) < max_inflight and not cancel.is_set():
            if opts.limit is not None and opts.filter is None and scheduled_rows >= opts.limit:
                return  # without a filter every row counts: enough rows are on their way
            try:
                unit = next(source_units)
            except StopIteration:
                exhausted = True
                return
            unit.future = pool.submit(unit.file.fetch, unit.ranges, pool_for_ranges)
            scheduled_rows += unit.rows
            window.append(unit)

    # Ranges of one row group are fetched by a second pool so that a unit's fetch never waits
    # for a thread held by another unit's fetch.
    pool_for_ranges = ThreadPoolExecutor(
        max_workers=opts.io_threads, thread_name_prefix="aep-range"
    )
    columns = list(opts.columns) if opts.columns is not None else None

    # Decoding runs on two threads, up to DECODE_AHEAD units ahead of the consumer: it overlaps
    # what the consumer does with the previous unit (flattening, converting, writing) and
    # keeps both cores busy, while at most DECODE_AHEAD + 1 decoded units are held (the fetch
    # window holds only compressed bytes).
    decoder = ThreadPoolExecutor(max_workers=2, thread_name_prefix="aep-decode")

    def decode(unit: _Unit) -> pa.Table:
        assert unit.future is not None
        unit.future.result()
        if cancel.is_set():
            return pa.table({})
        read_cols = None
        if columns is not None:
            read_cols = list(
                dict.fromkeys(columns + sorted(_filter_columns(opts.filter, unit.file.schema)))
            )
        table = unit.file.decode(unit.row_groups, read_cols)
        unit.file.release(unit.ranges)
        return table

    def decode_soon(unit: _Unit) -> Future[pa.Table]:
        if unit.decoded is None:
            unit.decoded = decoder.submit(decode, unit)
        return unit.decoded

    finished = False
    try:
        fill()
        while window:
            unit = window.popleft()
            pending = decode_soon(unit)
            for ahead in itertools.islice(window, DECODE_AHEAD):
                decode_soon(ahead)
            table = pending.result()
            fill()  # keep the fetch window full while this unit is consumed
            if unit.file.file.batch_id is not None:
                rows_by_batch[unit.file.file.batch_id] += table.num_rows
            if opts.filter is not None:
                table = table.filter(opts.filter)
            if columns is not None:
                keep = list(dict.fromkeys(unit.file.owner_of(c) or c for c in columns))
                if table.column_names != keep:
                    table = table.select(keep)
            if remaining is not None and table.num_rows > remaining:
                table = table.slice(0, remaining)
            for batch in table.to_batches(max_chunksize=opts.batch_size):
                if batch.num_rows:
                    yield batch
            if remaining is not None:
                remaining -= table.num_rows
                if remaining <= 0:
                    break
        finished = True
    finally:
        cancel.set()
        for unit in window:
            if unit.future is not None:
                unit.future.cancel()
        for unit in window:
            if unit.decoded is not None:
                unit.decoded.cancel()
        decoder.shutdown(wait=finished, cancel_futures=True)
        pool_for_ranges.shutdown(wait=finished, cancel_futures=True)


def to_record_batch_reader(
    source: Source, options: ReadOptions | None = None
) -> pa.RecordBatchReader:
    """A ``pyarrow.RecordBatchReader`` over the source (reads the first footer for the schema)."""
    opts = options or ReadOptions()
    schema = read_schema(source)
    if opts.columns is not None:
        if all(c in schema.names for c in opts.columns):
            schema = pa.schema([schema.field(c) for c in opts.columns])
        else:  # leaf paths prune nested types: take the schema from the first batch
            stream = iter_record_batches(source, opts)
            first = next(stream, None)
            if first is None:
                return pa.RecordBatchReader.from_batches(_pruned_schema(source, opts), [])
            return pa.RecordBatchReader.from_batches(
                first.schema, itertools.chain([first], stream)
            )
    return pa.RecordBatchReader.from_batches(schema, iter_record_batches(source, opts))


def _pruned_schema(source: Source, opts: ReadOptions) -> pa.Schema:
    opened = _OpenFile(source.files()[0])
    if opened.metadata.num_row_groups == 0:
        return opened.schema
    columns = list(opts.columns or [])
    ranges = opened.ranges(0, set(columns), opts.coalesce_gap)
    with ThreadPoolExecutor(max_workers=2) as pool:
        opened.fetch(ranges, pool)
    return opened.decode([0], columns).slice(0, 0).schema

"""``AEPFileSystem``: export batches as an fsspec filesystem, read with HTTP Range requests.

Paths are ``aep://{batchId}/{dataSetFileId}/{name}``. Listings come from :mod:`aep_io.planning`
and are cached per batch; ``info`` and ``size`` are answered from them, so opening a file costs
no extra round trip. Reads are plain ranged GETs with **no client read-ahead** by default
(parquet engines already ask for exactly the byte ranges they need), and ``cat_ranges`` fetches
many ranges concurrently.

It works wherever fsspec does: ``pyarrow.parquet.ParquetFile(fs.open(path))``, pyarrow datasets,
DuckDB (``con.register_filesystem(fs)`` then ``read_parquet('aep://BATCH/*/*.parquet')``), Dask.
Pickling keeps the listings, so workers never list again.

A listed file that answers 404 makes the filesystem drop its cached listing of that batch and
list it again (once for all the readers that hit it at the same time): a file still listed is
read again (a stale answer; at most :data:`MAX_RELISTS` re-lists per read), a file gone raises
:class:`~aep_io.errors.BatchChangedError`. No read ever returns partial data.

Example:
    >>> # fs = AEPFileSystem()                       # settings from AEP_* variables
    >>> # fs.ls("01JBATCH...")                       # dataset files of the batch
    >>> # pq.ParquetFile(fs.open("aep://01JBATCH.../<file id>/part-0.parquet")).schema_arrow
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import httpx
from fsspec.spec import AbstractBufferedFile, AbstractFileSystem

from aep_io.client import AEPClient
from aep_io.errors import BatchChangedError, ErrorDetail, IncompleteReadError, NotFoundError
from aep_io.http_transport import body_readinto
from aep_io.planning import BatchFile, plan
from aep_io.settings import Settings

__all__ = [
    "MAX_RELISTS",
    "AEPFile",
    "AEPFileSystem",
    "Relist",
    "fetch_range",
    "fetch_range_into",
    "relist_file",
    "reread_after_404",
]

log = logging.getLogger("aep_io.filesystem")

_MAX_RESUMES = 5
#: Times one read (or download) of a file lists its batch again after the file answered 404.
MAX_RELISTS = 2

#: ``relist(file, cause)``: the file as its batch lists it now, or BatchChangedError.
Relist = Callable[[BatchFile, NotFoundError], BatchFile]


def _check_listed(
    file: BatchFile, cause: NotFoundError, listing: Callable[[], Iterable[BatchFile]]
) -> BatchFile:
    """``file`` as ``listing()`` (a fresh listing of its batch) shows it now.

    Raises :class:`~aep_io.errors.BatchChangedError` when it is gone, is listed with another
    size, or the batch itself can no longer be found. ``cause`` is the 404 the file answered.
    """
    detail = ErrorDetail(cause.code, cause.server_message)

    def changed(reason: str) -> BatchChangedError:
        return BatchChangedError(file.batch_id, file.uri, cause.url, reason, detail)

    try:
        files = list(listing())
    except NotFoundError as exc:  # the batch itself is gone
        raise changed(f"cannot be found: listing the batch again failed ({exc})") from exc
    fresh = next((f for f in files if f.path == file.path), None)
    if fresh is None:
        raise changed("is no longer listed in the batch") from cause
    if fresh.size != file.size:
        raise changed(f"is now listed with {fresh.size} bytes, not {file.size}") from cause
    return fresh


def relist_file(client: AEPClient, file: BatchFile, cause: NotFoundError) -> BatchFile:
    """A :data:`Relist` with no cache: plans ``file``'s batch again (Catalog, then Data Access).

    Example:
        >>> # fresh = relist_file(client, planned_file, not_found)   # or BatchChangedError
    """
    return _check_listed(file, cause, lambda: plan([file.batch_id], client=client).files)


def reread_after_404(
    file: BatchFile, cause: NotFoundError, relists: int, relist: Relist
) -> BatchFile:
    """After a listed ``file`` answered 404 (``relists`` re-lists already done for this read):
    the file to read again, as its batch lists it now.

    Raises :class:`~aep_io.errors.BatchChangedError` when the batch no longer lists it, and a
    :class:`~aep_io.errors.NotFoundError` naming the file once :data:`MAX_RELISTS` re-lists
    still show it (the service keeps answering 404 for a file it lists).
    """
    if relists >= MAX_RELISTS:
        raise NotFoundError(
            cause.method, cause.url, 404, ErrorDetail(cause.code, cause.server_message),
            hint=f"{file.uri} is still listed in batch {file.batch_id} but answered 404 "
            f"{relists + 1} times; plan the batch again later",
        ) from cause
    log.info("%s: 404 for a listed file; listing batch %s again", file.uri, file.batch_id)
    return relist(file, cause)


def fetch_range(
    client: AEPClient, file: BatchFile, start: int, end: int, *, relist: Relist | None = None
) -> bytes:
    """Bytes ``[start, end)`` of ``file``, verified (see :func:`fetch_range_into`).

    A server that answers 200 with the whole file is tolerated (the range is cut out of it),
    and a body that breaks off resumes from the last byte received.
    """
    start = max(0, start)
    end = min(end, file.size)
    if start >= end:
        return b""
    out = bytearray(end - start)
    fetch_range_into(client, file, start, memoryview(out), relist=relist)
    return bytes(out)


def _check_content_range(response: httpx.Response, file: BatchFile, start: int, end: int) -> None:
    """A 206 must say it holds the range asked for, of a file of the listed size."""
    expected = f"bytes {start}-{end - 1}/{file.size}"
    got = response.headers.get("content-range", "")
    if got.replace(" ", "") != expected.replace(" ", ""):
        response.close()
        raise IncompleteReadError(
            f"GET {file.url}: asked for {expected!r}, the server answered Content-Range {got!r}"
        )


def fetch_range_into(
    client: AEPClient, file: BatchFile, start: int, out: memoryview, *,
    relist: Relist | None = None,
) -> None:
    """Fill ``out`` with bytes ``[start, start + len(out))`` of ``file``, streaming.

    The body is copied straight into ``out`` (no list of chunks to join). A stream that breaks
    part-way resumes from the last byte received, up to a bound; a body longer or shorter than
    asked for raises :class:`~aep_io.errors.IncompleteReadError`.

    A 404 for the (listed) file lists its batch again with ``relist`` (default:
    :func:`relist_file`) and reads again if it is still listed, at most :data:`MAX_RELISTS`
    times (each counts as a resume); a file gone from the batch raises
    :class:`~aep_io.errors.BatchChangedError`.
    """
    length = len(out)
    if start < 0 or start + length > file.size:
        raise ValueError(f"range {start}+{length} outside {file.path} ({file.size} bytes)")
    fill = _Fill(out, file, start)
    resumes = 0
    relists = 0
    while fill.got < length:
        first = start + fill.got
        whole = first == 0 and length == file.size
        headers = {"Accept-Encoding": "identity"}
        if not whole:
            headers["Range"] = f"bytes={first}-{start + length - 1}"
        try:
            response = client.request("GET", file.url, headers=headers, stream=True)
        except NotFoundError as exc:
            if resumes >= _MAX_RESUMES:
                raise
            file = reread_after_404(
                file, exc, relists, relist or (lambda f, e: relist_file(client, f, e))
            )
            fill.file = file
            relists += 1
            resumes += 1
            continue
        try:
            if response.status_code == 206:
                _check_content_range(response, file, first, start + length)
            skip = 0
            if response.status_code == 200 and not whole:
                skip = first  # the server ignored Range: drop the bytes before the range
            readinto = body_readinto(response)
            if readinto is not None and not skip:  # straight from the socket into ``out``
                fill.read_into(readinto)
            else:
                fill.copy_chunks(response, skip, cut=response.status_code == 200 and not whole)
        except httpx.TransportError as exc:
            resumes += 1
            if resumes > _MAX_RESUMES:
                raise IncompleteReadError(
                    f"GET {file.url}: the body broke off {resumes} times; last at byte "
                    f"{start + fill.got} ({type(exc).__name__}: {exc})"
                ) from exc
            continue
        finally:
            response.close()
        if fill.got < length:
            resumes += 1
            if resumes > _MAX_RESUMES:
                raise IncompleteReadError(
                    f"GET {file.url} bytes {start}-{start + length - 1}: received {fill.got} "
                    f"bytes, expected {length}"
                )


class _Fill:
    """``out`` being filled by the bodies of one or more responses (a broken body resumes from
    ``got``, the bytes already in place)."""

    def __init__(self, out: memoryview, file: BatchFile, start: int) -> None:
        self.out = out
        self.got = 0
        self.file = file
        self.start = start

    def _too_long(self) -> IncompleteReadError:
        return IncompleteReadError(
            f"GET {self.file.url}: the server sent more than the {len(self.out) - self.got} "
            f"bytes left of range {self.start}-{self.start + len(self.out) - 1}"
        )

    def read_into(self, readinto: Callable[[memoryview], int]) -> None:
        """Read a body straight into ``out`` with ``readinto`` (no intermediate bytes)."""
        length = len(self.out)
        while self.got < length:
            n = readinto(self.out[self.got :])
            if not n:
                return  # the body ended early: the caller asks for the rest
            self.got += n
        if readinto(memoryview(bytearray(1))):
            raise self._too_long()

    def copy_chunks(self, response: httpx.Response, skip: int, cut: bool) -> None:
        """Copy a body's chunks into ``out`` after dropping its first ``skip`` bytes; with
        ``cut`` (a server that ignored Range sent the whole file) bytes past ``out`` are
        dropped, else they are an error."""
        length = len(self.out)
        for chunk in response.iter_raw(256 * 1024):
            if skip:
                if len(chunk) <= skip:
                    skip -= len(chunk)
                    continue
                chunk = chunk[skip:]
                skip = 0
            room = length - self.got
            if len(chunk) > room:
                if cut:
                    self.out[self.got :] = chunk[:room]
                    self.got = length
                    return
                raise self._too_long()
            self.out[self.got : self.got + len(chunk)] = chunk
            self.got += len(chunk)


class _Tails:
    """The last bytes of files, kept once read (LRU, bounded).

    Engines that open a file per query read its footer every time (DuckDB: twice per file and
    query, once to bind and once to scan), and export files never change: a read that reaches
    the footer's length field (the last 8 bytes) and starts in the file's last ``max_tail``
    bytes fetches to the end of the file and keeps it.
    """

    def __init__(self, max_tail: int = 1 << 20, max_total: int = 64 << 20) -> None:
        self.max_tail, self.max_total = max_tail, max_total
        self._lock = threading.Lock()
        self._kept: OrderedDict[str, tuple[int, bytes]] = OrderedDict()
        self._total = 0

    def get(self, path: str, start: int, end: int) -> bytes | None:
        with self._lock:
            kept = self._kept.get(path)
            if kept is None or start < kept[0] or end > kept[0] + len(kept[1]):
                return None
            self._kept.move_to_end(path)
            return kept[1][start - kept[0] : end - kept[0]]

    def put(self, path: str, start: int, data: bytes) -> None:
        if len(data) > self.max_tail:
            return
        with self._lock:
            old = self._kept.pop(path, None)
            if old is not None:
                self._total -= len(old[1])
            self._kept[path] = (start, data)
            self._total += len(data)
            while self._total > self.max_total:
                _, (_, dropped) = self._kept.popitem(last=False)
                self._total -= len(dropped)


class AEPFile(AbstractBufferedFile):
    """A read-only file of an export batch; every read not in cache is one ranged GET (reads
    of the file's last MiB, its footer, are kept by the filesystem: see :class:`_Tails`)."""

    def __init__(self, fs: AEPFileSystem, path: str, file: BatchFile, **kwargs: Any) -> None:
        self.batch_file = file
        super().__init__(fs, path, mode="rb", size=file.size, **kwargs)

    def _fetch_range(self, start: int, end: int) -> bytes:
        tails: _Tails = self.fs.tails
        kept = tails.get(self.path, start, end)
        if kept is not None:
            return kept
        fs = self.fs
        if end < self.size - 8 or start < self.size - tails.max_tail:  # not a footer read
            return fetch_range(fs.client, self.batch_file, start, end, relist=fs.relist)
        data = fetch_range(fs.client, self.batch_file, start, self.size, relist=fs.relist)
        tails.put(self.path, start, data)
        return data[: end - start]


class AEPFileSystem(AbstractFileSystem):
    """Read-only fsspec filesystem over AEP export batches (protocol ``aep``).

    Args:
        client: an :class:`~aep_io.client.AEPClient`; one is built from ``settings`` (or the
            environment) when omitted.
        settings: settings for the client, when ``client`` is not given.
        files: already planned files (e.g. from :func:`~aep_io.planning.plan_files`): their
            batches are not listed again.
        max_concurrency: ranged requests in flight in :meth:`cat_ranges`.
        cache_type: fsspec cache of opened files; ``"none"`` (default) moves only the bytes
            asked for. Use ``"readahead"`` for many small sequential reads.
        block_size: read size of opened files when a cache is used.
    """

    protocol = "aep"
    root_marker = ""
    cachable = False  # instances hold credentials; never share them through fsspec's cache

    def __init__(
        self,
        client: AEPClient | None = None,
        *,
        settings: Settings | None = None,
        files: Iterable[BatchFile] = (),
        max_concurrency: int = 8,
        cache_type: str = "none",
        block_size: int = 5 * 2**20,
        **storage_options: Any,
    ) -> None:
        super().__init__(**storage_options)
        self.client = client if client is not None else AEPClient(settings)
        self.max_concurrency = max_concurrency
        self.cache_type = cache_type
        self.block_size = block_size
        self._lock = threading.RLock()
        self._relist_lock = threading.Lock()  # one re-list at a time: concurrent 404s share it
        self._listings: dict[str, list[BatchFile]] = {}
        self._by_path: dict[str, BatchFile] = {}
        self._pool: ThreadPoolExecutor | None = None
        self.tails = _Tails()  # footers read through open(), kept for the next open
        self.add_files(files)

    def __repr__(self) -> str:
        return f"AEPFileSystem(client={self.client!r}, batches={len(self._listings)})"

    def __reduce__(self) -> tuple[Any, ...]:
        with self._lock:
            files = [f for listing in self._listings.values() for f in listing]
            empty = [b for b, listing in self._listings.items() if not listing]
        options = {
            "max_concurrency": self.max_concurrency,
            "cache_type": self.cache_type,
            "block_size": self.block_size,
        }
        return (_rebuild_fs, (self.client, files, empty, options))

    # -- listings ----------------------------------------------------------------------------
    def add_files(self, files: Iterable[BatchFile], *, empty_batches: Sequence[str] = ()) -> None:
        """Cache listings of already planned files (their batches are then never listed)."""
        with self._lock:
            for batch in empty_batches:
                self._listings.setdefault(batch, [])
            for f in files:
                listing = self._listings.setdefault(f.batch_id, [])
                if f.path not in self._by_path:
                    listing.append(f)
                    self._by_path[f.path] = f

    def batch_files(self, batch_id: str) -> list[BatchFile]:
        """The files of one batch (listed once, then cached)."""
        with self._lock:
            cached = self._listings.get(batch_id)
        if cached is not None:
            return list(cached)
        return self._list_batch(batch_id)

    def _list_batch(self, batch_id: str) -> list[BatchFile]:
        """List a batch and cache the listing, in place of any older one in one step (readers
        never see the batch unlisted meanwhile)."""
        planned = plan([batch_id], client=self.client).files
        with self._lock:
            self.invalidate_cache(batch_id)
            self.add_files(planned, empty_batches=[batch_id])
        return planned

    def invalidate_cache(self, path: str | None = None) -> None:
        """Forget cached listings (all, or the batch of ``path``)."""
        with self._lock:
            if path is None:
                self._listings.clear()
                self._by_path.clear()
                return
            batch = self._strip_protocol(path).split("/", 1)[0]
            for f in self._listings.pop(batch, []):
                self._by_path.pop(f.path, None)

    def relist(self, file: BatchFile, cause: NotFoundError) -> BatchFile:
        """``file`` as its batch lists it now, after it answered 404 (a :data:`Relist`).

        Lists the batch again and replaces its cached listing, unless another reader already did
        so since ``file`` was looked up (readers that hit the same stale file together cause one
        re-list). Raises :class:`~aep_io.errors.BatchChangedError` when the file is gone.
        """
        batch = file.batch_id

        def listing() -> list[BatchFile]:
            with self._relist_lock:
                with self._lock:
                    cached = self._listings.get(batch)
                    refreshed = cached is not None and self._by_path.get(file.path) is not file
                if refreshed and cached is not None:
                    return list(cached)
                return self._list_batch(batch)

        return _check_listed(file, cause, listing)

    @classmethod
    def _strip_protocol(cls, path: Any) -> str:
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]  # type: ignore[return-value]
        text = str(path)
        if text.startswith("aep://"):
            text = text[len("aep://") :]
        elif text.startswith("aep::"):
            text = text[len("aep::") :]
        return text.strip("/")

    def _file(self, path: str) -> BatchFile:
        path = self._strip_protocol(path)
        parts = path.split("/")
        if len(parts) != 3 or not all(parts):
            raise FileNotFoundError(
                f"aep://{path} is not a file path; files are aep://<batchId>/<dataSetFileId>/<name>"
            )
        self.batch_files(parts[0])
        with self._lock:
            found = self._by_path.get(path)
        if found is None:
            raise FileNotFoundError(f"aep://{path}: no such file in batch {parts[0]}")
        return found

    @staticmethod
    def _file_entry(f: BatchFile) -> dict[str, Any]:
        return {"name": f.path, "size": f.size, "type": "file", "url": f.url, "mtime": f.modified}

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        """List a batch (its dataset files, as directories), a dataset file, or one file."""
        path = self._strip_protocol(path)
        parts = path.split("/") if path else []
        if not parts:
            with self._lock:
                batches = sorted(self._listings)
            entries = [{"name": b, "size": 0, "type": "directory"} for b in batches]
        elif len(parts) == 1:
            files = self.batch_files(parts[0])
            dirs = dict.fromkeys(f"{f.batch_id}/{f.file_id}" for f in files)
            entries = [{"name": d, "size": 0, "type": "directory"} for d in dirs]
        elif len(parts) == 2:
            files = [f for f in self.batch_files(parts[0]) if f.file_id == parts[1]]
            if not files:
                raise FileNotFoundError(f"aep://{path}: no dataset file {parts[1]} in {parts[0]}")
            entries = [self._file_entry(f) for f in files]
        else:
            entries = [self._file_entry(self._file(path))]
        return entries if detail else [e["name"] for e in entries]

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        """Size and type from the cached listings (no request once the batch is listed)."""
        path = self._strip_protocol(path)
        parts = path.split("/") if path else []
        if len(parts) == 3:
            return self._file_entry(self._file(path))
        if len(parts) == 1:
            self.batch_files(parts[0])
            return {"name": path, "size": 0, "type": "directory"}
        if len(parts) == 2:
            self.ls(path)
            return {"name": path, "size": 0, "type": "directory"}
        return {"name": "", "size": 0, "type": "directory"}

    def modified(self, path: str) -> datetime:
        """Last update of the file's dataset file (epoch when the listing did not say)."""
        found = self._file(path)
        return found.modified or datetime.fromtimestamp(0).astimezone()

    def created(self, path: str) -> datetime:
        """Same as :meth:`modified` (AEP files are written once)."""
        return self.modified(path)

    # -- reading -------------------------------------------------------------------------------
    def _open(
        self,
        path: str,
        mode: str = "rb",
        block_size: int | None = None,
        autocommit: bool = True,
        cache_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> AEPFile:
        if mode != "rb":
            raise PermissionError(f"aep:// is read-only; cannot open {path} with mode {mode!r}")
        found = self._file(path)
        cache_type = kwargs.pop("cache_type", self.cache_type)
        kwargs.pop("size", None)
        return AEPFile(
            self,
            found.path,
            found,
            block_size=block_size or self.block_size,
            cache_type=cache_type,
            cache_options=cache_options,
        )

    def cat_file(
        self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any
    ) -> bytes:
        """Bytes ``[start, end)`` of a file (negative positions count from the end)."""
        found = self._file(path)
        lo, hi = _resolve(found.size, start, end)
        return fetch_range(self.client, found, lo, hi, relist=self.relist)

    def read_into(self, path: str, start: int, out: memoryview) -> None:
        """Fill ``out`` with the file's bytes from ``start`` (one streamed ranged GET)."""
        fetch_range_into(self.client, self._file(path), start, out, relist=self.relist)

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    max_workers=self.max_concurrency, thread_name_prefix="aep-range"
                )
            return self._pool

    def cat_ranges(
        self,
        paths: list[str],
        starts: int | list[int],
        ends: int | list[int],
        max_gap: int | None = None,
        on_error: str = "return",
        **kwargs: Any,
    ) -> list[bytes | Exception]:
        """Fetch many ranges concurrently (``max_concurrency`` requests in flight)."""
        n = len(paths)
        starts_l = starts if isinstance(starts, list) else [starts] * n
        ends_l = ends if isinstance(ends, list) else [ends] * n
        if len(starts_l) != n or len(ends_l) != n:
            raise ValueError("paths, starts and ends must have the same length")

        def one(args: tuple[str, int | None, int | None]) -> bytes | Exception:
            try:
                return self.cat_file(*args)
            except Exception as exc:
                if on_error == "raise":
                    raise
                return exc

        return list(self._executor().map(one, zip(paths, starts_l, ends_l, strict=True)))

    def close(self) -> None:
        """Stop the range-fetch threads (the client stays open: it may be shared)."""
        with self._lock:
            if self._pool is not None:
                self._pool.shutdown(wait=False)
                self._pool = None


def _resolve(size: int, start: int | None, end: int | None) -> tuple[int, int]:
    lo = 0 if start is None else (max(0, size + start) if start < 0 else start)
    hi = size if end is None else (max(0, size + end) if end < 0 else min(end, size))
    return lo, hi


def _rebuild_fs(
    client: AEPClient, files: list[BatchFile], empty: list[str], options: dict[str, Any]
) -> AEPFileSystem:
    fs = AEPFileSystem(client, **options)
    fs.add_files(files, empty_batches=empty)
    return fs

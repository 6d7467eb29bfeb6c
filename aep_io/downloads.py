"""Download export batches to a local directory: parallel, streamed to disk, resumable.

Files land at ``dest/{batchId}/{dataSetFileId}/{name}``, the same layout as the ``aep://`` paths,
so a later read is a local glob (``dest/{batchId}/*/*.parquet``). Several files download at once
(``max_workers``); each one is streamed into ``{name}.part`` and renamed to its final name only
once it has the listed size and is flushed to disk, so a final-named file is always complete.

A re-run skips complete files and continues every ``.part`` from its length with
``Range: bytes={length}-``; a stream that breaks mid-file is resumed the same way (a bounded number
of times, then :class:`DownloadError`). Nothing is ever held whole in memory.

A listed file that answers 404 has its batch listed again: still listed, it is fetched again
(counted as a resume; at most :data:`~aep_io.filesystem.MAX_RELISTS` re-lists per file); gone,
the download stops with :class:`~aep_io.errors.BatchChangedError` (its ``.part`` kept).

Example:
    >>> # report = download(["01JBATCH..."], "exports")      # needs AEP_* settings or a client
    >>> # print(report)
    >>> # 4 files: 4 downloaded; 12.3 MiB transferred in 1.20s (10.2 MiB/s)
    >>> # polars.read_parquet("exports/01JBATCH.../*/*.parquet")
    >>> print(DownloadReport(files=2, skipped=1, resumed=0, downloaded=1,
    ...                      bytes_transferred=1536, bytes_present=2048, seconds=0.5))
    2 files: 1 downloaded, 1 already complete; 1.5 KiB transferred, 2.0 KiB already present in 0.50s (3.0 KiB/s)
"""  # noqa: E501

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any, Literal

import httpx

from aep_io.client import AEPClient
from aep_io.errors import AEPError, IncompleteReadError, NotFoundError, TransportError
from aep_io.filesystem import relist_file, reread_after_404
from aep_io.planning import BatchFile, plan_files

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_MAX_RESUMES",
    "PART_SUFFIX",
    "DownloadError",
    "DownloadReport",
    "body_span",
    "download",
    "local_path",
    "present_bytes",
]

log = logging.getLogger("aep_io.downloads")

DEFAULT_CHUNK_SIZE = 8 * 2**20
DEFAULT_MAX_RESUMES = 5
PART_SUFFIX = ".part"

_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)\s*-\s*(\d+)\s*/\s*(\d+|\*)\s*$", re.IGNORECASE)

Progress = Callable[[int], Any]


class DownloadError(TransportError):
    """A file could not be downloaded completely: its stream kept breaking, or the network failed.

    The bytes received so far stay in ``{name}.part``; running the download again resumes there.

    Attributes:
        file: the file that failed.
        attempts: the GET requests made for it in this run.
        bytes_on_disk: the length of its ``.part`` file.
        cause: what went wrong the last time.
    """

    def __init__(self, file: BatchFile, attempts: int, bytes_on_disk: int, cause: str) -> None:
        self.file = file
        self.attempts = attempts
        self.bytes_on_disk = bytes_on_disk
        self.cause = cause
        super().__init__(
            f"download of {file.uri} failed after {attempts} attempt(s), with {bytes_on_disk} of "
            f"{file.size} bytes on disk; last cause: {cause}. Run the download again to resume"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.file, self.attempts, self.bytes_on_disk, self.cause))


@dataclass(frozen=True)
class DownloadReport:
    """What a :func:`download` did.

    Attributes:
        files: files in the batches (or given).
        skipped: files already complete on disk (no request).
        resumed: files completed from an existing ``.part``.
        downloaded: files fetched from their first byte.
        bytes_transferred: body bytes received in this run.
        bytes_present: bytes already on disk that were kept (complete files and resumed parts).
        seconds: wall time of the run.
        retries: GETs repeated to resume a stream that broke mid-file (or to fetch again a
            file that answered 404 while its batch still lists it).
    """

    files: int
    skipped: int
    resumed: int
    downloaded: int
    bytes_transferred: int
    bytes_present: int
    seconds: float
    retries: int = 0

    def __str__(self) -> str:
        kinds = [(self.downloaded, "downloaded"), (self.resumed, "resumed"),
                 (self.skipped, "already complete")]
        what = ", ".join(f"{n} {label}" for n, label in kinds if n) or "nothing to do"
        moved = f"{_human(self.bytes_transferred)} transferred"
        if self.bytes_present:
            moved += f", {_human(self.bytes_present)} already present"
        speed = self.bytes_transferred / self.seconds if self.seconds > 0 else 0.0
        text = f"{self.files} files: {what}; {moved} in {self.seconds:.2f}s ({_human(speed)}/s)"
        if self.retries:
            text += f"; {self.retries} broken stream(s) resumed"
        return text


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"  # pragma: no cover


# -- paths and local state ----------------------------------------------------------------------
def local_path(dest: str | Path, file: BatchFile) -> Path:
    """Where ``file`` is stored under ``dest``: ``dest/{batch_id}/{file_id}/{name}``.

    Each part must be one plain path component: a listing naming ``../x`` or ``a/b`` is refused,
    so nothing is ever written outside ``dest``.

    Example:
        >>> local_path("out", BatchFile("B1", "F1", "part-0.parquet", 10, "https://x")).as_posix()
        'out/B1/F1/part-0.parquet'
    """
    for part in (file.batch_id, file.file_id, file.name):
        pure = PurePath(part)
        if (
            not part
            or part in (".", "..")
            or pure.name != part
            or pure.drive
            or pure.is_absolute()
            or "\0" in part
            or "/" in part
            or "\\" in part
        ):
            raise AEPError(
                f"refusing to download {file.uri}: {part!r} is not a plain file name, so it "
                "could be written outside the destination directory"
            )
    return Path(dest, file.batch_id, file.file_id, file.name)


def _part_path(final: Path) -> Path:
    return final.with_name(final.name + PART_SUFFIX)


State = Literal["complete", "partial", "absent"]


def _local_state(final: Path, part: Path, size: int) -> tuple[State, int]:
    """``("complete", size)``, ``("partial", bytes usable in the .part)`` or ``("absent", 0)``.

    A final file of another size, or a ``.part`` longer than ``size``, is not usable.
    """
    try:
        if final.stat().st_size == size and final.is_file():
            return "complete", size
    except FileNotFoundError:
        pass
    try:
        have = part.stat().st_size
    except FileNotFoundError:
        return "absent", 0
    if have > size:
        return "absent", 0
    return "partial", have


def present_bytes(files: Iterable[BatchFile], dest: str | Path) -> int:
    """Bytes of ``files`` already usable under ``dest`` (complete files and resumable parts).

    A progress display starts from this; :func:`download` then reports only what it transfers.
    """
    total = 0
    for f in _unique(files):
        final = local_path(dest, f)
        total += _local_state(final, _part_path(final), f.size)[1]
    return total


def _unique(files: Iterable[BatchFile]) -> list[BatchFile]:
    """The files in order, each path once (the first one listed wins)."""
    seen: dict[str, BatchFile] = {}
    for f in files:
        seen.setdefault(f.path, f)
    return list(seen.values())


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # e.g. Windows: directories cannot be opened; the rename is durable enough
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# -- one response -----------------------------------------------------------------------------
def body_span(status: int, content_range: str | None, start: int, size: int) -> tuple[int, int]:
    """Which bytes ``[first, end)`` of a ``size``-byte file a response body holds.

    ``start`` is the offset asked with ``Range: bytes={start}-`` (0: no Range was sent).

    * 200: the whole file (the server ignored the Range): ``(0, size)``, so the download must
      restart from its first byte.
    * 206: the ``Content-Range``, which must begin at ``start``, lie inside the file and agree
      with the listed size.

    Anything else raises :class:`~aep_io.errors.IncompleteReadError`.

    Example:
        >>> body_span(206, "bytes 100-999/1000", 100, 1000), body_span(200, None, 100, 1000)
        ((100, 1000), (0, 1000))
    """
    if status == 200:
        return 0, size
    if status != 206:
        raise IncompleteReadError(f"expected HTTP 200 or 206 for a file download, got {status}")
    match = _CONTENT_RANGE.match(content_range or "")
    if match is None:
        raise IncompleteReadError(
            f"HTTP 206 with an unusable Content-Range {content_range!r} (asked bytes={start}-)"
        )
    first, last, total = int(match[1]), int(match[2]), match[3]
    if total != "*" and int(total) != size:
        raise IncompleteReadError(
            f"the server says the file has {total} bytes but the listing said {size}: the file "
            "changed since it was listed; plan the batch again"
        )
    if first != start or last < first or last >= size:
        raise IncompleteReadError(
            f"asked bytes={start}- of a {size}-byte file, the server sent {content_range!r}"
        )
    return first, last + 1


class _Broken(Exception):
    """The body stopped before the bytes promised: resumable."""


class _Stopped(Exception):
    """Another file failed, or the run was interrupted: stop at the next chunk."""


class _FileJob:
    """Downloads one file into its ``.part``, then renames it."""

    def __init__(
        self,
        client: AEPClient,
        file: BatchFile,
        final: Path,
        *,
        chunk_size: int,
        max_resumes: int,
        emit: Progress,
        stop: threading.Event,
    ) -> None:
        self.client = client
        self.file = file
        self.final = final
        self.part = _part_path(final)
        self.chunk_size = chunk_size
        self.max_resumes = max_resumes
        self.emit = emit
        self.stop = stop
        self.transferred = 0
        self.present = 0
        self.attempts = 0
        self.retries = 0
        self.relists = 0

    def run(self) -> tuple[State, int]:
        """Download the file; return its local state before the run and the bytes reused."""
        size = self.file.size
        state, have = _local_state(self.final, self.part, size)
        if state == "complete":
            self.present = size
            return state, size
        self.final.parent.mkdir(parents=True, exist_ok=True)
        if self.final.exists():  # a final file of the wrong size: never leave it looking complete
            self.final.unlink()
        if state == "absent" and self.part.exists():  # longer than the listed size: discard
            log.info("%s: discarding %s, longer than the listed size", self.file.uri, self.part)
            self.part.unlink()
        self.present = have
        broken: str | None = None
        while have < size:
            if self.stop.is_set():
                raise _Stopped
            if broken is not None:
                if self.retries >= self.max_resumes:
                    raise DownloadError(self.file, self.attempts, have, broken)
                self.retries += 1
                policy = self.client.retry
                delay = min(policy.max_backoff, policy.initial_backoff * 2 ** (self.retries - 1))
                log.info("%s: %s; resuming from byte %d in %.2fs", self.file.uri, broken, have,
                         delay)
                policy.sleep(delay)
            try:
                have = self._fetch(have)
                broken = None
            except _Broken as exc:
                broken = str(exc)
                have = self._part_length()
            except NotFoundError as exc:  # listed, yet 404: is the listing stale, or the batch?
                if self.retries >= self.max_resumes:
                    raise
                self.file = reread_after_404(
                    self.file, exc, self.relists,
                    lambda f, e: relist_file(self.client, f, e),
                )
                self.relists += 1
                broken = "the file answered 404 but is still listed"
                have = self._part_length()
            except TransportError as exc:  # the request itself failed after the client's retries
                raise DownloadError(self.file, self.attempts, self._part_length(),
                                    f"{type(exc).__name__}: {exc}") from exc
            except IncompleteReadError as exc:  # the server contradicts the listing
                self.part.unlink(missing_ok=True)
                raise IncompleteReadError(f"{self.file.uri}: {exc}") from exc
        self._finalize()
        return state, self.present

    def _part_length(self) -> int:
        try:
            return self.part.stat().st_size
        except FileNotFoundError:
            return 0

    def _fetch(self, start: int) -> int:
        """One GET from ``start``, appended to the ``.part``; returns its new length."""
        size = self.file.size
        headers = {"Accept-Encoding": "identity"}  # byte offsets must be those of the file
        if start:
            headers["Range"] = f"bytes={start}-"
        self.attempts += 1
        response = self.client.request("GET", self.file.url, headers=headers, stream=True)
        try:
            first, end = body_span(
                response.status_code, response.headers.get("content-range"), start, size
            )
            length = response.headers.get("content-length")
            encoded = response.headers.get("content-encoding", "identity").lower() != "identity"
            if length is not None and not encoded and int(length) != end - first:
                raise IncompleteReadError(
                    f"Content-Length {length} for bytes [{first}, {end}) of a {size}-byte file"
                )
            if first != start:  # 200 to a ranged GET: start again from the first byte
                log.info("%s: the server ignored Range; restarting from byte 0", self.file.uri)
                self.emit(-start)
                self.present = 0
            position = first
            with open(self.part, "ab" if first else "wb", buffering=self.chunk_size) as out:
                if out.tell() != first:
                    raise AEPError(f"{self.part} changed while it was being downloaded")
                try:
                    for chunk in response.iter_bytes():
                        if self.stop.is_set():
                            raise _Stopped
                        if position + len(chunk) > end:
                            raise IncompleteReadError(
                                f"the body runs past byte {end} of a {size}-byte file"
                            )
                        out.write(chunk)
                        position += len(chunk)
                        self.transferred += len(chunk)
                        self.emit(len(chunk))
                except httpx.TransportError as exc:  # reset, timeout, body cut short...
                    raise _Broken(
                        f"the stream broke at byte {position}: {type(exc).__name__}: {exc}"
                    ) from exc
            if position < end:
                raise _Broken(f"the body ended at byte {position}, before byte {end}")
            return position
        finally:
            response.close()

    def _finalize(self) -> None:
        with open(self.part, "ab") as out:  # creates an empty .part for a zero-byte file
            out.flush()
            os.fsync(out.fileno())
            length = os.fstat(out.fileno()).st_size
        if length != self.file.size:  # pragma: no cover - guarded by the loop above
            raise IncompleteReadError(
                f"{self.file.uri}: {self.part} has {length} bytes, expected {self.file.size}"
            )
        os.replace(self.part, self.final)
        _fsync_dir(self.final.parent)


# -- the whole download ----------------------------------------------------------------------
def _resolve(
    batches: str | BatchFile | Iterable[str] | Iterable[BatchFile],
) -> tuple[list[str], list[BatchFile]]:
    if isinstance(batches, str | BatchFile):
        items: list[Any] = [batches]
    else:
        items = list(batches)
    if all(isinstance(x, BatchFile) for x in items):
        return [], _unique(items)
    if all(isinstance(x, str) for x in items):
        return list(dict.fromkeys(items)), []
    raise TypeError("download() takes batch ids (str) or BatchFile objects, not a mix")


def _serialized(progress: Progress | None) -> Progress:
    if progress is None:
        return lambda n: None
    lock = threading.Lock()

    def emit(n: int) -> None:
        if n:
            with lock:
                progress(n)

    return emit


def download(
    batches: str | BatchFile | Iterable[str] | Iterable[BatchFile],
    dest: str | Path,
    *,
    client: AEPClient | None = None,
    max_workers: int = 4,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: Progress | None = None,
    max_resumes: int = DEFAULT_MAX_RESUMES,
) -> DownloadReport:
    """Download the files of export batches into ``dest/{batch_id}/{file_id}/{name}``.

    Args:
        batches: batch ids (listed with :func:`~aep_io.planning.plan_files`), or already planned
            :class:`~aep_io.planning.BatchFile` objects.
        dest: the destination directory (created if missing).
        client: the client to use; one from the environment's settings when omitted (and only
            if there is something to list or fetch).
        max_workers: files downloaded at once.
        chunk_size: bytes buffered per file before a write to disk.
        progress: called with the change in bytes on disk as data arrives, from one thread at a
            time; negative when a ``.part`` is discarded because the server ignored the Range.
            Start a display at :func:`present_bytes`.
        max_resumes: how many times a stream that breaks mid-file is resumed before giving up.

    Returns:
        A :class:`DownloadReport`.

    Raises:
        DownloadError: a file's stream kept breaking (or the network failed); its ``.part`` is
            kept, so running again resumes it.
        BatchChangedError: a file answered 404 and its batch no longer lists it: plan again.
        HTTPStatusError: the server refused a request (404, 401...).
        IncompleteReadError: the server's answer contradicts the listing (another size...).

    On an error the other files stop at their next chunk, keeping their ``.part`` files.

    Example:
        >>> # report = download("01JBATCH...", "exports", max_workers=8)
        >>> # report.bytes_transferred, report.skipped
    """
    if max_workers < 1:
        raise ValueError(f"max_workers={max_workers} must be at least 1")
    if chunk_size < 1:
        raise ValueError(f"chunk_size={chunk_size} must be at least 1")
    if max_resumes < 0:
        raise ValueError(f"max_resumes={max_resumes} must be at least 0")
    started = time.perf_counter()
    root = Path(dest)
    batch_ids, files = _resolve(batches)
    own = client is None and bool(batch_ids)  # else created only if a file must be fetched
    if own:
        client = AEPClient()
    try:
        if batch_ids:
            assert client is not None
            files = _unique(plan_files(batch_ids, client=client))
        root.mkdir(parents=True, exist_ok=True)
        finals = [local_path(root, f) for f in files]  # refuse unsafe names before any transfer
        pending: list[tuple[BatchFile, Path]] = []
        skipped = 0
        present = 0
        for f, final in zip(files, finals, strict=True):
            if _local_state(final, _part_path(final), f.size)[0] == "complete":
                skipped += 1
                present += f.size
            else:
                pending.append((f, final))
        emit = _serialized(progress)
        stop = threading.Event()
        jobs: list[_FileJob] = []
        if pending:
            if client is None:
                own, client = True, AEPClient()
            jobs = [
                _FileJob(client, f, final, chunk_size=chunk_size, max_resumes=max_resumes,
                         emit=emit, stop=stop)
                for f, final in pending
            ]
        counts = {"resumed": 0, "downloaded": 0}
        if jobs:
            pool = ThreadPoolExecutor(
                max_workers=min(max_workers, len(jobs)), thread_name_prefix="aep-download"
            )
            try:
                futures = {pool.submit(job.run): job for job in jobs}
                for future in as_completed(futures):
                    state, _ = future.result()
                    job = futures[future]
                    if state == "complete":
                        skipped += 1
                    elif job.present > 0:
                        counts["resumed"] += 1
                    else:
                        counts["downloaded"] += 1
            except BaseException:
                stop.set()  # the others stop at their next chunk, keeping their .part files
                raise
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
        present += sum(job.present for job in jobs)
        return DownloadReport(
            files=len(files),
            skipped=skipped,
            resumed=counts["resumed"],
            downloaded=counts["downloaded"],
            bytes_transferred=sum(job.transferred for job in jobs),
            bytes_present=present,
            seconds=time.perf_counter() - started,
            retries=sum(job.retries for job in jobs),
        )
    finally:
        if own and client is not None:
            client.close()

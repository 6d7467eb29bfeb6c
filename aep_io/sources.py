"""What to read: export batch ids, ``aep://`` paths, or any fsspec URL, glob or local path.

A :class:`Source` is resolved lazily (:meth:`Source.files`), so building a LazyFrame or a DuckDB
view makes no network call. Batch ids and ``aep://`` URLs go through
:class:`~aep_io.filesystem.AEPFileSystem`; anything else through fsspec (``file://``, ``s3://``,
``gs://``, ``abfs://``, a local directory...), which is how exports that land through AEP
dataset-export destinations are read with the same API.

Example:
    >>> src = Source.of(["/tmp/export/*.parquet"])
    >>> src.description
    '1 location(s)'
"""

from __future__ import annotations

import inspect
import os
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from errno import ENAMETOOLONG
from typing import Any

import fsspec
from fsspec.spec import AbstractFileSystem

from aep_io.client import AEPClient
from aep_io.filesystem import AEPFileSystem
from aep_io.planning import BatchFile, plan
from aep_io.settings import Settings

__all__ = ["ScanFile", "Source", "looks_like_batch_id"]

_BATCH_ID = re.compile(r"^[0-9A-Za-z][0-9A-Za-z_-]{7,63}$")
_GLOB_CHARS = re.compile(r"[*?\[]")


def looks_like_batch_id(text: str) -> bool:
    """A bare Catalog batch id (no scheme, no slash), as opposed to a path or URL."""
    return bool(_BATCH_ID.match(text)) and "." not in text


@dataclass(frozen=True)
class ScanFile:
    """One parquet file to read: its filesystem, path and size (size known avoids a HEAD)."""

    fs: AbstractFileSystem
    path: str
    size: int
    batch_id: str | None = None

    @property
    def display(self) -> str:
        """A readable location for messages."""
        protocol = self.fs.protocol if isinstance(self.fs.protocol, str) else self.fs.protocol[0]
        return f"{protocol}://{self.path}"


class Source:
    """A lazily resolved set of parquet files.

    Build it with :meth:`of`; call :meth:`files` to resolve (cached; thread-safe).
    """

    def __init__(
        self,
        batch_ids: Sequence[str] = (),
        urls: Sequence[str] = (),
        *,
        planned: Sequence[BatchFile] = (),
        client: AEPClient | None = None,
        settings: Settings | None = None,
        filesystem: AbstractFileSystem | None = None,
        storage_options: dict[str, Any] | None = None,
    ) -> None:
        for name, value, kind, wanted in (
            ("client", client, AEPClient, "an AEPClient"),
            ("settings", settings, Settings, "a Settings"),
            ("filesystem", filesystem, AbstractFileSystem, "an fsspec filesystem"),
            ("storage_options", storage_options, Mapping, "a dict"),
        ):
            if value is not None and not isinstance(value, kind):
                raise TypeError(f"{name} must be {wanted}, not {type(value).__name__}")
        self.batch_ids = list(dict.fromkeys(batch_ids))
        self.urls = list(urls)
        self.planned = list(planned)
        self._client = client
        self._settings = settings
        self._filesystem = filesystem
        self._storage_options = storage_options or {}
        self._lock = threading.Lock()
        self._files: list[ScanFile] | None = None
        self._aep_fs: AEPFileSystem | None = None
        #: Catalog record counts of the batches planned by this source (checked after reads)
        self.record_counts: dict[str, int] = {}

    @classmethod
    def of(
        cls,
        what: str | BatchFile | Iterable[str | BatchFile],
        *,
        client: AEPClient | None = None,
        settings: Settings | None = None,
        filesystem: AbstractFileSystem | None = None,
        storage_options: dict[str, Any] | None = None,
    ) -> Source:
        """Sort batch ids, ``aep://`` URLs, planned files and other URLs into a source."""
        if isinstance(what, str | BatchFile):
            items: list[Any] = [what]
        elif isinstance(what, bytes | bytearray | Mapping) or not isinstance(what, Iterable):
            raise TypeError(f"expected a batch id, a path or a URL, or a list of them; got "
                            f"{type(what).__name__} {what!r:.60}")  # fmt: skip
        else:
            items = list(what)
        if not items:
            raise ValueError("nothing to read: give at least one batch id, path or URL")
        batch_ids: list[str] = []
        urls: list[str] = []
        planned: list[BatchFile] = []
        for i, item in enumerate(items):
            where = "" if len(items) == 1 else f" (item {i})"
            if isinstance(item, BatchFile):
                planned.append(item)
            elif not isinstance(item, str):
                raise TypeError(f"expected a batch id, a path or a URL{where}, got "
                                f"{type(item).__name__} {item!r:.60}")  # fmt: skip
            elif not item.strip() or "\x00" in item:
                raise ValueError(f"{item!r:.60}{where} is not a batch id, a path or a URL: "
                                 f"{'it is blank' if not item.strip() else 'it holds a NUL'}")
            elif item.startswith("aep://") and not item[len("aep://") :].strip("/"):
                raise ValueError(f"{item!r}{where} names no batch: write aep://<batch id> or "
                                 "aep://<batch id>/<file id>/<name>")  # fmt: skip
            elif item.startswith("aep://") and "/" not in item[len("aep://") :].strip("/"):
                batch_ids.append(item[len("aep://") :].strip("/"))
            elif item.startswith("aep://") or filesystem is not None:
                urls.append(item)
            elif looks_like_batch_id(item) and not os.path.exists(item):
                batch_ids.append(item)
            else:
                urls.append(item)
        return cls(batch_ids, urls, planned=planned, client=client, settings=settings,
                   filesystem=filesystem, storage_options=storage_options)

    @property
    def description(self) -> str:
        """A short summary for ``explain()`` and messages (no network)."""
        parts = []
        if self.batch_ids:
            parts.append(f"{len(self.batch_ids)} batch(es)")
        if self.planned:
            parts.append(f"{len(self.planned)} planned file(s)")
        if self.urls:
            parts.append(f"{len(self.urls)} location(s)")
        return ", ".join(parts)

    @property
    def aep_filesystem(self) -> AEPFileSystem:
        """The ``aep://`` filesystem of this source (created on first use)."""
        with self._lock:
            if self._aep_fs is None:
                fs = self._filesystem if isinstance(self._filesystem, AEPFileSystem) else None
                if fs is None:
                    client = self._client or AEPClient(self._settings)
                    fs = AEPFileSystem(client)
                self._aep_fs = fs
            return self._aep_fs

    def files(self) -> list[ScanFile]:
        """Resolve into files, in a stable order (batches in the order given, then URLs)."""
        with self._lock:
            if self._files is not None:
                return list(self._files)
        out: list[ScanFile] = []
        if self.batch_ids or self.planned or any(u.startswith("aep://") for u in self.urls):
            fs = self.aep_filesystem
            if self.planned:
                fs.add_files(self.planned)
            if self.batch_ids:
                missing = [b for b in self.batch_ids if b not in fs._listings]
                if missing:
                    planned = plan(missing, client=fs.client)
                    fs.add_files(planned.files, empty_batches=missing)
                    self.record_counts.update(
                        {b.batch_id: b.record_count for b in planned.batches
                         if b.record_count is not None}
                    )
                for batch in self.batch_ids:
                    out.extend(ScanFile(fs, f.path, f.size, f.batch_id)
                               for f in fs.batch_files(batch) if _is_data_file(f.name))
            out.extend(ScanFile(fs, f.path, f.size, f.batch_id) for f in self.planned)
        for url in self.urls:
            out.extend(self._resolve_url(url))
        seen: set[tuple[int, str]] = set()
        unique = []
        for f in out:
            key = (id(f.fs), f.path)
            if key not in seen:
                seen.add(key)
                unique.append(f)
        with self._lock:
            self._files = unique
        return list(unique)

    def _resolve_url(self, url: str) -> list[ScanFile]:
        if url.startswith("aep://"):
            fs: AbstractFileSystem = self.aep_filesystem
            path = fs._strip_protocol(url)
        elif self._filesystem is not None:
            fs, path = self._filesystem, self._filesystem._strip_protocol(url)
        else:
            fs, path = fsspec.core.url_to_fs(url, **_no_read_ahead(url, self._storage_options))
        try:
            if _GLOB_CHARS.search(path):
                found = fs.glob(path, detail=True)
                infos = [found[p] for p in sorted(found)]
            else:
                info = fs.info(path)
                if info.get("type") == "directory":
                    found = fs.find(path, detail=True)
                    infos = [found[p] for p in sorted(found) if _is_data_file(p)]
                else:
                    infos = [info]
        except OSError as exc:
            missing = isinstance(exc, FileNotFoundError) or exc.errno == ENAMETOOLONG
            if "://" in url or not missing:
                raise
            raise FileNotFoundError(
                f"{url[:100]!r} is neither an export batch id (8 to 64 letters, digits, '-' or "
                "'_') nor an existing file or directory"
            ) from None
        if not infos:
            raise FileNotFoundError(f"{url}: no files match")
        batch = path.split("/", 1)[0] if isinstance(fs, AEPFileSystem) else None
        return [
            ScanFile(fs, i["name"], int(i.get("size") or 0), batch)
            for i in infos
            if i.get("type", "file") == "file"
        ]


def _no_read_ahead(url: str, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` plus ``default_cache_type="none"`` for filesystems that take it.

    The reader core fetches exact ranges with ``cat_file`` (no cache involved), but pyarrow
    datasets (``to_duckdb``) read through ``fs.open``, and s3fs (like adlfs and gcsfs) opens files
    with a read-ahead cache of ``default_block_size`` (s3fs: 50 MB): a two-column query would
    move whole parts. Without a cache, every read is one ranged GET of the bytes asked for,
    as through ``aep://``. A ``default_cache_type`` given by the caller is kept.
    """
    if "default_cache_type" in options or "::" in url:
        return options
    protocol = url.split("://", 1)[0] if "://" in url else "file"
    try:
        cls = fsspec.get_filesystem_class(protocol)
        takes = "default_cache_type" in inspect.signature(cls.__init__).parameters
    except (ImportError, ValueError, TypeError):
        return options  # unknown protocol: fsspec reports it when building the filesystem
    return {**options, "default_cache_type": "none"} if takes else options


def _is_data_file(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    return not base.startswith(("_", ".")) and not base.endswith((".crc", ".json", ".tmp"))

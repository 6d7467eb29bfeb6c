"""Planning: from export batch ids to the list of parquet files to read (metadata only).

For each batch, :func:`plan` checks the Catalog batch (it must be readable: ``success`` or
``active``), lists its dataset files through Data Access (following every ``_links.next`` page)
and lists each dataset file's physical files, descending into nested directories. Requests run
in parallel; the result is plain, picklable data.

Example:
    >>> # files = plan_files(["01JBATCH..."])            # needs AEP_* settings or a client
    >>> f = BatchFile("B1", "F1-1", "part-0.parquet", 10, "https://platform.adobe.io/x")
    >>> f.path
    'B1/F1-1/part-0.parquet'
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from aep_io.client import AEPClient, Service, check_id
from aep_io.errors import AEPError, BatchNotReadyError
from aep_io.paging import iter_linked_pages

__all__ = ["READABLE_BATCH_STATUSES", "BatchFile", "BatchInfo", "Plan", "plan", "plan_files"]

READABLE_BATCH_STATUSES = frozenset({"success", "active"})
_MAX_DEPTH = 16


@dataclass(frozen=True)
class BatchFile:
    """One physical file of an export batch.

    Attributes:
        batch_id: the Catalog batch.
        file_id: the Data Access ``dataSetFileId`` that holds the file.
        name: the physical file name (``part-00000-....snappy.parquet``).
        size: its length in bytes, from the listing.
        url: the download URL (``.../files/{file_id}?path={name}``).
        modified: when the dataset file was last updated, if the listing said.
    """

    batch_id: str
    file_id: str
    name: str
    size: int
    url: str
    modified: datetime | None = None

    @property
    def path(self) -> str:
        """The path inside the ``aep://`` filesystem: ``{batch_id}/{file_id}/{name}``."""
        return f"{self.batch_id}/{self.file_id}/{self.name}"

    @property
    def uri(self) -> str:
        """The ``aep://`` URL of the file."""
        return f"aep://{self.path}"


@dataclass(frozen=True)
class BatchInfo:
    """What Catalog says about a batch."""

    batch_id: str
    status: str
    record_count: int | None
    dataset_id: str | None
    raw: dict[str, Any]


@dataclass(frozen=True)
class Plan:
    """The batches and files to read."""

    batches: list[BatchInfo]
    files: list[BatchFile]

    @property
    def total_bytes(self) -> int:
        """Sum of the files' sizes."""
        return sum(f.size for f in self.files)


def _ms_to_datetime(value: Any) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(value) / 1000.0, UTC)
    except (TypeError, ValueError, OverflowError):
        return None


def batch_info(client: AEPClient, batch_id: str) -> BatchInfo:
    """``GET /batches/{id}`` from Catalog, with the record count wherever it is stored."""
    body = client.get_json(client.url(Service.CATALOG, f"/batches/{batch_id}"))
    record = body.get(batch_id) if isinstance(body, dict) else None
    if not isinstance(record, dict):
        if isinstance(body, dict) and len(body) == 1:
            record = next(iter(body.values()))
        else:
            raise AEPError(f"Catalog answered batch {batch_id} with an unexpected shape")
    metrics = record.get("metrics") or {}
    count = record.get("recordCount")
    if count is None:
        count = metrics.get("outputRecordCount", metrics.get("recordsWritten"))
    dataset = next(
        (o.get("id") for o in record.get("relatedObjects", []) if o.get("type") == "dataSet"), None
    )
    return BatchInfo(
        batch_id,
        str(record.get("status", "")),
        int(count) if count is not None else None,
        dataset,
        record,
    )


def _list_dataset_file(
    client: AEPClient, batch_id: str, entry: dict[str, Any], depth: int
) -> list[BatchFile]:
    """Physical files of one dataset file, descending into nested directories."""
    file_id = str(entry["dataSetFileId"])
    href = ((entry.get("_links") or {}).get("self") or {}).get("href")
    url = client.check_href(href) if href else client.url(Service.DATA_ACCESS, f"/files/{file_id}")
    modified = _ms_to_datetime(entry.get("updated") or entry.get("created"))
    out: list[BatchFile] = []
    for page in iter_linked_pages(client, url):
        for item in page.get("data") or []:
            if "dataSetFileId" in item:  # a directory: more dataset files
                if depth >= _MAX_DEPTH:
                    raise AEPError(f"dataset file {file_id} nests deeper than {_MAX_DEPTH} levels")
                out.extend(_list_dataset_file(client, batch_id, item, depth + 1))
                continue
            name = str(item["name"])
            link = ((item.get("_links") or {}).get("self") or {}).get("href")
            file_url = (
                client.check_href(link)
                if link
                else client.url(Service.DATA_ACCESS, f"/files/{file_id}")
                + f"?path={quote(name, safe='')}"
            )
            out.append(BatchFile(batch_id, file_id, name, int(item["length"]), file_url, modified))
    return out


def _plan_batch(client: AEPClient, batch_id: str, pool: ThreadPoolExecutor) -> list[BatchFile]:
    first = client.url(Service.DATA_ACCESS, f"/batches/{batch_id}/files")
    entries = [e for page in iter_linked_pages(client, first) for e in page.get("data") or []]
    results = pool.map(lambda e: _list_dataset_file(client, batch_id, e, 0), entries)
    files = [f for group in results for f in group]
    seen: set[str] = set()
    for f in files:
        if f.path in seen:
            raise AEPError(f"batch {batch_id} lists the file {f.path} twice")
        seen.add(f.path)
    return files


def plan(
    batch_ids: str | Iterable[str],
    *,
    client: AEPClient | None = None,
    max_workers: int = 8,
    check_status: bool = True,
) -> Plan:
    """Resolve batch ids into their batches' Catalog records and physical files.

    Args:
        batch_ids: one batch id or several.
        client: the client to use (one from the environment's settings when omitted).
        max_workers: listing requests in flight.
        check_status: raise :class:`~aep_io.errors.BatchNotReadyError` for a batch that is not
            ``success``/``active``.
    """
    if isinstance(batch_ids, bytes | bytearray | Mapping) or not isinstance(batch_ids, Iterable):
        raise TypeError(f"batch_ids must be a batch id or a list of batch ids, not "
                        f"{type(batch_ids).__name__} {batch_ids!r:.60}")  # fmt: skip
    given = [batch_ids] if isinstance(batch_ids, str) else batch_ids
    ids = list(dict.fromkeys(check_id(b, "batch id") for b in given))
    if not ids:
        return Plan([], [])
    if max_workers < 1:
        raise ValueError(f"max_workers={max_workers} must be at least 1")
    if client is not None and not isinstance(client, AEPClient):
        raise TypeError(f"client must be an AEPClient, not {type(client).__name__}")
    own = client is None
    client = client or AEPClient()
    try:
        with ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="aep-plan") as pool:
            infos = list(pool.map(lambda b: batch_info(client, b), ids))
            if check_status:
                for info in infos:
                    if info.status.lower() not in READABLE_BATCH_STATUSES:
                        errors = info.raw.get("errors") or []
                        said = f"; errors: {errors}" if errors else ""
                        raise BatchNotReadyError(
                            f"batch {info.batch_id} has status {info.status!r}, not success"
                            f"{said}. Wait for the export job to finish, then read it"
                        )
            with ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="aep-ls") as inner:
                per_batch = list(pool.map(lambda b: _plan_batch(client, b, inner), ids))
    finally:
        if own:
            client.close()
    return Plan(infos, [f for files in per_batch for f in files])


def plan_files(
    batch_ids: str | Sequence[str],
    *,
    client: AEPClient | None = None,
    max_workers: int = 8,
    check_status: bool = True,
) -> list[BatchFile]:
    """The physical files of the batches, in listing order (metadata only, picklable).

    Example:
        >>> # for f in plan_files(["01JBATCH..."]): print(f.uri, f.size)
    """
    return plan(batch_ids, client=client, max_workers=max_workers, check_status=check_status).files

"""Dataset-export destinations: the emulator also delivers export jobs' parts to S3.

At AEP, large exports are steered to *dataset-export destinations*: a dataflow copies a
dataset's parquet files to the customer's cloud storage (Amazon S3, ADLS Gen2, GCS...), and the
customer reads them there instead of through Data Access. The emulator mimics that for S3: with
an :class:`S3Destination` configured (``Emulator(..., s3_destination=...)`` or
``emulator.destinations.add(...)``), every export job that finishes also uploads its parquet
parts, byte for byte the files of its Catalog batch(es), to the bucket. The upload happens
before the job turns SUCCEEDED, so a client that waited for the job finds the objects.

Layout of the objects (``{...}`` filled from the job; the file names are the batch's own)::

    s3://<bucket>/<prefix>/<folder_template>/part-00000-<uuid>-c000.snappy.parquet

The default ``folder_template`` is ``"{exportJobId}/{batchId}"``: one folder per job and
batch, so a reader can name exactly one export (``.../<job>/<batch>/*.parquet``) even when
several jobs export the same dataset within a minute or a job writes one batch per segment.
AEP's own dataset exports use ``folder-name-you-provided/<datasetId>/exportTime=YYYYMMDDHHMM``
(its ``foldernameTemplate`` offers ``DATASET_ID``, ``EXPORT_TIME``, ``DATETIME``,
``SANDBOX_NAME``...): :data:`AEP_FOLDER_TEMPLATE` reproduces that, with the job's creation
time (UTC) as the export time. Placeholders: ``exportJobId``, ``batchId``, ``datasetId``,
``exportTime`` (``YYYYMMDDHHMM``), ``datetime`` (``yyyyMMdd_HHmmss``), ``sandboxName``,
``imsOrgId``. AEP writes no manifest next to dataset-export files; neither does the emulator.

Uploads go through s3fs: parts of at least ``2 × multipart_chunksize`` go up as multipart
uploads (s3fs's rule), smaller ones as one ``PutObject``. Credentials are the destination's
own (``key``/``secret``/``token``), a named ``profile``, or, when none is given, botocore's
usual chain (environment variables, shared config and credentials files...). They are never
part of a repr, a log line or a recorded error.

A delivery that fails (the bucket is missing, the endpoint is down...) does not fail the export
job, as at AEP, where the export job and the destination's dataflow run are separate: it is
recorded in :attr:`Destinations.deliveries` with its error, and logged as a warning.

Example:
    >>> dest = S3Destination("exports", prefix="aep", endpoint_url="http://127.0.0.1:9000")
    >>> dest.folder(exportJobId="24117", batchId="01JBATCH")
    'aep/24117/01JBATCH'
    >>> dest.url(24117, "01JBATCH", "*.parquet")
    's3://exports/aep/24117/01JBATCH/*.parquet'
    >>> S3Destination("exports", prefix="aep", folder_template=AEP_FOLDER_TEMPLATE).folder(
    ...     datasetId="5c8c3c555033b814b69f947f", exportTime="202611290400")
    'aep/5c8c3c555033b814b69f947f/exportTime=202611290400'
    >>> # from aep_io.emulator.s3 import moto_s3
    >>> # with moto_s3("exports") as s3:
    >>> #     emulator = Emulator(tmp, s3_destination=s3.destination(prefix="aep"))
    >>> #     ... run an export job ...; then emulator.destinations.for_job(job_id)[0].url
"""

from __future__ import annotations

import logging
import string
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aep_io.emulator.store import Store, Tenant

__all__ = [
    "AEP_FOLDER_TEMPLATE",
    "DEFAULT_FOLDER_TEMPLATE",
    "Delivery",
    "Destinations",
    "S3Destination",
]

log = logging.getLogger("aep_io.emulator.destinations")

DEFAULT_FOLDER_TEMPLATE = "{exportJobId}/{batchId}"
#: AEP's documented dataset-export folder pattern (under the folder you provide).
AEP_FOLDER_TEMPLATE = "{datasetId}/exportTime={exportTime}"
_FIELDS = ("exportJobId", "batchId", "datasetId", "exportTime", "datetime", "sandboxName",
           "imsOrgId")  # fmt: skip
_MIN_PART = 5 * 2**20  # S3's smallest multipart part (but the last)


@dataclass(frozen=True, repr=False)
class S3Destination:
    """An S3 bucket (any S3 API: AWS, or moto on loopback in tests) receiving export parts.

    Args:
        bucket: the bucket (must exist).
        prefix: the folder you provide, under which the export folders are created.
        endpoint_url: the S3 API endpoint (``http://127.0.0.1:<port>`` for moto); None: AWS,
            or ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` when set.
        key: an explicit access key id; None: a ``profile`` or botocore's chain.
        secret: the secret access key that goes with ``key`` (never printed).
        token: a session token, for temporary credentials.
        region: the region to sign for (None: the environment's or profile's).
        profile: a named profile of the shared AWS config.
        folder_template: the folder of one batch under ``prefix`` (see the module docstring).
        multipart_chunksize: multipart part size; files of twice this or more use multipart.
        name: a label for deliveries and logs.
    """

    bucket: str
    prefix: str = ""
    endpoint_url: str | None = None
    key: str | None = None
    secret: str | None = None
    token: str | None = None
    region: str | None = None
    profile: str | None = None
    folder_template: str = DEFAULT_FOLDER_TEMPLATE
    multipart_chunksize: int = 8 * 2**20
    name: str = "s3"

    def __post_init__(self) -> None:
        if not self.bucket or "/" in self.bucket:
            raise ValueError(f"bucket {self.bucket!r} must be a bare bucket name")
        names = {f for _, f, _, _ in string.Formatter().parse(self.folder_template) if f}
        unknown = names - set(_FIELDS)
        if unknown:
            raise ValueError(f"folder_template {self.folder_template!r}: unknown placeholder(s) "
                             f"{', '.join(sorted(unknown))}; use {', '.join(_FIELDS)}")  # fmt: skip
        if self.multipart_chunksize < _MIN_PART:
            raise ValueError(f"multipart_chunksize={self.multipart_chunksize} is below S3's "
                             f"minimum part size of {_MIN_PART} bytes")  # fmt: skip
        if (self.key is None) != (self.secret is None):
            raise ValueError("give both key and secret, or neither")

    def __repr__(self) -> str:
        if self.key is not None:
            creds = "explicit"
        elif self.profile is not None:
            creds = f"profile {self.profile!r}"
        else:
            creds = "default chain"
        return (f"S3Destination(bucket={self.bucket!r}, prefix={self.prefix!r}, "
                f"endpoint_url={self.endpoint_url!r}, region={self.region!r}, "
                f"folder_template={self.folder_template!r}, credentials={creds})")  # fmt: skip

    def folder(self, **fields: Any) -> str:
        """The key prefix of one batch: ``<prefix>/<folder_template filled>`` (no slashes
        at either end)."""
        filled = self.folder_template.format(**{f: fields.get(f, "") for f in _FIELDS})
        parts = [p for p in (*self.prefix.split("/"), *filled.split("/")) if p]
        return "/".join(parts)

    def url(self, *parts: str | int) -> str:
        """``s3://<bucket>/<prefix>/<parts...>``: e.g. ``url(job_id, batch_id, "*.parquet")``
        with the default folder template."""
        tail = [p for p in (*self.prefix.split("/"), *(str(x) for x in parts)) if p.strip("/")]
        return "s3://" + "/".join([self.bucket, *(p.strip("/") for p in tail)])

    def storage_options(self) -> dict[str, Any]:
        """s3fs options reaching this destination with its credentials (secret included: do
        not print them)."""
        options: dict[str, Any] = {}
        if self.endpoint_url is not None:
            options["endpoint_url"] = self.endpoint_url
        if self.key is not None:
            options.update(key=self.key, secret=self.secret)
        if self.token is not None:
            options["token"] = self.token
        if self.profile is not None:
            options["profile"] = self.profile
        if self.region is not None:
            options["client_kwargs"] = {"region_name": self.region}
        return options

    def filesystem(self) -> Any:
        """A new s3fs filesystem for this destination (never shared through fsspec's cache)."""
        try:
            import s3fs
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError("S3 destinations need s3fs: pip install 'aep_io[s3]' "
                              f"(importing s3fs failed: {exc})") from None  # fmt: skip
        return s3fs.S3FileSystem(skip_instance_cache=True, **self.storage_options())

    def upload(self, files: Sequence[tuple[Path, str]], folder: str, fs: Any = None) -> list[str]:
        """Upload ``(local path, name)`` pairs under ``folder``; returns the object keys."""
        fs = fs if fs is not None else self.filesystem()
        keys = [f"{folder}/{name}" if folder else name for _, name in files]
        if files:
            fs.put([str(p) for p, _ in files], [f"{self.bucket}/{k}" for k in keys],
                   chunksize=self.multipart_chunksize)  # fmt: skip
        return keys

    def scrub(self, text: str) -> str:
        """``text`` with this destination's secret and token replaced by ``***``."""
        for secret in (self.secret, self.token):
            if secret:
                text = text.replace(secret, "***")
        return text


@dataclass(frozen=True)
class Delivery:
    """One batch of one export job delivered (or not) to one destination."""

    destination: str
    job_id: str
    batch_id: str
    url: str  # s3://bucket/<folder>: the folder holding the batch's parts
    keys: tuple[str, ...]
    bytes: int
    seconds: float
    status: str  # "delivered" | "failed"
    error: str | None = None

    @property
    def glob(self) -> str:
        """``<url>/*.parquet``: what to hand to ``scan_batches``."""
        return f"{self.url}/*.parquet"


class Destinations:
    """The emulator's dataset-export destinations and what was delivered to them (in memory:
    destinations are configuration, not state, and are not kept across restarts)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._lock = threading.Lock()
        self._items: list[S3Destination] = []
        #: deliveries by export job id (as a string), in order
        self.deliveries: dict[str, list[Delivery]] = {}

    def add(self, destination: S3Destination) -> S3Destination:
        """Deliver every export job finishing from now on to ``destination`` as well."""
        if not isinstance(destination, S3Destination):
            raise TypeError(f"expected an S3Destination, got {type(destination).__name__}")
        with self._lock:
            self._items.append(destination)
        return destination

    def remove(self, destination: S3Destination) -> None:
        """Stop delivering to ``destination``."""
        with self._lock:
            self._items.remove(destination)

    def clear(self) -> None:
        """Remove every destination (deliveries already recorded stay)."""
        with self._lock:
            self._items.clear()

    def __iter__(self) -> Iterator[S3Destination]:
        with self._lock:
            return iter(list(self._items))

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def __repr__(self) -> str:
        return f"Destinations({list(self)!r})"

    def for_job(self, job_id: int | str) -> list[Delivery]:
        """The deliveries of one export job (empty when none)."""
        with self._lock:
            return list(self.deliveries.get(str(job_id), []))

    def batch_parts(self, batch_id: str) -> list[tuple[Path, str]]:
        """``(local path, name)`` of every physical file of a batch, in listing order."""
        out: list[tuple[Path, str]] = []

        def walk(dsfs: list[Any]) -> None:
            for dsf in dsfs:
                if dsf.is_dir:
                    walk(self._store.children(dsf.id, start=0, limit=1_000_000)[1])
                else:
                    out.extend((p.path, p.name) for p in self._store.physical_files(dsf.id)[1])

        walk(self._store.batch_files(batch_id, start=0, limit=1_000_000)[1])
        return out

    def deliver(self, tenant: Tenant, job: dict[str, Any], batch_ids: Sequence[str]
                ) -> list[Delivery]:  # fmt: skip
        """Upload the parts of ``batch_ids`` (one export job's) to every destination.

        Never raises: a failure is recorded (error text scrubbed of secrets) and logged.
        """
        destinations = list(self)
        if not destinations:
            return []
        job_id = str(job["id"])
        created = datetime.fromtimestamp(int(job.get("creationTime") or 0) / 1000, UTC)
        common = {
            "exportJobId": job_id,
            "datasetId": (job.get("destination") or {}).get("datasetId", ""),
            "exportTime": created.strftime("%Y%m%d%H%M"),
            "datetime": created.strftime("%Y%m%d_%H%M%S"),
            "sandboxName": tenant.sandbox,
            "imsOrgId": tenant.org,
        }
        done: list[Delivery] = []
        for dest in destinations:
            fs = None
            for batch_id in batch_ids:
                folder = dest.folder(**common, batchId=batch_id)
                url = f"s3://{dest.bucket}/{folder}"
                started = time.perf_counter()
                try:
                    parts = self.batch_parts(batch_id)
                    size = sum(p.stat().st_size for p, _ in parts)
                    fs = fs if fs is not None else dest.filesystem()
                    keys = dest.upload(parts, folder, fs)
                except Exception as exc:  # recorded, not raised: the job itself succeeded
                    message = dest.scrub(f"{type(exc).__name__}: {exc}")
                    log.warning("export job %s: delivering batch %s to %s failed: %s",
                                job_id, batch_id, url, message)  # fmt: skip
                    done.append(Delivery(dest.name, job_id, batch_id, url, (), 0,
                                         time.perf_counter() - started, "failed", message))
                    continue
                done.append(Delivery(dest.name, job_id, batch_id, url, tuple(keys), size,
                                     time.perf_counter() - started, "delivered"))  # fmt: skip
                log.info("export job %s: batch %s delivered to %s (%d files, %d bytes)",
                         job_id, batch_id, url, len(keys), size)  # fmt: skip
        with self._lock:
            self.deliveries.setdefault(job_id, []).extend(done)
        return done

"""The emulator: state, credentials, counters and faults, and ways to put exports into it.

Example:
    >>> import tempfile
    >>> from aep_io.emulator import Emulator, EmulatorServer
    >>> emu = Emulator(tempfile.mkdtemp())
    >>> export = emu.add_synthetic_export(profiles=1_000, parts=2)
    >>> with EmulatorServer(emu) as server:
    ...     server.url.startswith("http://127.0.0.1:")
    True
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from aep_io.emulator.catalog import PROFILE_UNION_SCHEMA
from aep_io.emulator.counters import Counters
from aep_io.emulator.credentials import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_ORG_ID,
    Credentials,
)
from aep_io.emulator.destinations import Destinations, S3Destination
from aep_io.emulator.faults import Faults
from aep_io.emulator.store import Store, Tenant

__all__ = ["Emulator", "ExportBatch"]


@dataclass(frozen=True)
class ExportBatch:
    """A batch put into the emulator: where it is and what it holds."""

    dataset_id: str
    batch_id: str
    tenant: Tenant
    record_count: int
    files: list[tuple[str, str, int]] = field(default_factory=list)  # (dsf id, name, length)

    @property
    def size(self) -> int:
        """Total bytes of the batch's files."""
        return sum(f[2] for f in self.files)


class Emulator:
    """A local AEP: its state lives in ``data_dir`` and survives restarts.

    Args:
        data_dir: directory for the catalog, files and credentials (created if missing).
        token_lifetime: seconds an IMS token stays valid (AEP: 86399).
        fault_seed: seed of the random generator deciding rate-based faults.
        job_step_delay: minimum seconds a segment or export job stays in each state (so
            clients see NEW and PROCESSING); tests set 0.
        s3_destination: also deliver every export job's parts to this S3 bucket, as an AEP
            dataset-export destination does (more with ``destinations.add``; see
            :mod:`.destinations`).
    """

    def __init__(
        self,
        data_dir: str | Path,
        *,
        token_lifetime: float = 86399.0,
        fault_seed: int = 0,
        job_step_delay: float = 0.2,
        s3_destination: S3Destination | None = None,
    ) -> None:
        from aep_io.emulator.jobs import JobRunner
        from aep_io.emulator.profiles import ProfileStore

        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.store = Store(self.data_dir)
        self.credentials = Credentials(self.data_dir, token_lifetime=token_lifetime)
        self.counters = Counters()
        self.faults = Faults(seed=fault_seed)
        self.profiles = ProfileStore(self.data_dir / "profiles")
        self.jobs = JobRunner(self.store)
        self.job_step_delay = job_step_delay
        self.destinations = Destinations(self.store)
        if s3_destination is not None:
            self.destinations.add(s3_destination)
        self._app: Any = None

    @property
    def default_tenant(self) -> Tenant:
        """The default integration's org, sandbox ``prod``."""
        return Tenant(DEFAULT_ORG_ID, "prod")

    def client_env(self, url: str, *, sandbox: str = "prod") -> dict[str, str]:
        """Environment variables pointing aep_io at this emulator served at ``url``."""
        return {
            "AEP_CLIENT_ID": DEFAULT_CLIENT_ID,
            "AEP_CLIENT_SECRET": DEFAULT_CLIENT_SECRET,
            "AEP_ORG_ID": DEFAULT_ORG_ID,
            "AEP_SANDBOX": sandbox,
            "AEP_PLATFORM_URL": url,
            "AEP_IMS_URL": url,
        }

    @property
    def app(self) -> Any:
        """The ASGI application (built once)."""
        if self._app is None:
            from aep_io.emulator.app import build_app

            self._app = build_app(self)
        return self._app

    def close(self) -> None:
        """Stop the background jobs (waiting for running ones) and release the catalog."""
        self.jobs.close()
        self.store.close()

    # -- putting exports in ---------------------------------------------------------------------
    def create_dataset(self, name: str, *, tenant: Tenant | None = None) -> str:
        """Create a dataset on the profile union schema; returns its id."""
        ds_id, _ = self.store.create_dataset(
            tenant or self.default_tenant,
            {
                "name": name,
                "schemaRef": {
                    "id": PROFILE_UNION_SCHEMA,
                    "contentType": "application/vnd.adobe.xed+json;version=1",
                },
            },
        )
        return ds_id

    def add_export_batch(
        self,
        files: Sequence[str | Path],
        *,
        tenant: Tenant | None = None,
        dataset_id: str | None = None,
        files_per_dataset_file: int = 1,
        directory_groups: int = 0,
        move: bool = False,
    ) -> ExportBatch:
        """Register parquet (or any) files as one successful batch of a dataset.

        Args:
            files: the files, in order; each keeps its name.
            tenant: whose batch it is (default: the default integration's org, ``prod``).
            dataset_id: the dataset; a new profile-union dataset when omitted.
            files_per_dataset_file: consecutive files grouped into one dataset file.
            directory_groups: the last N groups go inside one *directory* dataset file, the
                nested shape of ``GET /files/{id}`` (``aep_api.md`` §6.2 b).
            move: move the files into the store instead of copying them.
        """
        tenant = tenant or self.default_tenant
        paths = [Path(f) for f in files]
        if files_per_dataset_file < 1:
            raise ValueError("files_per_dataset_file must be at least 1")
        if dataset_id is None:
            dataset_id = self.create_dataset("aep_io emulator export", tenant=tenant)
        elif self.store.get("dataSet", tenant, dataset_id) is None:
            raise KeyError(f"dataset {dataset_id} does not exist for {tenant}")
        batch = self.store.create_batch(tenant, dataset_id)
        groups = [
            paths[i : i + files_per_dataset_file]
            for i in range(0, len(paths), files_per_dataset_file)
        ]
        if not 0 <= directory_groups <= len(groups):
            raise ValueError(f"directory_groups={directory_groups} exceeds {len(groups)} groups")
        split = len(groups) - directory_groups
        directory: str | None = None
        listed: list[tuple[str, str, int]] = []
        total_records = 0
        for index, group in enumerate(groups):
            records = _parquet_rows(group)
            total_records += records or 0
            lengths = [(p.name, p.stat().st_size) for p in group]
            if index >= split and directory is None:
                directory = self.store.add_directory(batch["id"])
            dsf_id = self.store.add_dataset_file(
                batch["id"],
                group,
                parent_id=directory if index >= split else None,
                records=records,
                move=move,
            )
            listed.extend((dsf_id, name, length) for name, length in lengths)
        self.store.finish_batch(tenant, batch["id"])
        return ExportBatch(dataset_id, batch["id"], tenant, total_records, listed)

    def add_synthetic_export(
        self,
        profiles: int = 100_000,
        *,
        parts: int = 8,
        row_groups_per_part: int = 16,
        seed: int = 42,
        store_schema: bool = True,
        compression: str = "snappy",
        tenant: Tenant | None = None,
        dataset_id: str | None = None,
        **layout: Any,
    ) -> ExportBatch:
        """Generate synthetic XDM profiles (see :mod:`.synthetic`) and register them as a batch."""
        from aep_io.emulator.synthetic import SyntheticSpec, write_parts

        spec = SyntheticSpec(profiles=profiles, seed=seed)
        with tempfile.TemporaryDirectory(dir=self.data_dir) as tmp:
            paths = write_parts(
                spec,
                tmp,
                parts=parts,
                row_groups_per_part=row_groups_per_part,
                compression=compression,
                store_schema=store_schema,
            )
            return self.add_export_batch(
                paths, tenant=tenant, dataset_id=dataset_id, move=True, **layout
            )


def _parquet_rows(paths: Sequence[Path]) -> int | None:
    total = 0
    for path in paths:
        try:
            total += pq.read_metadata(path).num_rows
        except Exception:
            return None
    return total

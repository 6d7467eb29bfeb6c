"""The emulator's state: a directory holding a small SQLite catalog and the batches' files.

Layout of the data directory::

    DIR/emulator.json          credentials, signing key (see :mod:`.config`)
    DIR/catalog.sqlite         Catalog objects (datasets, batches, ...) and dataset-file records
    DIR/files/<batch>/<dsf>/   the physical files of each dataset file

Everything is scoped by tenant (IMS org + sandbox): an object of one tenant does not exist for
another. Physical files are looked up by exact name in the catalog, never by joining a request
path onto the file system, so no request can reach a file outside its batch.
"""

from __future__ import annotations

import json
import secrets
import shutil
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["DataSetFile", "PhysicalFile", "Store", "Tenant", "new_batch_id", "new_dataset_id"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    kind TEXT NOT NULL, id TEXT NOT NULL, org TEXT NOT NULL, sandbox TEXT NOT NULL,
    created INTEGER NOT NULL, body TEXT NOT NULL, PRIMARY KEY (kind, id));
CREATE INDEX IF NOT EXISTS objects_by_tenant ON objects (kind, org, sandbox, created);
CREATE TABLE IF NOT EXISTS dataset_files (
    id TEXT PRIMARY KEY, batch_id TEXT NOT NULL, parent_id TEXT, seq INTEGER NOT NULL,
    is_dir INTEGER NOT NULL, created INTEGER NOT NULL, records INTEGER, size INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS dsf_by_batch ON dataset_files (batch_id, parent_id, seq);
CREATE TABLE IF NOT EXISTS physical_files (
    dsf_id TEXT NOT NULL, name TEXT NOT NULL, seq INTEGER NOT NULL, length INTEGER NOT NULL,
    relpath TEXT NOT NULL, PRIMARY KEY (dsf_id, name));
"""

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def now_ms() -> int:
    """Current time in epoch milliseconds."""
    return int(time.time() * 1000)


def new_dataset_id() -> str:
    """A 24-hex-character id, the shape of Catalog dataset ids."""
    return secrets.token_hex(12)


def new_batch_id() -> str:
    """A 26-character ULID-like id, the shape of Catalog batch ids."""
    ms = now_ms()
    head = "".join(_CROCKFORD[(ms >> (5 * i)) & 31] for i in reversed(range(10)))
    return head + "".join(secrets.choice(_CROCKFORD) for _ in range(16))


@dataclass(frozen=True)
class Tenant:
    """An IMS org and a sandbox: the unit of data visibility."""

    org: str
    sandbox: str


@dataclass(frozen=True)
class DataSetFile:
    """A Data Access dataset file: either a list of physical files or a directory of others."""

    id: str
    batch_id: str
    parent_id: str | None
    is_dir: bool
    created: int
    records: int | None
    size: int


@dataclass(frozen=True)
class PhysicalFile:
    """One physical file (a parquet part) inside a dataset file."""

    dsf_id: str
    name: str
    length: int
    path: Path


class Store:
    """Catalog objects and files of the emulator, kept in a directory (survives restarts)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.files_root = self.root / "files"
        self.files_root.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(
            self.root / "catalog.sqlite", check_same_thread=False, isolation_level=None
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.RLock()
        # Dataset files and physical files never change once added: cache the hot lookups.
        self._dsf_cache: dict[str, DataSetFile] = {}
        self._physical_cache: dict[tuple[str, str], PhysicalFile] = {}
        self._batch_tenant: dict[str, Tenant] = {}

    def close(self) -> None:
        """Close the catalog database."""
        with self._lock:
            self._db.close()

    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # -- generic objects ------------------------------------------------------------------------
    def put(self, kind: str, tenant: Tenant, obj_id: str, body: dict[str, Any]) -> None:
        """Insert or replace an object of ``kind``."""
        created = int(body.get("created") or body.get("creationTime") or now_ms())
        with self._lock:
            self._db.execute(
                "INSERT INTO objects (kind, id, org, sandbox, created, body) VALUES (?,?,?,?,?,?) "
                "ON CONFLICT (kind, id) DO UPDATE SET body = excluded.body",
                (kind, obj_id, tenant.org, tenant.sandbox, created, json.dumps(body)),
            )

    def get(self, kind: str, tenant: Tenant, obj_id: str) -> dict[str, Any] | None:
        """The object, or None when it does not exist for this tenant."""
        rows = self._query(
            "SELECT body FROM objects WHERE kind=? AND id=? AND org=? AND sandbox=?",
            (kind, obj_id, tenant.org, tenant.sandbox),
        )
        return json.loads(rows[0][0]) if rows else None

    def list(
        self, kind: str, tenant: Tenant, *, newest_first: bool = False
    ) -> list[tuple[str, dict[str, Any]]]:
        """All ``(id, object)`` of ``kind`` for the tenant, by creation time."""
        order = "DESC" if newest_first else "ASC"
        rows = self._query(
            f"SELECT id, body FROM objects WHERE kind=? AND org=? AND sandbox=? "
            f"ORDER BY created {order}, id {order}",
            (kind, tenant.org, tenant.sandbox),
        )
        return [(r[0], json.loads(r[1])) for r in rows]

    def delete(self, kind: str, tenant: Tenant, obj_id: str) -> bool:
        """Delete an object; False when it did not exist for this tenant."""
        if kind == "batch":
            self._batch_tenant.pop(obj_id, None)
        with self._lock:
            cur = self._db.execute(
                "DELETE FROM objects WHERE kind=? AND id=? AND org=? AND sandbox=?",
                (kind, obj_id, tenant.org, tenant.sandbox),
            )
            return cur.rowcount > 0

    # -- datasets and batches -----------------------------------------------------------------
    def create_dataset(self, tenant: Tenant, request: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """Store a dataset from a ``POST /dataSets`` body; returns its id and record."""
        ds_id = new_dataset_id()
        ms = now_ms()
        name = str(request["name"])
        record = {
            "name": name,
            "description": request.get("description", ""),
            "imsOrg": tenant.org,
            "sandboxName": tenant.sandbox,
            "schemaRef": request.get("schemaRef", {}),
            "fileDescription": request.get("fileDescription", {}),
            "tags": {"adobe/pqs/table": [name.lower().replace(" ", "_")]},
            "viewId": new_dataset_id(),
            "files": f"@/dataSetFiles?dataSetId={ds_id}",
            "created": ms,
            "updated": ms,
            "version": "1.0.0",
        }
        self.put("dataSet", tenant, ds_id, record)
        return ds_id, record

    def create_batch(
        self, tenant: Tenant, dataset_id: str, *, status: str = "loading"
    ) -> dict[str, Any]:
        """Open a new batch in ``dataset_id`` (status ``loading`` until :meth:`finish_batch`)."""
        batch_id = new_batch_id()
        ms = now_ms()
        record = {
            "id": batch_id,
            "imsOrg": tenant.org,
            "status": status,
            "relatedObjects": [{"type": "dataSet", "id": dataset_id}],
            "errors": [],
            "created": ms,
            "started": ms,
            "updated": ms,
            "createdClient": "acp_foundation_push",
            "version": "1.0.0",
            "inputFormat": {"format": "parquet"},
            "tags": {},
        }
        self.put("batch", tenant, batch_id, record)
        return record

    def finish_batch(
        self, tenant: Tenant, batch_id: str, *, status: str = "success", errors: Iterable[Any] = ()
    ) -> dict[str, Any]:
        """Close a batch: set its status and the record/byte counts of its files."""
        record = self.get("batch", tenant, batch_id)
        if record is None:
            raise KeyError(batch_id)
        rows = self._query(
            "SELECT COALESCE(SUM(records), 0), COALESCE(SUM(size), 0), COUNT(*) "
            "FROM dataset_files WHERE batch_id=? AND is_dir=0",
            (batch_id,),
        )
        records, size, _ = rows[0]
        n_physical = self._query(
            "SELECT COUNT(*) FROM physical_files p JOIN dataset_files d ON p.dsf_id = d.id "
            "WHERE d.batch_id=?",
            (batch_id,),
        )[0][0]
        ms = now_ms()
        record.update(
            status=status,
            errors=list(errors),
            recordCount=int(records),
            size=int(size),
            metrics={
                "inputRecordCount": int(records),
                "outputRecordCount": int(records),
                "outputByteSize": int(size),
                "outputFileCount": int(n_physical),
                "partitionCount": 1,
            },
            completed=ms,
            updated=ms,
        )
        self.put("batch", tenant, batch_id, record)
        return record

    # -- dataset files ---------------------------------------------------------------------------
    def add_dataset_file(
        self,
        batch_id: str,
        files: Sequence[Path],
        *,
        parent_id: str | None = None,
        records: int | None = None,
        move: bool = False,
        names: Sequence[str] | None = None,
    ) -> str:
        """Add a dataset file holding ``files`` (copied, or moved) to ``batch_id``."""
        dsf_id = f"{uuid.uuid4()}-1"
        target = self.files_root / batch_id / dsf_id
        target.mkdir(parents=True, exist_ok=True)
        total = 0
        with self._lock:
            seq = self._next_seq(batch_id, parent_id)
            for i, src in enumerate(files):
                name = names[i] if names else src.name
                dest = target / f"{i:05d}.bin"
                if move:
                    shutil.move(src, dest)
                else:
                    shutil.copyfile(src, dest)
                length = dest.stat().st_size
                total += length
                self._db.execute(
                    "INSERT INTO physical_files (dsf_id, name, seq, length, relpath) "
                    "VALUES (?,?,?,?,?)",
                    (dsf_id, name, i, length, str(dest.relative_to(self.root))),
                )
            self._db.execute(
                "INSERT INTO dataset_files (id, batch_id, parent_id, seq, is_dir, created, "
                "records, size) VALUES (?,?,?,?,0,?,?,?)",
                (dsf_id, batch_id, parent_id, seq, now_ms(), records, total),
            )
        return dsf_id

    def add_directory(self, batch_id: str, *, parent_id: str | None = None) -> str:
        """Add a dataset file that is a directory of other dataset files."""
        dsf_id = f"{uuid.uuid4()}-1"
        with self._lock:
            seq = self._next_seq(batch_id, parent_id)
            self._db.execute(
                "INSERT INTO dataset_files (id, batch_id, parent_id, seq, is_dir, created, "
                "records, size) VALUES (?,?,?,?,1,?,NULL,0)",
                (dsf_id, batch_id, parent_id, seq, now_ms()),
            )
        return dsf_id

    def _next_seq(self, batch_id: str, parent_id: str | None) -> int:
        rows = self._db.execute(
            "SELECT COALESCE(MAX(seq) + 1, 0) FROM dataset_files WHERE batch_id=? AND "
            "parent_id IS ?",
            (batch_id, parent_id),
        ).fetchall()
        return int(rows[0][0])

    def batch_files(
        self, batch_id: str, *, start: int, limit: int
    ) -> tuple[int, list[DataSetFile]]:
        """Top-level dataset files of a batch: (total, one page)."""
        return self._dsf_page("parent_id IS NULL AND batch_id=?", (batch_id,), start, limit)

    def children(self, dsf_id: str, *, start: int, limit: int) -> tuple[int, list[DataSetFile]]:
        """Dataset files inside a directory dataset file: (total, one page)."""
        return self._dsf_page("parent_id=?", (dsf_id,), start, limit)

    def _dsf_page(
        self, where: str, args: tuple[Any, ...], start: int, limit: int
    ) -> tuple[int, list[DataSetFile]]:
        total = self._query(f"SELECT COUNT(*) FROM dataset_files WHERE {where}", args)[0][0]
        rows = self._query(
            "SELECT id, batch_id, parent_id, is_dir, created, records, size FROM dataset_files "
            f"WHERE {where} ORDER BY seq LIMIT ? OFFSET ?",
            (*args, limit, start),
        )
        return int(total), [
            DataSetFile(r[0], r[1], r[2], bool(r[3]), r[4], r[5], r[6]) for r in rows
        ]

    def dataset_file(self, tenant: Tenant, dsf_id: str) -> DataSetFile | None:
        """A dataset file, if its batch belongs to ``tenant``."""
        dsf = self._dsf_cache.get(dsf_id)
        if dsf is None:
            rows = self._query(
                "SELECT id, batch_id, parent_id, is_dir, created, records, size "
                "FROM dataset_files WHERE id=?",
                (dsf_id,),
            )
            if not rows:
                return None
            r = rows[0]
            dsf = DataSetFile(r[0], r[1], r[2], bool(r[3]), r[4], r[5], r[6])
            self._dsf_cache[dsf_id] = dsf
        owner = self._batch_tenant.get(dsf.batch_id)
        if owner is None:
            rows = self._query(
                "SELECT org, sandbox FROM objects WHERE kind='batch' AND id=?", (dsf.batch_id,)
            )
            if not rows:
                return None
            owner = self._batch_tenant[dsf.batch_id] = Tenant(rows[0][0], rows[0][1])
        return dsf if owner == tenant else None

    def physical_files(
        self, dsf_id: str, *, start: int = 0, limit: int = 1_000_000
    ) -> tuple[int, list[PhysicalFile]]:
        """Physical files of a (non-directory) dataset file: (total, one page)."""
        total = self._query("SELECT COUNT(*) FROM physical_files WHERE dsf_id=?", (dsf_id,))[0][0]
        rows = self._query(
            "SELECT name, length, relpath FROM physical_files WHERE dsf_id=? ORDER BY seq "
            "LIMIT ? OFFSET ?",
            (dsf_id, limit, start),
        )
        return int(total), [PhysicalFile(dsf_id, r[0], r[1], self.root / r[2]) for r in rows]

    def physical_file(self, dsf_id: str, name: str) -> PhysicalFile | None:
        """One physical file by exact name."""
        found = self._physical_cache.get((dsf_id, name))
        if found is not None:
            return found
        rows = self._query(
            "SELECT length, relpath FROM physical_files WHERE dsf_id=? AND name=?", (dsf_id, name)
        )
        if not rows:
            return None
        found = PhysicalFile(dsf_id, name, rows[0][0], self.root / rows[0][1])
        self._physical_cache[(dsf_id, name)] = found
        return found

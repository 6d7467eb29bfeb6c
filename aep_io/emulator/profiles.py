"""The emulator's profile store: the merged profiles segment jobs evaluate and export jobs write.

Per tenant (IMS org + sandbox) it is a directory ``DIR/profiles/<org-hash>/<sandbox>/`` with

* ``profiles.parquet``: one row per merged profile, the XDM columns (at least ``identityMap``;
  ``segmentMembership`` is added when missing) plus internal columns ``_emulatorProfileId``
  (int64, stable across rewrites) and ``_repo`` (``createDate``/``modifyDate``, the merged
  update time that an export's ``fromIngestTimestamp`` compares with);
* ``events.parquet``: the profiles' ExperienceEvents (``_emulatorProfileId``, ``_id``,
  ``timestamp``, ``eventType``, ``commerce.order.priceTotal``, ``environment.browserDetails``
  and the internal ingestion time ``_emulatorIngestTime``).

* ``membership/``: the ``ups`` entries segment jobs left, one file per segment, overlaid on the
  loaded ``segmentMembership`` by every reader (:mod:`.membership_state`; replacing the
  profiles clears it);
* ``*.json`` / ``*.npy`` sidecars: facts derived from ``profiles.parquet`` (stamped with its
  mtime and size, recomputed when it changes).

Internal columns (``_repo`` and every ``_emulator*`` name) are never exported. Files are only
ever replaced atomically (write a new file, fsync, rename), so a reader holding the old file
keeps a consistent snapshot; writers of one tenant serialise on :meth:`ProfileStore.lock`.

Example:
    >>> import tempfile
    >>> from aep_io.emulator.store import Tenant
    >>> store = ProfileStore(tempfile.mkdtemp())
    >>> store.load_synthetic(Tenant("ORG@AdobeOrg", "prod"), profiles=1_000, seed=1)
    1000
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from aep_io.emulator.store import Tenant

if TYPE_CHECKING:
    from aep_io.emulator.membership_state import MembershipOverlay

__all__ = [
    "EVENTS_SCHEMA",
    "MEMBERSHIP_TYPE",
    "ProfileLoadError",
    "ProfileStore",
    "is_internal",
]

PROFILE_ID = "_emulatorProfileId"
INGEST_TIME = "_emulatorIngestTime"
ROW_GROUP_ROWS = 65_536
_TS = pa.timestamp("us", tz="UTC")
REPO_TYPE = pa.struct([("createDate", _TS), ("modifyDate", _TS)])
ENTRY_TYPE = pa.struct(
    [("version", pa.string()), ("lastQualificationTime", _TS), ("validUntil", _TS),
     ("status", pa.string())]
)  # fmt: skip
MEMBERSHIP_TYPE = pa.map_(pa.string(), pa.map_(pa.string(), ENTRY_TYPE))
IDENTITY_TYPE = pa.map_(
    pa.string(),
    pa.list_(pa.struct([("id", pa.string()), ("authenticatedState", pa.string()),
                        ("primary", pa.bool_())])),
)  # fmt: skip
EVENTS_SCHEMA = pa.schema(
    [
        (PROFILE_ID, pa.int64()),
        ("_id", pa.string()),
        ("timestamp", _TS),
        ("eventType", pa.string()),
        ("commerce", pa.struct([("order", pa.struct([("priceTotal", pa.float64())]))])),
        ("environment", pa.struct(
            [("browserDetails", pa.struct([("name", pa.string()), ("version", pa.string())]))]
        )),
        (INGEST_TIME, _TS),
    ]
)  # fmt: skip
MEMBER_STATUSES = ("realized", "existing", "entering")

_EVENT_TYPES = ("web.webpagedetails.pageViews", "commerce.productViews",
                "commerce.productListAdds", "commerce.checkouts", "commerce.purchases",
                "web.webinteraction.linkClicks")  # fmt: skip
_EVENT_TYPE_P = (0.45, 0.2, 0.1, 0.07, 0.08, 0.1)
_BROWSERS = (("Chrome", ("128.0", "129.0", "130.0")), ("Safari", ("17.5", "18.0", "18.1")),
             ("Firefox", ("130.0", "131.0", "132.0")), ("Edge", ("129.0", "130.0", "131.0")))
_BROWSER_P = (0.62, 0.2, 0.08, 0.1)
_US_DAY = 86_400_000_000


class ProfileLoadError(ValueError):
    """Files that cannot become a profile store (no identityMap, wrong types, ...)."""


def is_internal(name: str) -> bool:
    """Whether a top-level column is the emulator's own (never exported, invisible to PQL)."""
    return name == "_repo" or name.startswith("_emulator")


def public_schema(schema: pa.Schema) -> pa.Schema:
    """``schema`` without internal columns."""
    return pa.schema([f for f in schema if not is_internal(f.name)])


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success fsync it and rename it over ``path``."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


class ProfileStore:
    """Per-tenant profile and event tables under ``root`` (``DIR/profiles``)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._locks: dict[Tenant, threading.RLock] = {}
        self._guard = threading.Lock()

    # -- where things are ------------------------------------------------------------------
    def directory(self, tenant: Tenant) -> Path:
        """The tenant's directory (not created)."""
        org = hashlib.sha256(tenant.org.encode()).hexdigest()[:16]
        return self.root / org / tenant.sandbox

    def profiles_path(self, tenant: Tenant) -> Path:
        return self.directory(tenant) / "profiles.parquet"

    def events_path(self, tenant: Tenant) -> Path:
        return self.directory(tenant) / "events.parquet"

    def exists(self, tenant: Tenant) -> bool:
        """Whether profiles were loaded for ``tenant``."""
        return self.profiles_path(tenant).exists()

    def lock(self, tenant: Tenant) -> threading.RLock:
        """The lock writers (and jobs reading then writing) of ``tenant`` hold."""
        with self._guard:
            return self._locks.setdefault(tenant, threading.RLock())

    def schema(self, tenant: Tenant) -> pa.Schema | None:
        """The full profile schema (with internal columns), or None when nothing is loaded."""
        path = self.profiles_path(tenant)
        return pq.read_schema(path) if path.exists() else None

    def events_schema(self, tenant: Tenant) -> pa.Schema:
        path = self.events_path(tenant)
        return pq.read_schema(path) if path.exists() else EVENTS_SCHEMA

    def count(self, tenant: Tenant) -> int:
        """Number of profiles (0 when nothing is loaded)."""
        path = self.profiles_path(tenant)
        return pq.read_metadata(path).num_rows if path.exists() else 0

    def read(self, tenant: Tenant, columns: Sequence[str] | None = None) -> pa.Table:
        """The whole profile table with the effective ``segmentMembership`` (for tests, tools
        and :meth:`update`)."""
        table = pq.read_table(self.profiles_path(tenant), columns=columns)
        if "segmentMembership" in table.column_names:
            index = table.column_names.index("segmentMembership")
            effective = self.effective_membership(tenant, table.column(index).combine_chunks())
            table = table.set_column(index, "segmentMembership", effective)
        return table

    # -- membership left by segment jobs ---------------------------------------------------
    def overlay(self, tenant: Tenant) -> MembershipOverlay:
        """The per-segment entries segment jobs saved beside the store (see
        :mod:`.membership_state`)."""
        from aep_io.emulator.membership_state import MembershipOverlay

        return MembershipOverlay(self.directory(tenant) / "membership")

    def overlay_entries(self, tenant: Tenant) -> dict[str, pa.Array]:
        """Every overlaid segment's entries, one per store row."""
        overlay = self.overlay(tenant)
        return overlay.load(overlay.ids(), self.count(tenant))

    def effective_membership(
        self, tenant: Tenant, loaded: pa.Array, rows: np.ndarray | None = None,
        entries: dict[str, pa.Array] | None = None,
    ) -> pa.Array:
        """The membership of store ``rows`` (positions; None: every row, in order) whose loaded
        membership is ``loaded``, with the entries segment jobs left (``entries``:
        :meth:`overlay_entries`, read when None)."""
        from aep_io.emulator.membership_state import splice_ups

        entries = self.overlay_entries(tenant) if entries is None else entries
        if not entries:
            return loaded
        if rows is None:
            return splice_ups(loaded, entries)
        index = pa.array(rows, pa.int64())
        return splice_ups(loaded, {s: e.take(index) for s, e in entries.items()})

    def loaded_segment_ids(self, tenant: Tenant) -> frozenset[str]:
        """Segment ids with an ``ups`` entry in the *loaded* membership (cached beside the
        store, so a job only scans the loaded map when it evaluates one of these)."""
        def compute() -> dict[str, Any]:
            found: set[str] = set()
            source = pq.ParquetFile(self.profiles_path(tenant))
            for batch in source.iter_batches(columns=["segmentMembership"]):
                _, okeys, inner = _entries(batch.column(0))
                ups = np.asarray(pc.equal(pc.utf8_lower(okeys), "ups").fill_null(False), bool)
                inner_off, ikeys, _ = _entries(inner)
                keys = ikeys.filter(pa.array(np.repeat(ups, np.diff(inner_off))))
                found.update(k for k in pc.unique(keys).to_pylist() if k is not None)
            return {"ids": sorted(found)}

        return frozenset(self._sidecar(tenant, "loaded-segments.json", compute)["ids"])

    def namespace_sets(self, tenant: Tenant) -> tuple[np.ndarray, list[list[str]]]:
        """Per store row the index of its set of identity namespaces, and the sets (cached
        beside the store: metrics count members per namespace without reading identities)."""
        codes_path = self.directory(tenant) / "namespace-sets.npy"

        def compute() -> dict[str, Any]:
            codes, sets = [], {}
            for batch in pq.ParquetFile(self.profiles_path(tenant)).iter_batches(
                columns=["identityMap"]
            ):
                offsets, keys, _ = _entries(batch.column(0))
                joined = pc.binary_join(pa.ListArray.from_arrays(
                    pa.array(offsets.astype(np.int32)), keys.cast(pa.string())), "\x1f")
                encoded = pc.dictionary_encode(joined.fill_null(""))
                local = [sets.setdefault(v, len(sets)) for v in encoded.dictionary.to_pylist()]
                codes.append(np.asarray(local, dtype=np.int32)[
                    np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int64)])
            with atomic_path(codes_path) as tmp, open(tmp, "wb") as fh:
                np.save(fh, np.concatenate(codes) if codes else np.zeros(0, np.int32))
            return {"sets": [v.split("\x1f") if v else [] for v in sets]}

        sets = self._sidecar(tenant, "namespace-sets.json", compute)["sets"]
        return np.load(codes_path), sets

    def _sidecar(self, tenant: Tenant, name: str, compute: Callable[[], dict[str, Any]]
                 ) -> dict[str, Any]:  # fmt: skip
        """``compute()``, cached in a JSON file beside the store until the store changes."""
        stat = self.profiles_path(tenant).stat()
        stamp = [stat.st_mtime_ns, stat.st_size]
        path = self.directory(tenant) / name
        with contextlib.suppress(FileNotFoundError, ValueError, KeyError):
            data = json.loads(path.read_text())
            if data["stamp"] == stamp:
                return dict(data["value"])
        value = compute()
        with atomic_path(path) as tmp:
            tmp.write_text(json.dumps({"stamp": stamp, "value": value}))
        return value

    def read_events(self, tenant: Tenant) -> pa.Table:
        path = self.events_path(tenant)
        return pq.read_table(path) if path.exists() else EVENTS_SCHEMA.empty_table()

    # -- loading ---------------------------------------------------------------------------
    def load_synthetic(
        self,
        tenant: Tenant,
        profiles: int = 100_000,
        *,
        seed: int = 42,
        events_per_profile: float = 3.0,
        now: datetime | None = None,
    ) -> int:
        """Replace the tenant's profiles with ``profiles`` synthetic ones (and their events).

        ``now`` (default: the current UTC day) anchors qualification, update and event times.
        Returns the number of profiles.
        """
        from aep_io.emulator.synthetic import SyntheticSpec, iter_record_batches, profile_schema

        if profiles < 0:
            raise ValueError("profiles must be >= 0")
        now = now or datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        spec = SyntheticSpec(profiles=profiles, seed=seed, now=now)
        schema = _with_internal(profile_schema(spec.tenant))
        now_us = _us(now)
        with self.lock(tenant):
            self.directory(tenant).mkdir(parents=True, exist_ok=True)
            with atomic_path(self.profiles_path(tenant)) as tmp, _writer(tmp, schema) as writer:
                start = 0
                for batch in iter_record_batches(spec, batch_rows=ROW_GROUP_ROWS):
                    n = batch.num_rows
                    rng = np.random.default_rng([7, seed, start])
                    created = now_us - rng.integers(0, 730 * _US_DAY, n)
                    modified = created + (rng.random(n) * (now_us - created)).astype(np.int64)
                    ids = pa.array(np.arange(start, start + n, dtype=np.int64))
                    repo = pa.StructArray.from_arrays(
                        [pa.array(created, _TS), pa.array(modified, _TS)], fields=list(REPO_TYPE)
                    )
                    writer.write_batch(
                        pa.RecordBatch.from_arrays([*batch.columns, ids, repo], schema=schema)
                    )
                    start += n
                if start == 0:
                    writer.write_table(schema.empty_table())
            self.overlay(tenant).clear()
            self._write_events(tenant, _synthetic_events(profiles, seed, events_per_profile,
                                                         now_us))  # fmt: skip
        return profiles

    def load_files(
        self, tenant: Tenant, paths: Sequence[str | Path], *,
        events: Sequence[str | Path] = (),
    ) -> int:
        """Replace the tenant's profiles with those in parquet or JSON ``paths``.

        JSON files hold one object per line or one array of objects. Each file needs an
        ``identityMap`` (map of namespace to a list of ``{id, authenticatedState, primary}``);
        missing ``segmentMembership``, ``_emulatorProfileId`` and ``_repo`` columns are added.
        ``events`` are optional event files (parquet/JSON, with ``_emulatorProfileId``).
        Returns the number of profiles. Raises :class:`ProfileLoadError`.
        """
        if not paths:
            raise ProfileLoadError("no profile files given")
        tables = [_read_any(Path(p), profile=True) for p in paths]
        try:
            table = pa.concat_tables(tables, promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise ProfileLoadError(f"the files' schemas do not combine: {exc}") from None
        table = normalize_profiles(table, now=datetime.now(UTC))
        event_table = _normalize_events(
            [_read_any(Path(p), profile=False) for p in events], table.column(PROFILE_ID)
        )
        with self.lock(tenant):
            self.directory(tenant).mkdir(parents=True, exist_ok=True)
            self.write_profiles(tenant, table)
            self._write_events(tenant, event_table)
        return table.num_rows

    def update(self, tenant: Tenant, change: Callable[[pa.Table], pa.Table]) -> None:
        """Rewrite the profiles as ``change(table)`` (atomically; internal columns kept)."""
        with self.lock(tenant):
            table = normalize_profiles(change(self.read(tenant)), now=datetime.now(UTC))
            self.write_profiles(tenant, table)

    def write_profiles(self, tenant: Tenant, table: pa.Table) -> None:
        """Atomically replace the profile file with ``table`` (already normalised)."""
        with self.lock(tenant):
            self.directory(tenant).mkdir(parents=True, exist_ok=True)
            with atomic_path(self.profiles_path(tenant)) as tmp:
                pq.write_table(table, tmp, row_group_size=ROW_GROUP_ROWS,
                               **parquet_options(table.schema))
            self.overlay(tenant).clear()

    def _write_events(self, tenant: Tenant, table: pa.Table) -> None:
        with atomic_path(self.events_path(tenant)) as tmp:
            pq.write_table(table, tmp, row_group_size=4 * ROW_GROUP_ROWS,
                           **parquet_options(table.schema))


# ---------------------------------------------------------------------------- normalising


def _with_internal(schema: pa.Schema) -> pa.Schema:
    return schema.append(pa.field(PROFILE_ID, pa.int64())).append(pa.field("_repo", REPO_TYPE))


def _writer(path: Path, schema: pa.Schema) -> pq.ParquetWriter:
    return pq.ParquetWriter(path, schema, **parquet_options(schema))


def parquet_options(schema: pa.Schema) -> dict[str, Any]:
    """Writer options: snappy, dictionary pages for string columns only (random timestamps and
    numbers gain nothing from a dictionary but cost time to try one)."""
    key = schema.to_string(show_schema_metadata=False)
    columns = _STRING_COLUMNS.get(key)
    if columns is None:
        sink = pa.BufferOutputStream()
        pq.write_table(schema.empty_table(), sink)
        parquet_schema = pq.ParquetFile(pa.BufferReader(sink.getvalue())).schema
        columns = [parquet_schema.column(i).path for i in range(len(parquet_schema))
                   if parquet_schema.column(i).physical_type == "BYTE_ARRAY"]  # fmt: skip
        _STRING_COLUMNS[key] = columns
    return {"compression": "snappy", "use_dictionary": columns or False}


_STRING_COLUMNS: dict[str, list[str]] = {}


def _us(t: datetime) -> int:
    return (t - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def _read_any(path: Path, *, profile: bool) -> pa.Table:
    if not path.is_file():
        raise ProfileLoadError(f"{path}: no such file")
    if path.suffix.lower() in (".json", ".jsonl", ".ndjson"):
        return _read_json(path, profile=profile)
    try:
        return pq.read_table(path)
    except Exception as exc:
        raise ProfileLoadError(f"{path}: not a readable parquet or JSON file ({exc})") from None


def _read_json(path: Path, *, profile: bool) -> pa.Table:
    text = path.read_text(encoding="utf-8")
    try:
        stripped = text.lstrip()
        if stripped.startswith("["):
            rows = json.loads(text)
        else:
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    except ValueError as exc:
        raise ProfileLoadError(f"{path}: invalid JSON ({exc})") from None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise ProfileLoadError(f"{path}: expected JSON objects (one per line, or an array)")
    known = {"identityMap": IDENTITY_TYPE, "segmentMembership": MEMBERSHIP_TYPE, "_repo": REPO_TYPE,
             "timestamp": _TS, INGEST_TIME: _TS}  # fmt: skip
    if not profile:
        known = {f.name: f.type for f in EVENTS_SCHEMA}
    names = list(dict.fromkeys(k for r in rows for k in r))
    columns = {}
    for name in names:
        values = [_parse_times(r.get(name), known.get(name)) for r in rows]
        try:
            columns[name] = pa.array(values, type=known.get(name))
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as exc:
            raise ProfileLoadError(
                f"{path}: field {name!r} has an unexpected shape: {exc}"
            ) from None
    return pa.table(columns) if columns else pa.table({"identityMap": pa.array([], IDENTITY_TYPE)})


def _parse_times(value: Any, atype: pa.DataType | None) -> Any:
    """ISO-8601 strings inside ``value`` → datetimes where ``atype`` has timestamps."""
    if value is None or atype is None:
        return value
    if pa.types.is_timestamp(atype):
        if isinstance(value, str):
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        return value
    if isinstance(atype, pa.MapType) and isinstance(value, dict):
        return {k: _parse_times(v, atype.item_type) for k, v in value.items()}
    if pa.types.is_struct(atype) and isinstance(value, dict):
        return {k: _parse_times(v, atype.field(k).type) if atype.get_field_index(k) >= 0 else v
                for k, v in value.items()}  # fmt: skip
    return value


def normalize_profiles(table: pa.Table, *, now: datetime) -> pa.Table:
    """Check a profile table and add the internal columns and ``segmentMembership`` if missing."""
    if "identityMap" not in table.column_names:
        raise ProfileLoadError(
            "profiles need an identityMap column (map<namespace, list<{id, authenticatedState,"
            f" primary}}>>); the files have: {', '.join(table.column_names) or 'no columns'}"
        )
    ident = table.schema.field("identityMap").type
    if ident != IDENTITY_TYPE:
        table = _cast_column(table, "identityMap", IDENTITY_TYPE)
    n = table.num_rows
    if "segmentMembership" not in table.column_names:
        table = table.append_column("segmentMembership", pa.nulls(n, MEMBERSHIP_TYPE))
    elif table.schema.field("segmentMembership").type != MEMBERSHIP_TYPE:
        table = _cast_column(table, "segmentMembership", MEMBERSHIP_TYPE)
    if PROFILE_ID in table.column_names:
        ids = table.column(PROFILE_ID)
        if not pa.types.is_integer(ids.type) or ids.null_count:
            raise ProfileLoadError(f"{PROFILE_ID} must be a non-null integer column")
        if pc.count_distinct(ids).as_py() != n:
            raise ProfileLoadError(f"{PROFILE_ID} values must be unique")
        table = _cast_column(table, PROFILE_ID, pa.int64())
    else:
        table = table.append_column(PROFILE_ID, pa.array(np.arange(n, dtype=np.int64)))
    if "_repo" not in table.column_names:
        stamp = pa.array(np.full(n, _us(now), dtype=np.int64), _TS)
        repo = pa.StructArray.from_arrays([stamp, stamp], fields=list(REPO_TYPE))
        table = table.append_column("_repo", repo)
    elif table.schema.field("_repo").type != REPO_TYPE:
        table = _cast_column(table, "_repo", REPO_TYPE)
    # internal columns last, in a fixed order
    public = [c for c in table.column_names if not is_internal(c)]
    return table.select([*public, PROFILE_ID, "_repo"])


def _cast_column(table: pa.Table, name: str, atype: pa.DataType) -> pa.Table:
    try:
        column = table.column(name).cast(atype)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        raise ProfileLoadError(
            f"column {name} has type {table.schema.field(name).type}, expected {atype} ({exc})"
        ) from None
    return table.set_column(table.column_names.index(name), name, column)


def _normalize_events(tables: list[pa.Table], profile_ids: pa.ChunkedArray) -> pa.Table:
    if not tables:
        return EVENTS_SCHEMA.empty_table()
    table = pa.concat_tables(tables, promote_options="permissive")
    if PROFILE_ID not in table.column_names:
        raise ProfileLoadError(f"event files need a {PROFILE_ID} column naming their profile")
    table = _cast_column(table, PROFILE_ID, pa.int64())
    if not pc.all(pc.is_in(table.column(PROFILE_ID), value_set=profile_ids)).as_py():
        raise ProfileLoadError(f"events reference {PROFILE_ID} values that no profile has")
    if INGEST_TIME not in table.column_names:
        source = table.column("timestamp") if "timestamp" in table.column_names else None
        stamp = source.cast(_TS) if source is not None else pa.nulls(table.num_rows, _TS)
        table = table.append_column(INGEST_TIME, stamp)
    return table


# ---------------------------------------------------------------------------- synthetic events


def _hex_ids(values: np.ndarray) -> pa.StringArray:
    """32-character lower-case hex strings of two mixed 64-bit words per value."""
    from aep_io.emulator.synthetic import _mix64

    lut = np.frombuffer(b"0123456789abcdef", np.uint8)
    words = np.column_stack([_mix64(values), _mix64(values ^ np.uint64(0x9E3779B97F4A7C15))])
    nibbles = np.empty((len(values), 32), np.uint8)
    for col in range(16):
        shift = np.uint64(60 - 4 * col)
        nibbles[:, col] = lut[((words[:, 0] >> shift) & np.uint64(15)).astype(np.int64)]
        nibbles[:, col + 16] = lut[((words[:, 1] >> shift) & np.uint64(15)).astype(np.int64)]
    offsets = np.arange(0, 32 * (len(values) + 1), 32, dtype=np.int32)
    return pa.StringArray.from_buffers(len(values), pa.py_buffer(offsets),
                                       pa.py_buffer(nibbles.reshape(-1)))  # fmt: skip


def _synthetic_events(profiles: int, seed: int, mean: float, now_us: int) -> pa.Table:
    rng = np.random.default_rng([11, seed])
    counts = np.minimum(rng.poisson(mean, profiles), 12) if mean > 0 else np.zeros(profiles, int)
    n = int(counts.sum())
    pid = np.repeat(np.arange(profiles, dtype=np.int64), counts)
    ts = now_us - rng.integers(0, 365 * _US_DAY, n)
    order = np.lexsort((ts, pid))
    ts = ts[order]
    kind = np.searchsorted(np.cumsum(_EVENT_TYPE_P), rng.random(n) * 0.999999, side="right")
    purchase = kind == _EVENT_TYPES.index("commerce.purchases")
    price = np.round(rng.lognormal(4.0, 0.9, n), 2)
    order_struct = pa.StructArray.from_arrays(
        [pa.array(price, pa.float64())], fields=list(EVENTS_SCHEMA.field("commerce").type[0].type)
    )
    commerce = pa.StructArray.from_arrays(
        [order_struct], fields=list(EVENTS_SCHEMA.field("commerce").type),
        mask=pa.array(~purchase),
    )
    browser = np.searchsorted(np.cumsum(_BROWSER_P), rng.random(n) * 0.999999, side="right")
    version = rng.integers(0, 3, n)
    names = pa.array([b[0] for b in _BROWSERS]).take(browser)
    versions = pa.array([v for b in _BROWSERS for v in b[1]]).take(browser * 3 + version)
    details_type = EVENTS_SCHEMA.field("environment").type[0].type
    details = pa.StructArray.from_arrays([names, versions], fields=list(details_type))
    environment = pa.StructArray.from_arrays(
        [details], fields=list(EVENTS_SCHEMA.field("environment").type)
    )
    ingest = np.minimum(ts + rng.integers(1_000_000, 6 * 3_600_000_000, n), now_us)
    event_index = np.arange(n, dtype=np.uint64) + np.uint64(seed) * np.uint64(1 << 40)
    return pa.Table.from_arrays(
        [pa.array(pid), _hex_ids(event_index), pa.array(ts, _TS),
         pa.array(_EVENT_TYPES).take(kind), commerce, environment, pa.array(ingest, _TS)],
        schema=EVENTS_SCHEMA,
    )  # fmt: skip


# ---------------------------------------------------------------------------- map arrays


def _entries(arr: pa.MapArray) -> tuple[np.ndarray, pa.Array, pa.Array]:
    """(offsets from 0, keys, items) of a map array, honouring its slice offset."""
    offsets = arr.offsets.to_numpy()
    lo, hi = int(offsets[0]), int(offsets[-1])
    return offsets - lo, arr.keys.slice(lo, hi - lo), arr.items.slice(lo, hi - lo)


def _excl_cumsum(counts: np.ndarray) -> np.ndarray:
    out = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=out[1:])
    return out

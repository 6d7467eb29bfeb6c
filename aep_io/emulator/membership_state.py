"""Segment membership as segment jobs leave it, kept beside the profile store.

The store's ``segmentMembership`` column holds the membership the profiles were *loaded* with.
A segment job does not rewrite that column: at 1M profiles it holds ~12.5M entries that take
~10 s to decode, merge and encode again, where evaluating ten segments takes ~0.2 s. Instead
each evaluated segment gets one array of ``ups`` entries aligned with the store's rows (null
where the profile has no entry), saved by :class:`MembershipOverlay` as an Arrow IPC file
(lz4; ~10x faster to write and read than parquet for these mostly-null columns).

Readers see the *effective* membership: the loaded map with the ``ups`` entries of every
overlaid segment replaced by the overlay's (:func:`splice_ups`). :func:`merge_membership` is
the whole update for one batch of rows, as a job applies it.

Status codes per (profile, segment), as :func:`next_entries` returns them: 0 no entry,
1 realized (newly in), 2 existing (in before and now, first qualification time kept),
3 exited (in before, not now), 4 unchanged (an entry that was not a member stays as it is).

Example:
    >>> import numpy as np
    >>> from aep_io.emulator.profiles import ENTRY_TYPE
    >>> prev = pa.nulls(3, ENTRY_TYPE)
    >>> entries, codes = next_entries(prev, np.array([True, False, True]), "1", None, 0)
    >>> codes.tolist(), [e and e["status"] for e in entries.to_pylist()]
    ([1, 0, 1], ['realized', None, 'realized'])
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.feather as feather

from aep_io.emulator.profiles import (
    ENTRY_TYPE,
    MEMBER_STATUSES,
    MEMBERSHIP_TYPE,
    _entries,
    _excl_cumsum,
)

__all__ = [
    "MembershipOverlay", "entries_of", "is_member", "merge_membership", "next_entries",
    "splice_ups",
]

log = logging.getLogger("aep_io.emulator")

_TS = ENTRY_TYPE.field("lastQualificationTime").type
_STATUS_NAMES = pa.array(["", "realized", "existing", "exited", ""], pa.string())
# status code by (qualifies << 2 | was a member << 1 | had an entry): 0 no entry, 1 realized,
# 2 existing, 3 exited, 4 unchanged (a member always had an entry: 0b010 cannot happen)
_CODES = np.array([0, 4, 3, 3, 1, 1, 2, 2], dtype=np.int8)


def _rank_in_row(mask: np.ndarray, rows: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """For entries sorted by row: per selected entry its rank within its row; per row counts."""
    sel_rows = rows[mask]
    counts = np.bincount(sel_rows, minlength=n)
    rank = np.arange(len(sel_rows)) - _excl_cumsum(counts)[sel_rows]
    return rank, counts


class _Flat:
    """A membership map array flattened to its outer (namespace) and inner (segment) entries."""

    def __init__(self, membership: pa.Array, segment_ids: Sequence[str]) -> None:
        n = self.n = len(membership)
        self.outer_off, self.okeys, inner = _entries(membership)
        self.valid = ~np.asarray(membership.is_null().to_numpy(zero_copy_only=False), dtype=bool)
        self.inner_off, self.ikeys, self.items = _entries(inner)
        self.row_of_outer = np.repeat(np.arange(n), np.diff(self.outer_off))
        self.ups_outer = np.asarray(
            pc.equal(pc.utf8_lower(self.okeys), "ups").fill_null(False), dtype=bool
        )
        self.cnt_in = np.diff(self.inner_off)
        outer_of_inner = np.repeat(np.arange(len(self.okeys)), self.cnt_in)
        self.row_of_inner = self.row_of_outer[outer_of_inner]
        self.ups_inner = self.ups_outer[outer_of_inner]
        jidx = pc.index_in(self.ikeys, value_set=pa.array(list(segment_ids), pa.string()))
        self.jidx = np.asarray(jidx.fill_null(-1), dtype=np.int64)
        self.job_inner = self.ups_inner & (self.jidx >= 0)


def entries_of(membership: pa.Array, segment_ids: Sequence[str]) -> dict[str, pa.Array]:
    """Per segment id, each row's ``ups`` entry in ``membership`` (null where there is none).

    The ``ups`` namespace is matched case-insensitively; when a row has several (``ups`` and
    ``UPS``), the last entry wins.
    """
    flat = _Flat(membership, segment_ids)
    prev = np.full((flat.n, len(segment_ids)), -1, dtype=np.int64)
    pos = np.flatnonzero(flat.job_inner)
    prev[flat.row_of_inner[pos], flat.jidx[pos]] = pos
    return {
        s: flat.items.take(pa.array(prev[:, j], mask=prev[:, j] < 0))
        for j, s in enumerate(segment_ids)
    }


def is_member(entries: pa.Array) -> np.ndarray:
    """Per entry, whether it makes its profile a member now (an entry with a status among
    realized / existing / entering, in any case)."""
    status = pc.utf8_lower(pc.struct_field(entries, "status"))
    member = pc.and_(entries.is_valid(), pc.is_in(status, value_set=pa.array(MEMBER_STATUSES)))
    return np.asarray(member.fill_null(False).to_numpy(zero_copy_only=False), dtype=bool)


def _constant_string(value: str, n: int) -> pa.Array:
    """``n`` copies of ``value`` (built from buffers: ~40x faster than ``pa.repeat``)."""
    data = value.encode()
    if n * len(data) >= 2**31:
        return pa.repeat(pa.scalar(value, pa.string()), n)
    offsets = np.arange(n + 1, dtype=np.int32) * np.int32(len(data))
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data * n))


def next_entries(
    prev: pa.Array, qualifies: np.ndarray, version: str, valid_until_us: int | None, now_us: int,
    *, shared: dict[tuple[object, ...], pa.Array] | None = None,
) -> tuple[pa.StructArray, np.ndarray]:
    """A segment's entries after an evaluation, from its entries before (``prev``, nulls for
    none) and whether each profile qualifies now; also the status codes (module docstring).

    ``shared`` caches constant columns between the segments of one job (Arrow arrays are
    immutable, so segments can share them)."""
    n = len(prev)
    if prev.null_count == n:  # no entry before (a new segment): realized or nothing
        codes = qualifies.astype(np.int8)
        cache = {} if shared is None else shared

        def constant(kind: str, value: object) -> pa.Array:
            key = (kind, value, n)
            if key not in cache:
                if value is None:
                    cache[key] = pa.nulls(n, _TS)
                elif kind == "str":
                    cache[key] = _constant_string(str(value), n)
                else:
                    cache[key] = pa.array(np.full(n, value, dtype=np.int64), _TS)
            return cache[key]

        # children are constant: the struct's validity hides the rows without an entry
        children = [constant("str", version), constant("ts", now_us),
                    constant("ts", valid_until_us), constant("str", "realized")]
        mask = pa.array(~qualifies.astype(bool))
        return pa.StructArray.from_arrays(children, fields=list(ENTRY_TYPE), mask=mask), codes
    has_prev = np.asarray(prev.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    was_in = is_member(prev)
    # code from (qualifies, was a member, had an entry) by table lookup (nested np.where
    # over int64 temporaries costs ~10x more)
    combined = np.asarray(qualifies, dtype=bool).view(np.uint8) << 2
    combined |= was_in.view(np.uint8) << 1
    combined |= has_prev.view(np.uint8)
    codes = _CODES[combined]
    keep_np = codes == 4
    keep = pa.array(keep_np)
    any_kept = bool(keep_np.any())

    def before(name: str) -> pa.Array:
        return pc.struct_field(prev, name) if n else pa.array([], ENTRY_TYPE.field(name).type)

    versions = (pc.if_else(keep, before("version"), pa.scalar(version, pa.string()))
                if any_kept else _constant_string(version, n))  # fmt: skip
    lqt = pc.if_else(pa.array((codes == 2) | keep_np), before("lastQualificationTime"),
                     pa.scalar(now_us, _TS))  # fmt: skip
    fresh = pa.array(np.full(n, valid_until_us if valid_until_us is not None else 0, np.int64),
                     _TS, mask=(codes == 3) | (valid_until_us is None))  # fmt: skip
    valid_until = pc.if_else(keep, before("validUntil"), fresh) if any_kept else fresh
    status = _STATUS_NAMES.take(pa.array(codes))
    if any_kept:
        status = pc.if_else(keep, before("status"), status)
    entries = pa.StructArray.from_arrays(
        [versions.cast(pa.string()), lqt.cast(_TS), valid_until.cast(_TS),
         status.cast(pa.string())],
        fields=list(ENTRY_TYPE), mask=pa.array(codes == 0),
    )  # fmt: skip
    return entries, codes


def splice_ups(membership: pa.Array, entries: Mapping[str, pa.Array]) -> pa.Array:
    """``membership`` with the ``ups`` entries of the segments in ``entries`` replaced.

    ``entries[segment]`` holds one entry per row (null: the row has none). The replaced and
    new entries land under ``ups`` (any case variant of it is folded into ``ups``); other
    namespaces are kept as they are, in order.
    """
    if not entries:
        return membership
    ids = list(entries)
    n, k = len(membership), len(ids)
    flat = _Flat(membership, ids)
    columns = [entries[s].combine_chunks() if isinstance(entries[s], pa.ChunkedArray)
               else entries[s] for s in ids]  # fmt: skip
    present = np.column_stack(
        [np.asarray(c.is_valid().to_numpy(zero_copy_only=False), dtype=bool) for c in columns]
    ) if n else np.zeros((0, k), dtype=bool)
    # new entries, in (row, segment) order
    pos = np.flatnonzero(present.reshape(-1))
    nrow, nj = pos // k, pos % k
    new_items = pa.concat_arrays(columns).take(pa.array(nj * n + nrow)).cast(ENTRY_TYPE)
    new_keys = pa.array(ids, pa.string()).take(pa.array(nj))

    # destination of each inner entry: per row, ups entries kept, new entries, other namespaces
    e_in = len(flat.ikeys)
    keep_ups = flat.ups_inner & ~flat.job_inner
    rank_a, a = _rank_in_row(keep_ups, flat.row_of_inner, n)
    b = np.bincount(nrow, minlength=n)
    rank_c, c = _rank_in_row(~flat.ups_inner, flat.row_of_inner, n)
    base = _excl_cumsum(a + b + c)
    order = np.empty(int(base[-1]), dtype=np.int64)
    src_a = np.flatnonzero(keep_ups)
    order[base[flat.row_of_inner[src_a]] + rank_a] = src_a
    rank_b = np.arange(len(pos)) - _excl_cumsum(b)[nrow]
    order[base[nrow] + a[nrow] + rank_b] = e_in + np.arange(len(pos))
    src_c = np.flatnonzero(~flat.ups_inner)
    rc = flat.row_of_inner[src_c]
    order[base[rc] + a[rc] + b[rc] + rank_c] = src_c
    take = pa.array(order)
    all_keys = pa.concat_arrays([flat.ikeys.cast(pa.string()), new_keys]).take(take)
    all_items = pa.concat_arrays([flat.items.cast(ENTRY_TYPE), new_items]).take(take)

    # outer entries: "ups" first (when it has entries), then the other namespaces in order
    has_ups = (a + b) > 0
    rank_o, c_out = _rank_in_row(~flat.ups_outer, flat.row_of_outer, n)
    obase = _excl_cumsum(has_ups.astype(np.int64) + c_out)
    out_keys = np.empty(int(obase[-1]), dtype=object)
    out_counts = np.empty(int(obase[-1]), dtype=np.int64)
    ups_rows = np.flatnonzero(has_ups)
    out_keys[obase[ups_rows]] = "ups"
    out_counts[obase[ups_rows]] = (a + b)[ups_rows]
    src_o = np.flatnonzero(~flat.ups_outer)
    ro = flat.row_of_outer[src_o]
    dest_o = obase[ro] + has_ups[ro] + rank_o
    out_keys[dest_o] = flat.okeys.cast(pa.string()).to_numpy(zero_copy_only=False)[src_o]
    out_counts[dest_o] = flat.cnt_in[src_o]
    inner_map = pa.MapArray.from_arrays(
        pa.array(_excl_cumsum(out_counts).astype(np.int32)), all_keys, all_items,
        type=MEMBERSHIP_TYPE.item_type,
    )
    null = ~flat.valid & (obase[1:] == obase[:-1])
    return pa.MapArray.from_arrays(
        pa.array(obase.astype(np.int32)), pa.array(out_keys, pa.string()), inner_map,
        type=MEMBERSHIP_TYPE, mask=pa.array(null) if null.any() else None,
    )


def merge_membership(
    membership: pa.Array,
    qualifies: np.ndarray,
    segment_ids: Sequence[str],
    versions: Sequence[str],
    valid_until_us: Sequence[int | None],
    now_us: int,
) -> tuple[pa.Array, np.ndarray]:
    """The new ``segmentMembership`` of a batch after evaluating ``segment_ids``.

    ``qualifies[row, j]`` says whether the row's profile qualifies for segment ``j`` now.
    Returns the new map array and the status codes, shape ``(rows, segments)``.
    """
    before = entries_of(membership, segment_ids)
    after: dict[str, pa.Array] = {}
    codes = np.zeros(qualifies.shape, dtype=np.int8)
    for j, s in enumerate(segment_ids):
        after[s], codes[:, j] = next_entries(before[s], qualifies[:, j], versions[j],
                                             valid_until_us[j], now_us)  # fmt: skip
    return splice_ups(membership, after), codes


class MembershipOverlay:
    """Per-segment ``ups`` entries aligned with a profile store's rows, one file per segment.

    Files are ``<directory>/<sha256 of the id>.arrow`` (Arrow IPC, lz4) with one ``entry``
    column of the membership entry struct and the segment id in the schema metadata.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, segment_id: str) -> Path:
        return self.directory / (hashlib.sha256(segment_id.encode()).hexdigest()[:32] + ".arrow")

    def ids(self) -> list[str]:
        """The segment ids with saved entries (sorted)."""
        if not self.directory.is_dir():
            return []
        found = []
        for path in self.directory.glob("*.arrow"):
            with contextlib.suppress(FileNotFoundError), pa.memory_map(str(path)) as source:
                metadata = pa.ipc.open_file(source).schema.metadata or {}
                found.append(metadata[b"segment"].decode())
        return sorted(found)

    def load(self, segment_ids: Sequence[str], rows: int) -> dict[str, pa.Array]:
        """The saved entries of those of ``segment_ids`` that have any.

        A file whose length is not ``rows`` (the store was replaced behind its back) is
        ignored with a warning.
        """
        out: dict[str, pa.Array] = {}
        for s in segment_ids:
            path = self._path(s)
            if not path.exists():
                continue
            chunks = feather.read_table(path, memory_map=False).column("entry")
            column = chunks.chunk(0) if chunks.num_chunks == 1 else chunks.combine_chunks()
            if len(column) != rows:
                log.warning("membership overlay of segment %s has %d rows, the store %d: ignored",
                            s, len(column), rows)  # fmt: skip
                continue
            out[s] = column
        return out

    def save(self, entries: Mapping[str, pa.Array], *, commit: Callable[[], bool]) -> bool:
        """Write every segment's entries, then (unless ``commit()`` says no) swap them in."""
        self.directory.mkdir(parents=True, exist_ok=True)
        written: list[tuple[Path, Path]] = []
        try:
            for s in entries:
                path = self._path(s)
                written.append((path.with_name(f".{path.name}.{os.getpid()}.tmp"), path))

            def write(segment: str, tmp: Path) -> None:
                table = pa.table({"entry": entries[segment]})
                # one record batch: loading it needs no concatenation of chunks
                feather.write_feather(table.replace_schema_metadata({"segment": segment}), tmp,
                                      compression="lz4", chunksize=max(table.num_rows, 1))

            with ThreadPoolExecutor(2) as pool:  # compression releases the GIL
                list(pool.map(write, entries, [tmp for tmp, _ in written]))
            if not commit():
                return False
            for tmp, path in written:
                os.replace(tmp, path)
            written.clear()
            return True
        finally:
            for tmp, _ in written:
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()

    def discard(self, segment_id: str) -> None:
        """Forget one segment's entries (its definition was deleted)."""
        with contextlib.suppress(FileNotFoundError):
            self._path(segment_id).unlink()

    def clear(self) -> None:
        """Forget every segment's entries (the store they were aligned with is gone)."""
        if self.directory.is_dir():
            for path in self.directory.glob("*.arrow"):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()

"""AEPFileSystem against the emulator: listings, Range reads, pyarrow, DuckDB, pickling."""

from __future__ import annotations

import dataclasses
import pickle

import duckdb
import fsspec
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest

from aep_io import (
    AEPClient,
    AEPFileSystem,
    BatchChangedError,
    BatchFile,
    IncompleteReadError,
    NotFoundError,
    plan_files,
)
from aep_io.emulator import Emulator, ExportBatch, Fault
from aep_io.filesystem import MAX_RELISTS


@pytest.fixture
def fs(client: AEPClient, export: ExportBatch) -> AEPFileSystem:
    return AEPFileSystem(client, files=plan_files(export.batch_id, client=client))


def _local(emulator: Emulator, export: ExportBatch, index: int = 0) -> bytes:
    dsf_id, name, _ = export.files[index]
    found = emulator.store.physical_file(dsf_id, name)
    assert found is not None
    return found.path.read_bytes()


def test_ls_and_info_come_from_listings(fs: AEPFileSystem, export: ExportBatch,
                                        emulator: Emulator) -> None:
    emulator.counters.reset()
    dirs = fs.ls(export.batch_id, detail=False)
    assert len(dirs) == 4
    files = fs.ls(dirs[0])
    assert files[0]["type"] == "file" and files[0]["size"] > 0
    info = fs.info("aep://" + files[0]["name"])
    assert info["size"] == files[0]["size"]
    assert fs.isdir(export.batch_id)
    assert emulator.counters.requests() == 0  # all answered from the planned listing


def test_glob_finds_every_part(fs: AEPFileSystem, export: ExportBatch) -> None:
    found = fs.glob(f"aep://{export.batch_id}/*/*.parquet")
    assert len(found) == 4


def test_cat_file_ranges_are_exact(fs: AEPFileSystem, export: ExportBatch,
                                   emulator: Emulator) -> None:
    path = next(iter(fs.glob(f"{export.batch_id}/*/*.parquet")))
    local = _local(emulator, export, [f[0] for f in export.files].index(path.split("/")[1]))
    assert fs.cat_file(path, 0, 4) == b"PAR1"
    assert fs.cat_file(path, -8) == local[-8:]
    assert fs.cat_file(path, 100, 5000) == local[100:5000]
    assert fs.cat_file(path) == local
    ranges = [r.range for r in emulator.counters.log("file")]
    assert ranges == ["bytes=0-3", f"bytes={len(local) - 8}-{len(local) - 1}", "bytes=100-4999",
                      None]


def test_cat_ranges_runs_concurrently_and_returns_in_order(fs: AEPFileSystem,
                                                           export: ExportBatch,
                                                           emulator: Emulator) -> None:
    paths = sorted(fs.glob(f"{export.batch_id}/*/*.parquet"))
    got = fs.cat_ranges(paths * 3, [0] * 12, [4] * 12)
    assert got == [b"PAR1"] * 12
    emulator.faults.add(Fault(kind="latency", delay=0.3, route="file", times=None))
    import time

    started = time.perf_counter()
    fs.cat_ranges(paths * 2, [0] * 8, [4] * 8)
    assert time.perf_counter() - started < 0.3 * 8 / 2  # 8 requests, 8 in flight


def test_one_column_moves_a_small_fraction(fs: AEPFileSystem, export: ExportBatch,
                                           emulator: Emulator) -> None:
    path = sorted(fs.glob(f"{export.batch_id}/*/*.parquet"))[0]
    size = fs.size(path)
    emulator.counters.reset()
    table = pq.ParquetFile(fs.open(path)).read(columns=["_acme"])
    assert table.num_rows == 5_000
    moved = emulator.counters.bytes_sent("file")
    assert moved < 0.10 * size, (moved, size)


def test_pyarrow_dataset_reads_everything(fs: AEPFileSystem, export: ExportBatch,
                                          emulator: Emulator) -> None:
    dataset = pads.dataset(fs.glob(f"{export.batch_id}/*/*.parquet"), filesystem=fs,
                           format="parquet")
    assert dataset.count_rows() == export.record_count


def test_duckdb_reads_aep_globs(fs: AEPFileSystem, export: ExportBatch,
                                emulator: Emulator) -> None:
    con = duckdb.connect()
    con.register_filesystem(fs)
    glob = f"aep://{export.batch_id}/*/*.parquet"
    assert con.sql(f"SELECT count(*) FROM read_parquet('{glob}')").fetchall() == [(20_000,)]
    emulator.counters.reset()
    countries = con.sql(f"SELECT DISTINCT homeAddress.countryCode FROM read_parquet('{glob}')")
    assert len(countries.fetchall()) > 5
    # Only the one leaf column is fetched. (DuckDB 2.0.1 reads far more, up to 1 MB past each
    # page header, for count(col) over several files; see docs/notes on DuckDB over fsspec.)
    assert emulator.counters.bytes_sent("file") < 0.25 * export.size


def test_pickle_keeps_listings(fs: AEPFileSystem, export: ExportBatch,
                               emulator: Emulator) -> None:
    clone = pickle.loads(pickle.dumps(fs))
    emulator.counters.reset()
    paths = clone.glob(f"{export.batch_id}/*/*.parquet")
    assert len(paths) == 4
    assert clone.cat_file(paths[0], 0, 4) == b"PAR1"
    kinds = {r.kind for r in emulator.counters.log()}
    assert "listing" not in kinds and "batch_files" not in kinds and "catalog" not in kinds


def test_lazily_lists_an_unplanned_batch(client: AEPClient, export: ExportBatch) -> None:
    fs = AEPFileSystem(client)
    assert len(fs.ls(export.batch_id)) == 4


def test_not_found_paths(fs: AEPFileSystem, export: ExportBatch) -> None:
    with pytest.raises(FileNotFoundError, match="no such file"):
        fs.open(f"aep://{export.batch_id}/{export.files[0][0]}/nope.parquet")
    with pytest.raises(FileNotFoundError, match="not a file path"):
        fs.cat_file(f"aep://{export.batch_id}")
    with pytest.raises(FileNotFoundError):
        fs.ls("01NOSUCHBATCH0000000000000")


def test_read_only(fs: AEPFileSystem, export: ExportBatch) -> None:
    path = fs.glob(f"{export.batch_id}/*/*.parquet")[0]
    with pytest.raises(PermissionError, match="read-only"):
        fs.open(path, "wb")


def test_modified_comes_from_listing(fs: AEPFileSystem, export: ExportBatch) -> None:
    path = fs.glob(f"{export.batch_id}/*/*.parquet")[0]
    assert fs.modified(path).year >= 2026


def test_a_short_body_is_never_handed_on(fs: AEPFileSystem, export: ExportBatch,
                                         emulator: Emulator) -> None:
    path = fs.glob(f"{export.batch_id}/*/*.parquet")[0]
    emulator.faults.add(Fault(kind="truncate", route="file", times=None))
    with pytest.raises((IncompleteReadError, OSError)):
        fs.cat_file(path, 0, 100_000)


def test_registered_as_fsspec_protocol() -> None:
    assert fsspec.get_filesystem_class("aep") is AEPFileSystem


# -- a listed file that answers 404 ------------------------------------------------------------
def _ghost(file: BatchFile) -> BatchFile:
    """A file as an older plan listed it, since removed from its batch."""
    name = "part-99999-removed-c000.snappy.parquet"
    return dataclasses.replace(file, name=name, url=file.url.split("?")[0] + f"?path={name}")


def test_stale_listing_is_relisted_once_and_read_on(fs: AEPFileSystem, export: ExportBatch,
                                                    emulator: Emulator) -> None:
    path = sorted(fs.glob(f"{export.batch_id}/*/*.parquet"))[0]
    local = _local(emulator, export, [f[0] for f in export.files].index(path.split("/")[1]))
    emulator.counters.reset()  # the fixture's planning
    emulator.faults.add(Fault(kind="stale_listing"))
    assert fs.cat_file(path) == local
    served = emulator.counters.snapshot()
    assert served["faults"] == {"stale_listing": 1}
    assert served["requests_by_kind"] == {
        "file": 2,  # the 404, then the read again
        "catalog": 1, "batch_files": 1, "listing": len(export.files),  # one re-list
    }
    emulator.counters.reset()
    assert fs.cat_file(path, 0, 4) == b"PAR1"  # the new listing is cached: no more listing
    assert emulator.counters.snapshot()["requests_by_kind"] == {"file": 1}


def test_concurrent_readers_of_a_stale_file_share_one_relist(
    fs: AEPFileSystem, export: ExportBatch, emulator: Emulator
) -> None:
    path = sorted(fs.glob(f"{export.batch_id}/*/*.parquet"))[0]
    emulator.counters.reset()
    emulator.faults.add(Fault(kind="stale_listing", times=4))
    got = fs.cat_ranges([path] * 4, [0, 4, 8, 12], [4, 8, 12, 16], on_error="raise")
    local = _local(emulator, export, [f[0] for f in export.files].index(path.split("/")[1]))
    assert got == [local[0:4], local[4:8], local[8:12], local[12:16]]
    assert emulator.counters.requests("batch_files") == 1
    assert emulator.counters.requests("file") == 8


def test_a_file_gone_from_its_batch_raises_batch_changed(client: AEPClient, export: ExportBatch,
                                                         emulator: Emulator) -> None:
    planned = plan_files(export.batch_id, client=client)
    ghost = _ghost(planned[0])
    fs = AEPFileSystem(client, files=[*planned, ghost])
    opened = fs.open(ghost.path)  # a reader that holds the file as planned
    emulator.counters.reset()
    with pytest.raises(BatchChangedError) as info:
        fs.cat_file(ghost.path, 0, 4)
    err = info.value
    assert isinstance(err, NotFoundError) and isinstance(err, FileNotFoundError)
    assert err.batch_id == export.batch_id and err.uri == ghost.uri
    message = str(err)
    assert ghost.uri in message and f"batch {export.batch_id}" in message
    assert "is no longer listed in the batch" in message
    assert "changed since it was planned; plan again" in message
    assert "Bearer" not in message and "emu1." not in message
    assert pickle.loads(pickle.dumps(err)).args == err.args
    assert emulator.counters.requests("batch_files") == 1  # one re-list, then the verdict
    with pytest.raises(BatchChangedError):  # the new listing already says so: no re-list
        opened.read(4)
    with pytest.raises(FileNotFoundError, match="no such file"):  # no request at all
        fs.read_into(ghost.path, 0, memoryview(bytearray(4)))
    assert emulator.counters.requests("batch_files") == 1
    assert emulator.counters.requests("file") == 2
    assert fs.cat_file(planned[0].path, 0, 4) == b"PAR1"  # the rest of the batch reads on


def test_a_file_gone_fails_a_whole_read_never_part_of_it(client: AEPClient,
                                                          export: ExportBatch) -> None:
    planned = plan_files(export.batch_id, client=client)
    fs = AEPFileSystem(client, files=[*planned, _ghost(planned[-1])])
    with pytest.raises(Exception) as info:  # pyarrow may wrap the error; it must not pass
        pads.dataset(fs.glob(f"{export.batch_id}/*/*.parquet"), filesystem=fs,
                     format="parquet").to_table()
    assert "changed since it was planned" in str(info.value)


def test_a_listed_file_that_keeps_answering_404_gives_up(fs: AEPFileSystem, export: ExportBatch,
                                                         emulator: Emulator) -> None:
    path = sorted(fs.glob(f"{export.batch_id}/*/*.parquet"))[0]
    emulator.counters.reset()
    emulator.faults.add(Fault(kind="stale_listing", times=None))
    with pytest.raises(NotFoundError) as info:
        fs.cat_file(path, 0, 4)
    assert not isinstance(info.value, BatchChangedError)  # it is still listed
    assert "still listed" in str(info.value) and f"{MAX_RELISTS + 1} times" in str(info.value)
    assert emulator.counters.requests("batch_files") == MAX_RELISTS
    assert emulator.counters.requests("file") == MAX_RELISTS + 1


def test_footers_read_through_open_are_kept(fs: AEPFileSystem, export: ExportBatch,
                                           emulator: Emulator) -> None:
    path = sorted(fs.glob(f"{export.batch_id}/*/*.parquet"))[0]
    size = fs.size(path)
    index = [name for _, name, _ in export.files].index(path.rsplit("/", 1)[1])
    local = _local(emulator, export, index)
    footer_len = int.from_bytes(local[-8:-4], "little")
    emulator.counters.reset()
    with fs.open(path) as f:  # DuckDB's pattern: a 16 KiB tail, then the footer itself
        f.seek(size - 16_384)
        assert f.read() == local[-16_384:]
        f.seek(size - 8 - footer_len)
        assert f.read(footer_len) == local[-8 - footer_len : -8]
    assert emulator.counters.requests("file") == 2
    for _ in range(3):  # every later open (a query) finds them kept: no request
        with fs.open(path) as f:
            f.seek(size - 8 - footer_len)
            assert f.read(footer_len + 8) == local[-8 - footer_len :]
    assert emulator.counters.requests("file") == 2
    # a column chunk near the end is not a footer read: exactly its bytes, not kept
    emulator.counters.reset()
    start = size - 8 - footer_len - 1000
    with fs.open(path) as f:
        f.seek(start)
        assert f.read(500) == local[start : start + 500]
    assert emulator.counters.bytes_sent("file") == 500


def test_kept_footers_are_bounded() -> None:
    from aep_io.filesystem import _Tails

    tails = _Tails(max_tail=100, max_total=250)
    tails.put("a", 900, b"a" * 100)
    tails.put("b", 900, b"b" * 100)
    tails.put("big", 0, b"x" * 101)  # longer than a tail: not kept
    assert tails.get("big", 0, 10) is None
    assert tails.get("a", 950, 960) == b"a" * 10  # a is now the most recent
    tails.put("c", 900, b"c" * 100)  # over 250 bytes: b, the least recent, goes
    assert tails.get("b", 900, 1000) is None
    assert tails.get("a", 900, 1000) == b"a" * 100 and tails.get("c", 900, 901) == b"c"
    assert tails.get("a", 899, 1000) is None and tails.get("a", 900, 1001) is None  # not kept

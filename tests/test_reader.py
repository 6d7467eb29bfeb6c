"""The reader core: bounded, cancellable, concurrent, and exact."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from aep_io import AEPClient
from aep_io.emulator import Emulator, ExportBatch, Fault
from aep_io.reader import (
    CorruptFileError,
    ReadOptions,
    _OpenFile,
    iter_record_batches,
    to_record_batch_reader,
)
from aep_io.sources import Source


def _local_table(emulator: Emulator, export: ExportBatch) -> pa.Table:
    tables = []
    for dsf, name, _ in export.files:
        found = emulator.store.physical_file(dsf, name)
        assert found is not None
        tables.append(pq.read_table(found.path))
    return pa.concat_tables(tables)


@pytest.fixture
def source(client: AEPClient, export: ExportBatch) -> Source:
    src = Source.of(export.batch_id, client=client)
    src.files()  # plan now, so tests count only file requests
    return src


def test_full_read_equals_local(source: Source, emulator: Emulator,
                                export: ExportBatch) -> None:
    emulator.counters.reset()
    got = pa.Table.from_batches(list(iter_record_batches(source)))
    assert got.equals(_local_table(emulator, export))
    # footers + every row group once: within 2% of the files' bytes
    assert emulator.counters.bytes_sent("file") < 1.02 * export.size


def test_projection_and_filter_are_exact(source: Source, emulator: Emulator,
                                         export: ExportBatch) -> None:
    expr = pc.field("_acme", "loyaltyTier") == "platinum"
    opts = ReadOptions(columns=["personalEmail"], filter=expr)
    got = pa.Table.from_batches(list(iter_record_batches(source, opts)))
    local = _local_table(emulator, export)
    expected = local.filter(expr).select(["personalEmail"])
    assert got.equals(expected)
    assert 0 < got.num_rows < local.num_rows


def test_backpressure_with_a_slow_consumer(source: Source, emulator: Emulator) -> None:
    emulator.counters.reset()
    opts = ReadOptions(columns=["_acme"], max_inflight=2, batch_size=1_000, unit_bytes=1)
    stream = iter_record_batches(source, opts)
    next(stream)
    time.sleep(0.5)  # a slow consumer: the reader must not run ahead of its window
    # one request per row group here (one column): the footers of the current file and of
    # two ahead, the row group being consumed and 2 in flight; the whole read takes 4 + 32.
    assert emulator.counters.requests("file") <= 3 + 1 + 2
    stream.close()


def test_early_close_stops_requests(source: Source, emulator: Emulator) -> None:
    emulator.faults.add(Fault(kind="latency", delay=0.05, route="file", times=None))
    stream = iter_record_batches(source, ReadOptions(max_inflight=2, unit_bytes=1))
    next(stream)
    stream.close()
    time.sleep(0.2)
    after_close = emulator.counters.requests("file")
    time.sleep(0.3)
    assert emulator.counters.requests("file") == after_close
    assert after_close < 12  # 32 row groups + 4 footers were not all fetched


def test_limit_stops_io_early(source: Source, emulator: Emulator) -> None:
    emulator.counters.reset()
    rows = sum(b.num_rows for b in iter_record_batches(source, ReadOptions(limit=5)))
    assert rows == 5
    assert emulator.counters.requests("file") <= 3  # one footer, one row group (maybe split)


def test_concurrency_cap_is_respected(source: Source, emulator: Emulator) -> None:
    emulator.faults.add(Fault(kind="latency", delay=0.03, route="file", times=None))
    emulator.counters.reset()
    opts = ReadOptions(columns=["person", "_acme", "homeAddress"], max_inflight=8, io_threads=3)
    for _ in iter_record_batches(source, opts):
        pass
    assert 2 <= emulator.counters.max_in_flight("file") <= 3


def test_errors_reach_the_consumer_naming_the_file(client: AEPClient, emulator: Emulator,
                                                   tmp_path: Path) -> None:
    good = tmp_path / "part-00000-good.parquet"
    pq.write_table(pa.table({"a": [1, 2, 3]}), good)
    bad = tmp_path / "part-00001-bad.parquet"
    bad.write_bytes(b"this is not parquet at all, sorry")
    export = emulator.add_export_batch([good, bad])
    src = Source.of(export.batch_id, client=client)
    with pytest.raises(CorruptFileError, match=r"part-00001-bad\.parquet"):
        list(iter_record_batches(src))


def test_corrupt_footer_names_the_file(client: AEPClient, emulator: Emulator,
                                       tmp_path: Path) -> None:
    path = tmp_path / "part-00000-broken.parquet"
    pq.write_table(pa.table({"a": list(range(100))}), path)
    data = bytearray(path.read_bytes())
    footer_len = int.from_bytes(data[-8:-4], "little")
    start = len(data) - 8 - footer_len
    data[start : start + 16] = b"\xff" * 16  # garbage where the thrift footer starts
    path.write_bytes(bytes(data))
    export = emulator.add_export_batch([path])
    with pytest.raises(CorruptFileError, match=r"part-00000-broken\.parquet"):
        list(iter_record_batches(Source.of(export.batch_id, client=client)))


def test_empty_batch_yields_nothing(client: AEPClient, emulator: Emulator) -> None:
    export = emulator.add_export_batch([])
    assert list(iter_record_batches(Source.of(export.batch_id, client=client))) == []
    with pytest.raises(FileNotFoundError, match="no parquet files"):
        to_record_batch_reader(Source.of(export.batch_id, client=client))


def test_unknown_column_is_a_clear_error(source: Source) -> None:
    with pytest.raises(KeyError, match="nope"):
        list(iter_record_batches(source, ReadOptions(columns=["nope"])))


def test_record_batch_reader(source: Source, export: ExportBatch) -> None:
    reader = to_record_batch_reader(source, ReadOptions(columns=["person"]))
    assert reader.schema.names == ["person"]
    assert reader.read_all().num_rows == export.record_count


def test_threads_are_released(source: Source) -> None:
    before = threading.active_count()
    for _ in range(3):
        stream = iter_record_batches(source)
        next(stream)
        stream.close()
    time.sleep(0.3)
    assert threading.active_count() <= before + 2


def test_public_arrow_api(client: AEPClient, export: ExportBatch, emulator: Emulator) -> None:
    import aep_io

    reader = aep_io.to_arrow_batch_reader(export.batch_id, columns=["_acme"], client=client)
    assert reader.read_all().num_rows == export.record_count
    gold = aep_io.read_arrow(export.batch_id, client=client, columns=["_acme"],
                             filter=pc.field("_acme", "loyaltyTier") == "gold")
    expected = _local_table(emulator, export).filter(pc.field("_acme", "loyaltyTier") == "gold")
    assert gold.num_rows == expected.num_rows > 0
    assert aep_io.read_arrow(export.batch_id, client=client, limit=7).num_rows == 7
    none = aep_io.read_arrow(export.batch_id, client=client, columns=["_acme"],
                             filter=pc.field("_acme", "loyaltyTier") == "no such tier")
    assert none.num_rows == 0 and none.schema.names == ["_acme"]


def test_leaf_projection_reads_only_those_leaves(source: Source, emulator: Emulator,
                                                 export: ExportBatch) -> None:
    leaves = ["segmentMembership.key_value.key",
              "segmentMembership.key_value.value.key_value.key",
              "segmentMembership.key_value.value.key_value.value.status"]
    emulator.counters.reset()
    got = to_record_batch_reader(source, ReadOptions(columns=leaves)).read_all()
    assert got.column_names == ["segmentMembership"]
    value_type = got.schema.field("segmentMembership").type.item_type.item_type
    assert [f.name for f in value_type] == ["status"]
    local = _local_table(emulator, export)
    assert got.num_rows == local.num_rows
    full_column = emulator.counters.bytes_sent("file")
    emulator.counters.reset()
    list(iter_record_batches(source, ReadOptions(columns=["segmentMembership"])))
    assert full_column > 0 and full_column < 0.5 * emulator.counters.bytes_sent("file")


def test_record_count_is_checked_after_a_full_read(client: AEPClient, emulator: Emulator,
                                                   export: ExportBatch) -> None:
    from aep_io import IncompleteReadError

    src = Source.of(export.batch_id, client=client)
    src.files()
    assert src.record_counts == {export.batch_id: export.record_count}
    src.record_counts[export.batch_id] += 1  # as if the listing had missed a file
    with pytest.raises(IncompleteReadError, match="Catalog records"):
        list(iter_record_batches(src, ReadOptions(columns=["_acme"])))
    # a filtered or limited read cannot be checked, and is not
    assert list(iter_record_batches(src, ReadOptions(limit=3)))


def _vma_flags(address: int) -> list[str]:
    """The kernel's VmFlags of the mapping that holds ``address`` (Linux)."""
    inside = False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split(" ", 1)[0]
        if "-" in head and ":" not in head:
            lo, hi = (int(x, 16) for x in head.split("-"))
            inside = lo <= address < hi
        elif inside and line.startswith("VmFlags:"):
            return line.split()[1:]
    raise AssertionError(f"no mapping holds {address:#x}")


@pytest.mark.skipif(not Path("/sys/kernel/mm/transparent_hugepage").exists(),
                    reason="needs Linux with transparent huge pages (madvise, smaps)")
def test_file_buffer_pages_follow_how_much_is_fetched(source: Source) -> None:
    # On a 2 MiB huge page, fetching one small column chunk would commit (and zero) the whole
    # page: a narrow read of a 1M-profile export peaked at 0.40 GB of RSS instead of 0.18 GB.
    sparse = _OpenFile(source.files()[0])
    assert sparse._buffer.size == sparse.size and sparse.filled_from > 2 * 4096
    assert "nh" in _vma_flags(sparse._buffer.address + 4096)  # MADV_NOHUGEPAGE
    sparse.choose_pages(sparse.size // 10)
    assert "nh" in _vma_flags(sparse._buffer.address + 4096)
    # most of the file: huge pages, 512x fewer page faults
    dense = _OpenFile(source.files()[1])
    dense.choose_pages(dense.size * 9 // 10)
    flags = _vma_flags(dense._buffer.address + 4096)
    assert "hg" in flags and "nh" not in flags  # MADV_HUGEPAGE


def _resident_pages(address: int, length: int) -> int:
    """How many of the pages under [address, address + length) are in memory (pagemap)."""
    page = 4096
    first, last = address // page, (address + length - 1) // page
    with open("/proc/self/pagemap", "rb") as pagemap:
        pagemap.seek(first * 8)
        entries = pagemap.read((last - first + 1) * 8)
    return sum(entries[i + 7] >> 7 for i in range(0, len(entries), 8))  # bit 63: present


@pytest.mark.skipif(not Path("/proc/self/pagemap").exists(), reason="needs Linux pagemap")
def test_decoded_ranges_go_back_to_the_os(source: Source) -> None:
    opened = _OpenFile(source.files()[0])
    start, end = 16 * 4096, 48 * 4096  # well before the footer tail fetched on open
    assert end < opened.filled_from
    with ThreadPoolExecutor(2) as pool:
        opened.fetch([(start, end)], pool)
    address = opened._buffer.address + start
    assert _resident_pages(address, end - start) >= 31  # written: in memory
    opened.release([(start, end)])
    assert _resident_pages(address + 4096, end - start - 2 * 4096) == 0  # whole pages dropped

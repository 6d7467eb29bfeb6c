"""DuckDB views with pushdown, and aep:// globs in plain SQL."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from aep_io import AEPClient, Settings
from aep_io.duckdb_io import register, to_dataset, to_duckdb
from aep_io.emulator import Emulator, ExportBatch, Fault
from aep_io.reader import CorruptFileError
from aep_io.sources import Source


def test_view_pushes_projection_down(client: AEPClient, export: ExportBatch,
                                     emulator: Emulator) -> None:
    con = to_duckdb(export.batch_id, client=client, name="audience")
    emulator.counters.reset()
    rows = con.sql("SELECT _acme.loyaltyTier AS tier, count(*) FROM audience GROUP BY 1").fetchall()
    assert sum(n for _, n in rows) == export.record_count
    assert emulator.counters.bytes_sent("file") < 0.15 * export.size


def test_view_pushes_filters_down(client: AEPClient, sorted_export: ExportBatch,
                                  emulator: Emulator) -> None:
    con = to_duckdb(sorted_export.batch_id, client=client, name="audience")
    emulator.counters.reset()
    rows = con.sql("SELECT profileIndex FROM audience WHERE profileIndex BETWEEN 7000 AND 7009 "
                   "ORDER BY 1").fetchall()
    assert [r[0] for r in rows] == list(range(7000, 7010))
    assert emulator.counters.bytes_sent("file") < 0.05 * sorted_export.size


def test_view_over_an_existing_connection(client: AEPClient, export: ExportBatch) -> None:
    con = duckdb.connect()
    assert to_duckdb(export.batch_id, con, client=client, name="a1") is con
    assert con.sql("SELECT count(*) FROM a1").fetchall() == [(export.record_count,)]


def test_bad_view_name(client: AEPClient, export: ExportBatch) -> None:
    with pytest.raises(ValueError, match="identifier"):
        to_duckdb(export.batch_id, client=client, name="drop table x;")


def test_register_makes_aep_globs_work(client: AEPClient, export: ExportBatch,
                                       emulator: Emulator) -> None:
    con = duckdb.connect()
    register(con, client=client)
    glob = f"aep://{export.batch_id}/*/*.parquet"
    rows = con.sql(f"SELECT count(*) FROM read_parquet('{glob}')").fetchall()
    assert rows == [(export.record_count,)]


def test_flatten_sql_over_aep_equals_polars_flatten(client: AEPClient,
                                                    export: ExportBatch) -> None:
    import polars as pl

    from aep_io.membership import flatten_membership, flatten_sql
    from aep_io.polars_io import scan_batches

    con = duckdb.connect()
    register(con, client=client)
    source = f"read_parquet('aep://{export.batch_id}/*/*.parquet')"
    via_duckdb = con.sql(flatten_sql(source, con=con)).pl()
    via_polars = flatten_membership(scan_batches(export.batch_id, client=client)).collect()
    assert via_polars.height > 10 * export.record_count

    def normalise(frame: pl.DataFrame) -> pl.DataFrame:
        ts = [c for c, t in frame.schema.items() if isinstance(t, pl.Datetime)]
        frame = frame.with_columns(pl.col(ts).dt.convert_time_zone("UTC"))
        return frame.sort(frame.columns)

    assert normalise(via_duckdb).equals(normalise(via_polars))


def _view_sql(con: duckdb.DuckDBPyConnection, name: str) -> str:
    rows = con.execute("SELECT sql FROM duckdb_views() WHERE view_name = ?", [name]).fetchall()
    return rows[0][0] if rows else ""


def test_view_over_batches_is_duckdbs_own_reader(client: AEPClient, export: ExportBatch,
                                                 emulator: Emulator) -> None:
    con = to_duckdb(export.batch_id, client=client, name="audience")
    assert "read_parquet" in _view_sql(con, "audience")
    query = "SELECT _acme.loyaltyTier AS tier, count(*) FROM audience GROUP BY 1 ORDER BY 1"
    emulator.counters.reset()
    first = con.sql(query).fetchall()
    leaf_bytes = emulator.counters.bytes_sent("file")
    # the same view over a pyarrow dataset reads the whole _acme struct
    other = duckdb.connect()
    other.register("audience", to_dataset(Source.of(export.batch_id, client=client)))
    emulator.counters.reset()
    assert other.sql(query).fetchall() == first
    assert leaf_bytes < emulator.counters.bytes_sent("file") / 3
    # footers were read when the view was made and are kept: a query asks for data only
    emulator.counters.reset()
    assert con.sql(query).fetchall() == first
    assert emulator.counters.bytes_sent("file") == leaf_bytes
    assert emulator.counters.requests("file") <= len(export.files) * 8  # row groups, no footers


def test_flatten_over_a_view_equals_polars(client: AEPClient, export: ExportBatch) -> None:
    import polars as pl

    from aep_io.membership import create_flatten_view, flatten_membership
    from aep_io.polars_io import scan_batches

    con = to_duckdb(export.batch_id, client=client, name="audience")
    create_flatten_view(con, "audience", "memberships", namespace="ups")
    got = con.sql("SELECT segment_id, count(*) AS n FROM memberships GROUP BY 1").pl()
    want = (flatten_membership(scan_batches(export.batch_id, client=client), namespace="ups")
            .group_by("segment_id").agg(n=pl.len()).collect())  # fmt: skip
    assert got.sort("segment_id").equals(want.sort("segment_id").cast({"n": pl.Int64}))


def test_views_of_one_client_share_its_filesystem(client: AEPClient, export: ExportBatch,
                                                  sorted_export: ExportBatch) -> None:
    con = duckdb.connect()
    register(con, client=client)  # a registration of the same client is reused
    to_duckdb(export.batch_id, con, client=client, name="a")
    to_duckdb(sorted_export.batch_id, con, client=client, name="b")
    assert "read_parquet" in _view_sql(con, "a") and "read_parquet" in _view_sql(con, "b")
    assert con.sql("SELECT (SELECT count(*) FROM a), (SELECT count(*) FROM b)").fetchall() == [
        (export.record_count, sorted_export.record_count)]


def test_another_clients_filesystem_is_left_alone(client: AEPClient, settings: Settings,
                                                  export: ExportBatch) -> None:
    con = duckdb.connect()
    with AEPClient(settings) as other:
        held = register(con, client=other)
        to_duckdb(export.batch_id, con, client=client, name="audience")
        assert "python_arrow_scan" in _view_sql(con, "audience")  # over a pyarrow dataset
        assert con.sql("SELECT count(*) FROM audience").fetchall() == [(export.record_count,)]
        assert con.sql(f"SELECT count(*) FROM read_parquet('aep://{export.batch_id}/*/*')"
                       ).fetchall() == [(export.record_count,)]  # the user's still works
        assert held.client is other


def test_view_is_not_saved_in_a_database_file(client: AEPClient, export: ExportBatch,
                                              tmp_path: Path) -> None:
    path = str(tmp_path / "db.duckdb")
    with duckdb.connect(path) as con:
        to_duckdb(export.batch_id, con, client=client, name="audience")
        con.execute("CREATE TABLE kept AS SELECT count(*) AS n FROM audience")
    with duckdb.connect(path) as con:  # reopened without aep://: nothing dangling
        assert con.sql("SELECT n FROM kept").fetchall() == [(export.record_count,)]
        assert _view_sql(con, "audience") == ""


def test_corrupt_file_of_a_batch_fails_when_the_view_is_made(
    client: AEPClient, emulator: Emulator, tmp_path: Path
) -> None:
    path = tmp_path / "part-00000-broken.parquet"
    pq.write_table(pa.table({"a": list(range(100))}), path)
    data = bytearray(path.read_bytes())
    footer_len = int.from_bytes(data[-8:-4], "little")
    data[len(data) - 8 - footer_len : len(data) - footer_len] = b"\xff" * 8
    path.write_bytes(bytes(data))
    broken = emulator.add_export_batch([path])
    with pytest.raises(CorruptFileError, match=r"part-00000-broken\.parquet"):
        to_duckdb(broken.batch_id, client=client)


def test_a_failed_request_while_making_the_view_keeps_its_error(
    client: AEPClient, emulator: Emulator, export: ExportBatch
) -> None:
    from aep_io.errors import ForbiddenError

    emulator.faults.add(Fault(kind="status", status=403, route="file", times=None))
    with pytest.raises(ForbiddenError, match="403"):
        to_duckdb(export.batch_id, client=client)


def test_register_after_a_view(client: AEPClient, settings: Settings,
                               export: ExportBatch) -> None:
    con = to_duckdb(export.batch_id, client=client, name="audience")
    held = register(con, client=client)  # the view's filesystem, as it is
    assert register(con) is held and held.client is client
    with AEPClient(settings) as other:
        replaced = register(con, client=other)  # another client: it takes over aep://
        assert replaced is not held and replaced.client is other
        assert con.sql("SELECT count(*) FROM audience").fetchall() == [(export.record_count,)]

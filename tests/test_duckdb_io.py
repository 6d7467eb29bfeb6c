"""DuckDB views with pushdown, and aep:// globs in plain SQL."""

from __future__ import annotations

import duckdb
import pytest

from aep_io import AEPClient
from aep_io.duckdb_io import register, to_duckdb
from aep_io.emulator import Emulator, ExportBatch


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

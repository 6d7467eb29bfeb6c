"""The benchmark cases. Each runs in a fresh process: ``python -m benchmarks.cases NAME CTX``.

A case is a function of the context (data paths, server URLs) that returns a dict with at
least ``rows``; the process prints one JSON line with that, the seconds the work took in-process
and the peak RSS. Variants named ``local_*`` are the baselines on the same files.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from benchmarks.memory import peak_rss_mb

CASES: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {}

NARROW = ["person", "_acme"]


def case(name: str) -> Callable[[Callable[[dict[str, Any]], dict[str, Any]]],
                                Callable[[dict[str, Any]], dict[str, Any]]]:
    def register(fn: Callable[[dict[str, Any]], dict[str, Any]]) -> Callable[..., Any]:
        CASES[name] = fn
        return fn
    return register


def _client(ctx: dict[str, Any]) -> Any:
    from aep_io import AEPClient, Settings

    return AEPClient(Settings.from_env(ctx["env"]))


def nginx_files(ctx: dict[str, Any], client: Any) -> list[Any]:
    """The batch's planned files, with download URLs pointing at nginx serving the same bytes."""
    from dataclasses import replace

    from aep_io import plan_files

    files = plan_files(ctx["batch_id"], client=client)
    by_name = {os.path.basename(p): p for p in ctx["parts"]}
    return [replace(f, url=f"{ctx['nginx']}/{os.path.basename(by_name[f.name])}")
            for f in files]


def nginx_client(ctx: dict[str, Any]) -> Any:
    from aep_io import AEPClient, Settings

    return AEPClient(Settings(client_id="bench", org_id="bench", access_token="none",
                              platform_url=ctx["nginx"], ims_url=ctx["nginx"]))


# -- full read --
@case("full_read:local_pyarrow")
def _full_local(ctx: dict[str, Any]) -> dict[str, Any]:
    import pyarrow.parquet as pq

    return {"rows": pq.read_table(ctx["parts"]).num_rows}


@case("full_read:aep_io_emulator")
def _full_emulator(ctx: dict[str, Any]) -> dict[str, Any]:
    from aep_io import read_arrow

    return {"rows": read_arrow(ctx["batch_id"], client=_client(ctx)).num_rows}


@case("full_read:aep_io_nginx")
def _full_nginx(ctx: dict[str, Any]) -> dict[str, Any]:
    from aep_io import AEPFileSystem, read_arrow

    files = nginx_files(ctx, _client(ctx))
    fs = AEPFileSystem(nginx_client(ctx), files=files)
    return {"rows": read_arrow(files, filesystem=fs, client=fs.client).num_rows}


# -- streaming (peak memory) --
@case("stream:local_iter_batches")
def _stream_local(ctx: dict[str, Any]) -> dict[str, Any]:
    import pyarrow.parquet as pq

    rows = 0
    for path in ctx["parts"]:
        for batch in pq.ParquetFile(path).iter_batches():
            rows += batch.num_rows
    return {"rows": rows}


@case("stream:aep_io_emulator")
def _stream_emulator(ctx: dict[str, Any]) -> dict[str, Any]:
    from aep_io import to_arrow_batch_reader

    return {"rows": sum(b.num_rows for b in to_arrow_batch_reader(ctx["batch_id"],
                                                                  client=_client(ctx)))}


# -- narrow projection --
@case("narrow:local_pyarrow")
def _narrow_local(ctx: dict[str, Any]) -> dict[str, Any]:
    import pyarrow.parquet as pq

    return {"rows": pq.read_table(ctx["parts"], columns=NARROW).num_rows}


@case("narrow:aep_io_emulator")
def _narrow_emulator(ctx: dict[str, Any]) -> dict[str, Any]:
    from aep_io import read_arrow

    tuned = {"io_threads": ctx["io_threads"]} if "io_threads" in ctx else {}  # concurrency.py
    table = read_arrow(ctx["batch_id"], columns=NARROW, client=_client(ctx), **tuned)
    return {"rows": table.num_rows}


# -- segment X members --
@case("segment_x:local_polars_flatten")
def _segment_local(ctx: dict[str, Any]) -> dict[str, Any]:
    import polars as pl

    from aep_io.membership import flatten_membership

    lf = pl.scan_parquet(ctx["parts"]).select("identityMap", "segmentMembership")
    members = flatten_membership(lf, namespace="ups").filter(
        (pl.col("segment_id") == ctx["segment"])
        & pl.col("status").is_in(["realized", "existing", "entering"])).collect()
    return {"rows": members.height}


@case("segment_x:aep_io_emulator")
def _segment_emulator(ctx: dict[str, Any]) -> dict[str, Any]:
    from aep_io import segment_members

    return {"rows": segment_members(ctx["batch_id"], ctx["segment"], client=_client(ctx)).height}


# -- flatten end to end --
@case("flatten:local_polars")
def _flatten_local(ctx: dict[str, Any]) -> dict[str, Any]:
    import polars as pl

    from aep_io.membership import flatten_membership

    lf = pl.scan_parquet(ctx["parts"]).select("identityMap", "segmentMembership")
    return {"rows": flatten_membership(lf).select(pl.len()).collect().item()}


@case("flatten:local_pyarrow_same_flatten")
def _flatten_local_pyarrow(ctx: dict[str, Any]) -> dict[str, Any]:
    """The same flatten over local files read by pyarrow: what is left without HTTP."""
    import pyarrow.parquet as pq

    from aep_io.membership import flatten_membership_arrow

    rows = 0
    for path in ctx["parts"]:
        for batch in pq.ParquetFile(path).iter_batches(
                columns=["identityMap", "segmentMembership"]):
            rows += flatten_membership_arrow(batch).num_rows
    return {"rows": rows}


@case("flatten:aep_io_emulator")
def _flatten_emulator(ctx: dict[str, Any]) -> dict[str, Any]:
    from aep_io.membership import flatten_membership_arrow
    from aep_io.reader import ReadOptions, iter_record_batches
    from aep_io.sources import Source

    source = Source.of(ctx["batch_id"], client=_client(ctx))
    rows = 0
    options = ReadOptions(columns=["identityMap", "segmentMembership"])
    for batch in iter_record_batches(source, options):
        rows += flatten_membership_arrow(batch).num_rows
    return {"rows": rows}


# -- head(100) --
@case("head:local_polars")
def _head_local(ctx: dict[str, Any]) -> dict[str, Any]:
    import polars as pl

    return {"rows": pl.scan_parquet(ctx["parts"]).head(100).collect().height}


@case("head:aep_io_emulator")
def _head_emulator(ctx: dict[str, Any]) -> dict[str, Any]:
    from aep_io import scan_batches

    return {"rows": scan_batches(ctx["batch_id"], client=_client(ctx)).head(100).collect().height}


# -- polars group-by over flattened rows --
@case("groupby:local_polars")
def _groupby_local(ctx: dict[str, Any]) -> dict[str, Any]:
    import polars as pl

    from aep_io.membership import audience_sizes

    lf = pl.scan_parquet(ctx["parts"]).select("identityMap", "segmentMembership")
    return {"rows": audience_sizes(lf).collect().height}


@case("groupby:aep_io_emulator")
def _groupby_emulator(ctx: dict[str, Any]) -> dict[str, Any]:
    from aep_io import audience_sizes, scan_batches

    lf = scan_batches(ctx["batch_id"], client=_client(ctx)).select("identityMap",
                                                                   "segmentMembership")
    return {"rows": audience_sizes(lf).collect().height}


# -- DuckDB --
SQL = ("SELECT homeAddress.countryCode AS c, _acme.loyaltyTier AS t, count(*) AS n, "
       "avg(_acme.lifetimeValue) AS v FROM {src} GROUP BY 1, 2")


@case("duckdb_sql:local_duckdb")
def _sql_local(ctx: dict[str, Any]) -> dict[str, Any]:
    import duckdb

    src = "read_parquet([" + ",".join(f"'{p}'" for p in ctx["parts"]) + "])"
    return {"rows": len(duckdb.connect().sql(SQL.format(src=src)).fetchall())}


@case("duckdb_sql:aep_io_glob")
def _sql_glob(ctx: dict[str, Any]) -> dict[str, Any]:
    import duckdb

    from aep_io import register

    con = duckdb.connect()
    register(con, client=_client(ctx))
    src = f"read_parquet('aep://{ctx['batch_id']}/*/*.parquet')"
    return {"rows": len(con.sql(SQL.format(src=src)).fetchall())}


@case("duckdb_sql:aep_io_view")
def _sql_view(ctx: dict[str, Any]) -> dict[str, Any]:
    from aep_io import to_duckdb

    con = to_duckdb(ctx["batch_id"], client=_client(ctx), name="audience")
    return {"rows": len(con.sql(SQL.format(src="audience")).fetchall())}


# -- bulk load into a DuckDB file --
@case("load:local_duckdb")
def _load_local(ctx: dict[str, Any]) -> dict[str, Any]:
    import duckdb

    path = ctx["scratch"] + "/local.duckdb"
    if os.path.exists(path):
        os.remove(path)
    con = duckdb.connect(path)
    src = "read_parquet([" + ",".join(f"'{p}'" for p in ctx["parts"]) + "])"
    con.execute(f"CREATE TABLE t AS SELECT * FROM {src}")
    rows = con.execute("SELECT count(*) FROM t").fetchall()[0][0]
    con.close()
    return {"rows": rows}


@case("load:aep_io_cli")
def _load_aep(ctx: dict[str, Any]) -> dict[str, Any]:
    import duckdb

    from aep_io.cli import main

    path = ctx["scratch"] + "/aep.duckdb"
    if os.path.exists(path):
        os.remove(path)
    os.environ.update(ctx["env"])
    assert main(["load", ctx["batch_id"], "--duckdb", path, "--table", "t"]) == 0
    con = duckdb.connect(path)
    rows = con.execute("SELECT count(*) FROM t").fetchall()[0][0]
    con.close()
    return {"rows": rows}


def main() -> None:
    name, ctx_json = sys.argv[1], sys.argv[2]
    ctx = json.loads(ctx_json)
    started = time.perf_counter()
    result = CASES[name](ctx)
    result["seconds"] = time.perf_counter() - started
    result["peak_rss_mb"] = peak_rss_mb()
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()

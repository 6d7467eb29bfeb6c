"""Throughput of the in-memory flatten forms (aep_io.membership).

Builds ~1M profiles x ~12 membership entries in memory -- with
``aep_io.emulator.synthetic`` when available, else directly with numpy -- and prints
flattened rows/s for the arrow and polars forms (DuckDB over the in-memory Arrow table with
``--duckdb``).  Timings are the best of ``--repeat`` runs, data already in memory.

    .venv/bin/python benchmarks/flatten_inmemory.py [--profiles 1000000] [--numpy] [--duckdb]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa

from aep_io.membership import flatten_membership, flatten_membership_arrow, flatten_sql

TS = pa.timestamp("us", tz="UTC")


def _strings(prefix: str, values: np.ndarray) -> pa.Array:
    return pa.array([f"{prefix}{v:012x}" for v in values.tolist()], pa.string())


def numpy_table(profiles: int, seed: int = 7) -> pa.Table:
    """~10.5 ups + ~1.9 aam segments per profile, one primary ECID, some emails."""
    rng = np.random.default_rng(seed)
    n = profiles
    ups_pool = pa.array([f"{i:08x}-0000-4000-8000-{i:012x}" for i in range(170)])
    aam_pool = pa.array([str(700_000 + i) for i in range(30)])
    n_ups = rng.poisson(10.5, n).clip(0, 170)
    n_aam = rng.poisson(1.9, n).clip(0, 30)

    def inner(counts: np.ndarray, pool: pa.Array) -> pa.MapArray:
        total = int(counts.sum())
        first = np.repeat(rng.integers(0, len(pool), n), counts)
        step = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
        keys = pool.take(pa.array((first + step) % len(pool)))  # distinct within a map
        status = pa.array(["realized", "existing", "exited"]).take(
            pa.array(rng.choice(3, total, p=[0.5, 0.4, 0.1]))
        )
        lqt = rng.integers(1_700_000_000_000_000, 1_760_000_000_000_000, total)
        vu = pa.array(lqt + 30 * 86_400_000_000, TS, mask=rng.random(total) >= 0.2)
        mem = pa.StructArray.from_arrays(
            [
                pa.array(["1", "2", "3"]).take(pa.array(rng.integers(0, 3, total))),
                pa.array(lqt, TS),
                vu,
                status,
            ],
            names=["version", "lastQualificationTime", "validUntil", "status"],
        )
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
        return pa.MapArray.from_arrays(pa.array(offsets), keys, mem)

    ups, aam = inner(n_ups, ups_pool), inner(n_aam, aam_pool)
    # outer map: [ups, aam] per profile, interleaved
    inner_t = ups.type
    both = pa.concat_arrays([ups, aam])
    order = np.empty(2 * n, dtype=np.int64)
    order[0::2] = np.arange(n)
    order[1::2] = np.arange(n) + n
    values = both.take(pa.array(order))
    ns_keys = pa.array(["ups", "aam"] * n)
    outer_offsets = pa.array(np.arange(0, 2 * n + 1, 2, dtype=np.int32))
    seg = pa.MapArray.from_arrays(outer_offsets, ns_keys, values.cast(inner_t))

    ecid = _strings("ecid-", rng.integers(0, 2**48, n))
    item_t = pa.struct(
        [("id", pa.string()), ("authenticatedState", pa.string()), ("primary", pa.bool_())]
    )
    items = pa.StructArray.from_arrays(
        [ecid, pa.array(["ambiguous"] * n), pa.array(np.ones(n, bool))], fields=list(item_t)
    )
    id_lists = pa.ListArray.from_arrays(pa.array(np.arange(n + 1, dtype=np.int32)), items)
    id_map = pa.MapArray.from_arrays(
        pa.array(np.arange(n + 1, dtype=np.int32)), pa.array(["ECID"] * n), id_lists
    )
    return pa.table({"identityMap": id_map, "segmentMembership": seg})


def build(profiles: int, force_numpy: bool) -> tuple[pa.Table, str]:
    if not force_numpy:
        try:
            from aep_io.emulator.synthetic import SyntheticSpec, generate_table
        except ImportError:
            pass
        else:
            table = generate_table(SyntheticSpec(profiles=profiles))
            return table.select(["identityMap", "segmentMembership"]), "aep_io synthetic"
    return numpy_table(profiles), "numpy"


def best_of(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--profiles", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--numpy", action="store_true", help="build the data with numpy")
    ap.add_argument("--duckdb", action="store_true", help="also time DuckDB on the Arrow table")
    args = ap.parse_args()

    t0 = time.perf_counter()
    table, origin = build(args.profiles, args.numpy)
    print(
        f"data: {origin}, {table.num_rows:,} profiles, {table.nbytes / 2**20:,.0f} MiB, "
        f"built in {time.perf_counter() - t0:.1f} s"
    )
    df = pl.from_arrow(table)
    assert isinstance(df, pl.DataFrame)

    cases: dict[str, Callable[[], Any]] = {
        "arrow": lambda: flatten_membership_arrow(table),
        "arrow ns=ups": lambda: flatten_membership_arrow(table, namespace="ups"),
        "arrow identity=[]": lambda: flatten_membership_arrow(table, identity=[]),
        "polars": lambda: flatten_membership(df),
        "polars ns=ups": lambda: flatten_membership(df, namespace="ups"),
        "polars identity=[]": lambda: flatten_membership(df, identity=[]),
    }
    if args.duckdb:
        import duckdb

        con = duckdb.connect()
        con.register("profiles", table)
        sql = flatten_sql("profiles", con=con)
        cases["duckdb (arrow scan)"] = lambda: con.sql(sql).to_arrow_table()

    for name, fn in cases.items():
        seconds, out = best_of(fn, args.repeat)
        rows = out.num_rows if isinstance(out, pa.Table) else out.height
        rate = rows / seconds / 1e6
        print(f"{name:22s} {rows:>12,} rows  {seconds:7.3f} s  {rate:7.1f} M rows/s")


if __name__ == "__main__":
    main()

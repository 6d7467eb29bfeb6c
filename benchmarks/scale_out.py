"""Scale-out run: ``python -m benchmarks.scale_out [--scale S] [--repeats N] [--workers 1,2]``.

Reads the benchmark export (``benchmarks/data.py``, served by the emulator in its own process,
``benchmarks/servers.py``) with Dask on a local cluster of 1 and 2 worker processes
(127.0.0.1, no dashboard) and with the single-process aep_io reader, and prints rows/s and
the ratio to the single-process reader, for two workloads:

- ``read``: every column of every profile, materialised (Arrow table in one process; pandas
  partitions, ``pd.ArrowDtype``, on the workers, counted there);
- ``flatten``: ``segmentMembership`` flattened to one row per (profile, namespace, segment).

Timings are medians of ``--repeats`` runs and include planning (the listing) and the reads;
cluster start-up and the workers' first imports are measured separately. The
emulator shares the machine's cores with the workers: on a machine this size the numbers show
the overhead of Dask more than its gain (see the docs on when Dask pays off).
"""

from __future__ import annotations

import argparse
import importlib
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from benchmarks.data import dataset
from benchmarks.servers import EmulatorProcess

console = Console(width=150)


def _counters(env: dict[str, str]) -> dict[str, Any]:
    from aep_io import AEPClient, Settings

    with AEPClient(Settings.from_env(env)) as client:
        return client.get_json(f"{env['AEP_PLATFORM_URL']}/_emulator/counters")


def _moved(env: dict[str, str], fn: Callable[[], int]) -> tuple[float, int, int]:
    """Seconds, rows and file bytes moved by one call of ``fn``."""
    before = _counters(env)["bytes_by_kind"].get("file", 0)
    started = time.perf_counter()
    rows = fn()
    seconds = time.perf_counter() - started
    return seconds, rows, _counters(env)["bytes_by_kind"].get("file", 0) - before


def _single_process(batch_id: str, client: Any, workload: str) -> int:
    from aep_io import read_arrow
    from aep_io.membership import flatten_membership_arrow
    from aep_io.reader import ReadOptions, iter_record_batches
    from aep_io.sources import Source

    if workload == "read":
        return read_arrow(batch_id, client=client).num_rows
    source = Source.of(batch_id, client=client)
    options = ReadOptions(columns=["identityMap", "segmentMembership"])
    return sum(flatten_membership_arrow(b).num_rows for b in iter_record_batches(source, options))


def _dask(batch_id: str, client: Any, dask_client: Any, workload: str) -> int:
    from aep_io.dask_io import read_batches

    ddf = read_batches(batch_id, client=client, flatten=workload == "flatten")
    return int(dask_client.compute(ddf.map_partitions(len).sum()).result())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=0.1, help="x 1M profiles (default 0.1)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each (median)")
    parser.add_argument("--workers", default="1,2", help="comma-separated cluster sizes")
    parser.add_argument("--threads-per-worker", type=int, default=1)
    parser.add_argument("--workloads", default="read,flatten")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    args = parser.parse_args(argv)

    from distributed import Client

    from aep_io import AEPClient, Settings
    from aep_io.dask_io import local_cluster

    meta = dataset(args.scale)
    console.print(f"data: {meta['profiles']:,} profiles, {meta['bytes'] / 1e6:.1f} MB in "
                  f"{len(meta['parts'])} parts (batch {meta['batch_id']})")
    workloads = [w for w in args.workloads.split(",") if w]
    sizes = [int(n) for n in args.workers.split(",") if n]
    emulator = EmulatorProcess(meta["emulator_dir"])
    env = emulator.env()
    results: list[dict[str, Any]] = []
    try:
        with AEPClient(Settings.from_env(env)) as client:
            batch = meta["batch_id"]
            for workload in workloads:
                _single_process(batch, client, workload)  # warm-up (imports, connections)
                runs = [_moved(env, lambda w=workload: _single_process(batch, client, w))
                        for _ in range(args.repeats)]
                results.append(_summary(workload, "single process", runs, 0.0))
            for n in sizes:
                started = time.perf_counter()
                with local_cluster(n, threads_per_worker=args.threads_per_worker) as cluster, \
                        Client(cluster) as dask_client:
                    dask_client.run(importlib.import_module, "aep_io.dask_io")  # warm-up
                    startup = time.perf_counter() - started
                    for workload in workloads:
                        runs = [_moved(env, lambda w=workload: _dask(batch, client, dask_client,
                                                                      w))
                                for _ in range(args.repeats)]
                        label = f"dask, {n} worker{'s' if n > 1 else ''}"
                        results.append(_summary(workload, label, runs, startup))
    finally:
        emulator.stop()
    _print(results, meta, args)
    if args.json:
        Path(args.json).write_text(json.dumps({"meta": meta, "args": vars(args),
                                               "results": results}, indent=2))
        console.print(f"wrote {args.json}")
    return 0


def _summary(workload: str, engine: str, runs: list[tuple[float, int, int]],
             startup: float) -> dict[str, Any]:
    seconds = statistics.median(r[0] for r in runs)
    rows = runs[0][1]
    if any(r[1] != rows for r in runs):
        raise RuntimeError(f"{workload} / {engine}: row counts differ between runs: {runs}")
    return {"workload": workload, "engine": engine, "seconds": seconds,
            "min": min(r[0] for r in runs), "max": max(r[0] for r in runs), "rows": rows,
            "rows_per_s": rows / seconds, "mb_moved": statistics.median(r[2] for r in runs) / 1e6,
            "startup_s": startup}


def _print(results: list[dict[str, Any]], meta: dict[str, Any], args: Any) -> None:
    table = Table(title=f"scale-out, {meta['profiles']:,} profiles "
                        f"({args.threads_per_worker} thread(s) per worker, "
                        f"median of {args.repeats})")
    for col in ("workload", "engine", "s (median, min-max)", "rows", "rows/s",
                "vs single process", "MB moved", "cluster start s"):
        table.add_column(col, justify="left" if col in ("workload", "engine") else "right")
    for r in results:
        base = next(b for b in results
                    if b["workload"] == r["workload"] and b["engine"] == "single process")
        table.add_row(
            r["workload"], r["engine"], f"{r['seconds']:.2f} ({r['min']:.2f}-{r['max']:.2f})",
            f"{r['rows']:,}", f"{r['rows_per_s']:,.0f}",
            f"{r['rows_per_s'] / base['rows_per_s']:.2f}x", f"{r['mb_moved']:.1f}",
            f"{r['startup_s']:.1f}" if r["startup_s"] else "-",
        )
    console.print(table)


if __name__ == "__main__":
    sys.exit(main())

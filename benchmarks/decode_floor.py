"""The floor under "flatten end to end": decoding the two columns, with no transfer at all.

``python -m benchmarks.decode_floor [--scale S] [--rounds N]``

The parts are read into memory first (no disk, no HTTP). Then, in one warm process, it times
decoding ``identityMap`` and ``segmentMembership`` with pyarrow and with polars' Rust reader,
and the Arrow flatten of the decoded tables, as wall and CPU seconds (medians of ``--rounds``
after one unmeasured round). Whatever reads the export and flattens it pays at least the
cheaper decode's CPU plus the flatten's, so with every core busy and no transfer at all,
``rows / ((decode + flatten CPU) / cores)`` bounds the end-to-end rate on this machine; a fresh
process also pays its imports (measured in fresh interpreters).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.bytecode import compile_aep_io
from benchmarks.data import dataset

COLUMNS = ["identityMap", "segmentMembership"]


def _timed(fn: Callable[[], Any], rounds: int) -> tuple[float, float, Any]:
    result = fn()  # unmeasured: first touch of memory, lazy initialisation
    walls, cpus = [], []
    for _ in range(rounds):
        wall, cpu = time.perf_counter(), time.process_time()
        result = fn()
        cpus.append(time.process_time() - cpu)
        walls.append(time.perf_counter() - wall)
    return statistics.median(walls), statistics.median(cpus), result


def _import_seconds(rounds: int) -> float:
    """Median seconds a fresh interpreter takes to import what the end-to-end flatten uses."""
    code = ("import time; t = time.perf_counter(); import aep_io.reader, aep_io.membership, "
            "aep_io.sources; print(time.perf_counter() - t)")
    runs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True) for _ in range(rounds)]  # fmt: skip
    return statistics.median(float(run.stdout) for run in runs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="x 1M profiles (default 1)")
    parser.add_argument("--rounds", type=int, default=3, help="measured rounds (default 3)")
    parser.add_argument("--json", default="benchmarks/decode_floor_results.json")
    args = parser.parse_args(argv)
    import polars as pl
    import pyarrow as pa
    import pyarrow.parquet as pq

    from aep_io.membership import flatten_membership_arrow

    compile_aep_io()  # as the fresh-process cases do (see benchmarks/bytecode.py)
    meta = dataset(args.scale)
    blobs = [Path(p).read_bytes() for p in meta["parts"]]

    def pyarrow_decode() -> list[pa.Table]:
        return [pq.ParquetFile(pa.BufferReader(b)).read(columns=COLUMNS) for b in blobs]

    def polars_decode() -> list[pl.DataFrame]:
        return [pl.read_parquet(io.BytesIO(b), columns=COLUMNS) for b in blobs]

    pa_wall, pa_cpu, tables = _timed(pyarrow_decode, args.rounds)
    pl_wall, pl_cpu, _ = _timed(polars_decode, args.rounds)
    fl_wall, fl_cpu, rows = _timed(
        lambda: sum(flatten_membership_arrow(t).num_rows for t in tables), args.rounds)
    print(f"{meta['profiles']:,} profiles, {rows:,} flattened rows, {os.cpu_count()} cores, "
          f"data in memory, warm process (medians of {args.rounds})")
    for label, wall, cpu in (("decode, pyarrow", pa_wall, pa_cpu),
                             ("decode, polars", pl_wall, pl_cpu),
                             ("flatten (Arrow, decoded tables)", fl_wall, fl_cpu)):
        print(f"  {label:32} {wall:5.2f} s wall {cpu:5.2f} CPU-s")
    cores = os.cpu_count() or 1
    ideal = (min(pa_cpu, pl_cpu) + fl_cpu) / cores  # every core busy, no transfer at all
    imports = _import_seconds(args.rounds)
    print(f"  imports of a fresh process       {imports:5.2f} s (aep_io's reader and flatten)")
    print(f"  bound, warm process:  {rows / ideal / 1e6:4.1f} M rows/s (decode + flatten CPU "
          f"spread over {cores} cores: {ideal:.2f} s)")
    print(f"  bound, fresh process: {rows / (ideal + imports) / 1e6:4.1f} M rows/s "
          f"({ideal + imports:.2f} s with the imports)")
    figures = {"rows": rows, "cores": cores, "rounds": args.rounds, "imports_s": imports,
               "decode_pyarrow": {"wall_s": pa_wall, "cpu_s": pa_cpu},
               "decode_polars": {"wall_s": pl_wall, "cpu_s": pl_cpu},
               "flatten_arrow": {"wall_s": fl_wall, "cpu_s": fl_cpu},
               "bound_rows_per_s": {"warm": rows / ideal, "fresh": rows / (ideal + imports)}}
    Path(args.json).write_text(json.dumps({"meta": meta, **figures}, indent=2))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Full read in a warm process: aep_io over loopback HTTP against local pyarrow, alternating.

``python -m benchmarks.warm [--scale S] [--rounds N]``

The fresh-process cases (``benchmarks.run``) include imports, the token and the first touch of
fresh memory, which swings widely on this machine. Here one process reads the same export
``--rounds`` times in each of three ways, in rotating order, after one unmeasured read of
each: local ``pq.read_table`` on the parts, ``read_arrow`` from the emulator, ``read_arrow``
from nginx serving the same files (when installed). It prints medians and the median of the
per-round ratios, and writes ``benchmarks/warm_results.json``.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.bytecode import compile_aep_io
from benchmarks.data import dataset
from benchmarks.servers import EmulatorProcess, NginxProcess


def _readers(meta: dict[str, Any], emulator: EmulatorProcess,
             nginx: NginxProcess | None) -> dict[str, Callable[[], int]]:
    import pyarrow.parquet as pq

    from aep_io import AEPClient, AEPFileSystem, Settings, plan_files, read_arrow
    from benchmarks.cases import nginx_client, nginx_files

    client = AEPClient(Settings.from_env(emulator.env()))
    files = plan_files(meta["batch_id"], client=client)
    readers: dict[str, Callable[[], int]] = {
        "local_pyarrow": lambda: pq.read_table(meta["parts"]).num_rows,
        "aep_io_emulator": lambda: read_arrow(files, client=client).num_rows,
    }
    if nginx is not None:
        ctx = {"parts": meta["parts"], "nginx": nginx.url, "batch_id": meta["batch_id"]}
        from_nginx = nginx_files(ctx, client)
        fs = AEPFileSystem(nginx_client(ctx), files=from_nginx)
        readers["aep_io_nginx"] = lambda: read_arrow(from_nginx, filesystem=fs,
                                                     client=fs.client).num_rows  # fmt: skip
    return readers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="x 1M profiles (default 1)")
    parser.add_argument("--rounds", type=int, default=5, help="measured rounds (default 5)")
    parser.add_argument("--json", default="benchmarks/warm_results.json", help="where to write")
    args = parser.parse_args(argv)
    compile_aep_io()
    meta = dataset(args.scale)
    emulator = EmulatorProcess(meta["emulator_dir"])
    try:
        nginx: NginxProcess | None = NginxProcess(str(Path(meta["parts"][0]).parent))
    except FileNotFoundError as exc:
        print(f"skipping nginx: {exc}")
        nginx = None
    try:
        readers = _readers(meta, emulator, nginx)
        names = list(readers)
        for name in names:  # warm-up: imports, pools, first touch of memory
            readers[name]()
        seconds: dict[str, list[float]] = {n: [] for n in names}
        for i in range(args.rounds):
            order = names[i % len(names):] + names[: i % len(names)]
            for name in order:
                gc.collect()
                started = time.perf_counter()
                rows = readers[name]()
                seconds[name].append(time.perf_counter() - started)
                assert rows == meta["profiles"], (name, rows)
    finally:
        emulator.stop()
        if nginx is not None:
            nginx.stop()
    base = seconds["local_pyarrow"]
    report: dict[str, Any] = {"meta": meta, "rounds": args.rounds, "seconds": seconds,
                              "ratio": {}}  # fmt: skip
    for name in names:
        ratio = statistics.median(s / b for s, b in zip(seconds[name], base, strict=True))
        report["ratio"][name] = ratio
        print(f"{name:16} median {statistics.median(seconds[name]):.2f} s "
              f"(min {min(seconds[name]):.2f}, max {max(seconds[name]):.2f})  "
              f"ratio {ratio:.2f}x")  # fmt: skip
    Path(args.json).write_text(json.dumps(report, indent=2))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

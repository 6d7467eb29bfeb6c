"""Narrow reads against ``io_threads`` and link latency: why the default is 8.

``python -m benchmarks.concurrency [--scale S] [--rounds N] [--threads 2,4,8,16]
[--latency 0,0.02]``

A narrow projection (``benchmarks.cases.NARROW``, 264 ranged GETs at 1M profiles) is many
small requests, so it shows what concurrency costs and buys. For each latency an emulator is
started with a ``latency`` fault on every file request (``0``: none, plain loopback); then
the local pyarrow read and the aep_io read at each ``io_threads`` run in fresh processes
(``benchmarks.cases``), in rotating order, ``--rounds`` times. It prints medians and the ratio
of medians to the local read, and writes ``benchmarks/concurrency_results.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

from benchmarks.bytecode import compile_aep_io
from benchmarks.data import dataset
from benchmarks.run import run_case
from benchmarks.servers import EmulatorProcess


def _wall(name: str, ctx: dict[str, Any], rows: int) -> float:
    """Whole-process seconds of one case in a fresh process (which must return ``rows``)."""
    result = run_case(name, ctx)
    if result["rows"] != rows:
        raise RuntimeError(f"{name} returned {result['rows']:,} rows, expected {rows:,}")
    return float(result["wall"])


def _numbers(text: str, kind: type[float] | type[int]) -> list[Any]:
    return [kind(x) for x in text.split(",") if x.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="x 1M profiles (default 1)")
    parser.add_argument("--rounds", type=int, default=3, help="measured rounds (default 3)")
    parser.add_argument("--threads", default="2,4,8,16", help="io_threads values to compare")
    parser.add_argument("--latency", default="0,0.02",
                        help="seconds added to every file request, one emulator each")
    parser.add_argument("--json", default="benchmarks/concurrency_results.json")
    args = parser.parse_args(argv)
    threads, latencies = _numbers(args.threads, int), _numbers(args.latency, float)
    compile_aep_io()
    meta = dataset(args.scale)
    rows = meta["profiles"]
    report: dict[str, Any] = {"meta": meta, "rounds": args.rounds, "latency": {}}
    for latency in latencies:
        fault = ["--fault", f"kind=latency,delay={latency:g},route=file,times=none,rate=1"]
        emulator = EmulatorProcess(meta["emulator_dir"], extra_args=fault if latency else ())
        variants = ["local", *(f"io_threads={n}" for n in threads)]
        seconds: dict[str, list[float]] = {v: [] for v in variants}
        try:
            base_ctx = {"parts": meta["parts"], "batch_id": meta["batch_id"],
                        "env": emulator.env()}  # fmt: skip
            for i in range(args.rounds):
                order = variants[i % len(variants):] + variants[: i % len(variants)]
                for variant in order:
                    if variant == "local":
                        seconds[variant].append(_wall("narrow:local_pyarrow", base_ctx, rows))
                    else:
                        ctx = {**base_ctx, "io_threads": int(variant.split("=")[1])}
                        seconds[variant].append(_wall("narrow:aep_io_emulator", ctx, rows))
        finally:
            emulator.stop()
        local = statistics.median(seconds["local"])
        print(f"latency {latency * 1000:g} ms per file request (local read {local:.2f} s)")
        for variant in variants[1:]:
            median = statistics.median(seconds[variant])
            print(f"  {variant:14} median {median:.2f} s (min {min(seconds[variant]):.2f}, "
                  f"max {max(seconds[variant]):.2f})  {median / local:.2f}x local")
        report["latency"][f"{latency:g}"] = seconds
    Path(args.json).write_text(json.dumps(report, indent=2))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

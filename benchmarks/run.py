"""Run the benchmark suite: ``python -m benchmarks.run [--scale S] [--pairs N] [--only a,b]``.

Every case runs in its own fresh process (whole-process wall time and peak RSS), alternating
with its baseline, ``--pairs`` times; the table shows medians, min-max and the median of the
per-pair ratios against the baseline measured in the same run. Results also go to JSON.

Then the suites that measure one thing each run, in their own processes, unless ``--only``
leaves them out: ``warm`` (the full read in a warm process, ``benchmarks.warm``), ``emulator``
(segment and export jobs, file serving: ``benchmarks.emulator_bench``), ``concurrency`` (narrow
reads against ``io_threads`` and link latency: ``benchmarks.concurrency``), ``decode_floor``
(decode and flatten with no transfer: the bound on the flatten rate) and ``aepp`` (the peer
package's workflow at ``--aepp-scale``: ``benchmarks.aepp_bench``; skipped, saying so, when
aepp is not installed). Each writes ``<suite>_results.json`` beside ``--json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from benchmarks.bytecode import compile_aep_io
from benchmarks.cases import CASES
from benchmarks.data import dataset
from benchmarks.servers import EmulatorProcess, NginxProcess

console = Console(width=150)


def _counters(env: dict[str, str]) -> dict[str, Any]:
    from aep_io import AEPClient, Settings

    with AEPClient(Settings.from_env(env)) as client:
        return client.get_json(f"{env['AEP_PLATFORM_URL']}/_emulator/counters")


def run_case(name: str, ctx: dict[str, Any]) -> dict[str, Any]:
    """One case in a fresh process: its RESULT line, plus wall seconds and the emulator's file
    bytes and requests (raises with the process's output when it fails)."""
    before = _counters(ctx["env"])
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "benchmarks.cases", name, json.dumps(ctx)],
                          capture_output=True, text=True, cwd=Path(__file__).parent.parent)
    wall = time.perf_counter() - started
    after = _counters(ctx["env"])
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"case {name} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    result = json.loads(line[len("RESULT "):])
    result["wall"] = wall
    result["bytes"] = after["bytes_by_kind"].get("file", 0) - before["bytes_by_kind"].get(
        "file", 0)
    result["requests"] = after["requests_by_kind"].get("file", 0) - before[
        "requests_by_kind"].get("file", 0)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=float, default=1.0, help="x 1M profiles (default 1)")
    parser.add_argument("--pairs", type=int, default=3, help="runs of each case and baseline")
    parser.add_argument("--parts", type=int, default=8,
                        help="parquet parts (default 8): more parts keep row groups the same "
                             "size as the data grows, fewer make them larger")
    parser.add_argument("--only", default="",
                        help="comma-separated case groups and suites (warm, emulator, aepp)")
    parser.add_argument("--aepp-scale", type=float, default=0.1,
                        help="data scale of the aepp suite (default 0.1: aepp needs ~35x the "
                             "local read time and ~4x its memory)")
    parser.add_argument("--json", default="benchmarks/results.json", help="where to write")
    args = parser.parse_args(argv)
    known = {name.split(":")[0] for name in CASES} | set(SUITES)
    unknown = set(args.only.split(",")) - known if args.only else set()
    if unknown:
        parser.error(f"--only: unknown {', '.join(sorted(unknown))}; "
                     f"choose from {', '.join(sorted(known))}")  # fmt: skip

    compile_aep_io()  # cases measure aep_io as installed (see benchmarks/bytecode.py)
    if args.only and not set(args.only.split(",")) - set(SUITES):
        return _run_suites(args)  # suites only: no case to run, results.json left as it is
    meta = dataset(args.scale, parts=args.parts)
    console.print(f"data: {meta['profiles']:,} profiles, {meta['bytes'] / 1e6:.1f} MB in "
                  f"{len(meta['parts'])} parts (batch {meta['batch_id']})")
    from aep_io.emulator.synthetic import SyntheticSpec, segment_ids

    emulator = EmulatorProcess(meta["emulator_dir"])
    nginx = None
    try:
        nginx = NginxProcess(str(Path(meta["parts"][0]).parent))
    except FileNotFoundError as exc:
        console.print(f"[yellow]skipping nginx baselines: {exc}[/]")
    groups: dict[str, list[str]] = {}
    for name in CASES:
        group, variant = name.split(":")
        if args.only and group not in args.only.split(","):
            continue
        if variant.endswith("nginx") and nginx is None:
            continue
        groups.setdefault(group, []).append(name)
    report: dict[str, Any] = {"meta": meta, "pairs": args.pairs, "groups": {}}
    try:
        with tempfile.TemporaryDirectory(prefix="aep-bench-") as scratch:
            ctx = {
                "parts": meta["parts"], "batch_id": meta["batch_id"], "env": emulator.env(),
                "nginx": nginx.url if nginx else None, "scratch": scratch,
                "segment": segment_ids(SyntheticSpec(profiles=meta["profiles"]))["ups"][3],
            }
            for group, names in groups.items():
                runs: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
                for i in range(args.pairs):
                    order = names if i % 2 == 0 else list(reversed(names))
                    for name in order:
                        runs[name].append(run_case(name, ctx))
                report["groups"][group] = runs
                _print_group(group, names, runs, meta["bytes"])
    finally:
        emulator.stop()
        if nginx is not None:
            nginx.stop()
    Path(args.json).write_text(json.dumps(report, indent=2))
    console.print(f"wrote {args.json}")
    return _run_suites(args)


# The suites that measure one thing each: module, then its arguments from ours.
SUITES: dict[str, tuple[str, Callable[[argparse.Namespace], list[str]]]] = {
    "warm": ("benchmarks.warm",
             lambda a: ["--scale", f"{a.scale:g}", "--rounds", str(max(3, a.pairs))]),
    "emulator": ("benchmarks.emulator_bench",
                 lambda a: ["--scale", f"{a.scale:g}", "--pairs", str(a.pairs)]),
    "concurrency": ("benchmarks.concurrency",
                    lambda a: ["--scale", f"{a.scale:g}", "--rounds", str(a.pairs)]),
    "decode_floor": ("benchmarks.decode_floor",
                     lambda a: ["--scale", f"{a.scale:g}", "--rounds", str(max(3, a.pairs))]),
    "aepp": ("benchmarks.aepp_bench",
             lambda a: ["--scale", f"{a.aepp_scale:g}", "--pairs", str(a.pairs)]),
}


def _run_suites(args: argparse.Namespace) -> int:
    """Run the selected suites one after the other; 1 if any failed."""
    wanted = set(args.only.split(",")) if args.only else set(SUITES)
    failed = []
    for suite, (module, arguments) in SUITES.items():
        if suite not in wanted:
            continue
        console.rule(f"{suite}: python -m {module}")
        out = Path(args.json).resolve().with_name(f"{suite}_results.json")  # beside ours
        done = subprocess.run([sys.executable, "-m", module, *arguments(args), "--json", str(out)],
                              cwd=Path(__file__).parent.parent)  # fmt: skip
        if done.returncode != 0:
            failed.append(suite)
    if failed:
        console.print(f"[red]failed: {', '.join(failed)}[/]")
        return 1
    return 0


def _print_group(group: str, names: list[str], runs: dict[str, list[dict[str, Any]]],
                 total_bytes: int) -> None:
    base = names[0]
    table = Table(title=f"{group} (baseline: {base.split(':')[1]})")
    for col in ("variant", "wall s (median, min-max)", "in-process s", "ratio (median)",
                "peak RSS MB", "MB moved", "requests", "rows"):
        table.add_column(col, justify="left" if col == "variant" else "right")
    for name in names:
        walls = [r["wall"] for r in runs[name]]
        ratios = [r["wall"] / b["wall"] for r, b in zip(runs[name], runs[base], strict=True)]
        inproc = statistics.median(r["seconds"] for r in runs[name])
        rss = statistics.median(r["peak_rss_mb"] for r in runs[name])
        moved = statistics.median(r["bytes"] for r in runs[name]) / 1e6
        reqs = statistics.median(r["requests"] for r in runs[name])
        table.add_row(
            name.split(":")[1],
            f"{statistics.median(walls):.2f} ({min(walls):.2f}-{max(walls):.2f})",
            f"{inproc:.2f}",
            f"{statistics.median(ratios):.2f}x",
            f"{rss:.0f}",
            f"{moved:.1f}" + (f" ({100 * moved * 1e6 / total_bytes:.0f}%)" if moved else ""),
            f"{reqs:.0f}",
            f"{runs[name][0]['rows']:,}",
        )
    console.print(table)


if __name__ == "__main__":
    sys.exit(main())

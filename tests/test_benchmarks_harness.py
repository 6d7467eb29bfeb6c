"""The benchmark harness still runs: a tiny scale, one pair, real processes and servers.

Figures at this scale mean nothing; what is checked is that every case of the chosen groups
returns the same row count as its baseline, that bytes and requests are counted, and that the
results land beside ``--json`` (never over the committed ones).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(module: str, *args: str, cache: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "AEP_IO_BENCH_CACHE": str(cache)}
    done = subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


@pytest.mark.slow
def test_cases_run_against_their_baselines(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    _run("benchmarks.run", "--scale", "0.005", "--pairs", "1", "--only", "narrow,flatten",
         "--json", str(out), cache=tmp_path / "cache")
    report = json.loads(out.read_text())
    assert report["meta"]["profiles"] == 5_000
    narrow, flatten = report["groups"]["narrow"], report["groups"]["flatten"]
    assert {r["rows"] for runs in narrow.values() for r in runs} == {5_000}
    assert len({r["rows"] for runs in flatten.values() for r in runs}) == 1
    assert set(flatten) >= {"flatten:local_polars", "flatten:local_pyarrow_same_flatten",
                            "flatten:aep_io_emulator"}
    (aep,) = narrow["narrow:aep_io_emulator"]
    (local,) = narrow["narrow:local_pyarrow"]
    assert local["requests"] == 0 and local["bytes"] == 0
    # one footer and one range per needed column chunk of each of the 8 parts
    assert aep["requests"] >= 8 * 2 and 0 < aep["bytes"] < report["meta"]["bytes"]


@pytest.mark.slow
def test_concurrency_suite_compares_thread_counts_under_latency(tmp_path: Path) -> None:
    out = tmp_path / "concurrency_results.json"
    done = _run("benchmarks.concurrency", "--scale", "0.005", "--rounds", "1", "--threads",
                "2,8", "--latency", "0,0.01", "--json", str(out), cache=tmp_path / "cache")
    report = json.loads(out.read_text())
    assert set(report["latency"]) == {"0", "0.01"}
    slow = report["latency"]["0.01"]
    assert set(slow) == {"local", "io_threads=2", "io_threads=8"}
    # 10 ms on each of >= 48 requests, 2 at a time: at least a quarter second over loopback
    assert slow["io_threads=2"][0] > 0.24
    assert "latency 10 ms per file request" in done.stdout


@pytest.mark.slow
def test_decode_floor_reports_a_bound(tmp_path: Path) -> None:
    out = tmp_path / "decode_floor_results.json"
    done = _run("benchmarks.decode_floor", "--scale", "0.005", "--rounds", "1", "--json",
                str(out), cache=tmp_path / "cache")  # fmt: skip
    report = json.loads(out.read_text())
    # the same rows the end-to-end flatten case counts for this data
    assert report["rows"] > report["meta"]["profiles"]
    for step in ("decode_pyarrow", "decode_polars", "flatten_arrow"):
        assert report[step]["cpu_s"] > 0
    bound = report["bound_rows_per_s"]
    assert bound["warm"] > bound["fresh"] > 0
    assert "bound, fresh process" in done.stdout

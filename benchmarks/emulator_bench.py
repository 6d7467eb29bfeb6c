"""Emulator benchmarks: segment evaluation, export writing and file serving, against baselines.

``python -m benchmarks.emulator_bench [--scale S] [--pairs N]``

- segment job over 1M profiles x 10 PQL segments (create -> SUCCEEDED, through HTTP) vs the
  equivalent hand-written DuckDB query counting the same conditions over the same store file;
- export job of every profile (write parts into a batch) vs DuckDB ``COPY ... TO parquet``;
- file serving: downloading every part over loopback HTTP from the emulator vs nginx.

Each measurement runs in a fresh process, alternating with its baseline; medians of pair ratios.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent / ".bench-cache"
console = Console(width=150)

# (PQL, the same condition written by hand in DuckDB SQL)
SEGMENTS = [
    ('homeAddress.countryCode = "US"', "homeAddress.countryCode = 'US'"),
    ('_acme.loyaltyTier in ["gold", "platinum"]', "_acme.loyaltyTier IN ('gold', 'platinum')"),
    ("_acme.lifetimeValue > 500", "_acme.lifetimeValue > 500"),
    ('person.gender = "female" and homeAddress.countryCode = "DE"',
     "person.gender = 'female' AND homeAddress.countryCode = 'DE'"),
    ('person.name.lastName.startsWith("M")', "starts_with(person.name.lastName, 'M')"),
    ('personalEmail.address.endsWith("example.com")',
     "ends_with(personalEmail.address, 'example.com')"),
    ("person.birthDate occurs between date(1980, 1, 1) and date(1989, 12, 31)",
     "person.birthDate BETWEEN DATE '1980-01-01' AND DATE '1989-12-31'"),
    ('homeAddress.city.contains("an", false)', "contains(lower(homeAddress.city), 'an')"),
    ("_acme.customerSince occurs between date(2020, 1, 1) and date(2023, 12, 31)",
     "_acme.customerSince BETWEEN DATE '2020-01-01' AND DATE '2023-12-31'"),
    ('personalEmail.isNull() or personalEmail.status = "incomplete"',
     "personalEmail IS NULL OR personalEmail.status = 'incomplete'"),
]


def _store(scale: float) -> Path:
    """An emulator data dir whose default tenant has 1M x scale profiles (cached)."""
    from aep_io.emulator import Emulator

    home = ROOT / f"emulator-store-{scale:g}"
    marker = home / "ready"
    if not marker.exists():
        emu = Emulator(home)
        emu.profiles.load_synthetic(emu.default_tenant, profiles=int(1_000_000 * scale))
        emu.close()
        marker.write_text("ok")
    emu = Emulator(home)  # facts derived once per store (cached beside it), not per job
    emu.profiles.loaded_segment_ids(emu.default_tenant)
    emu.profiles.namespace_sets(emu.default_tenant)
    emu.close()
    return home


def case(name: str, scale: float) -> dict[str, Any]:
    """Run one measurement in this process."""
    from aep_io.emulator import Emulator

    home = _store(scale)
    emu = Emulator(home, job_step_delay=0.0)
    tenant = emu.default_tenant
    store_file = emu.profiles.profiles_path(tenant)
    if name == "segment_job":
        from aep_io import (
            AEPClient,
            Settings,
            create_segment,
            create_segment_job,
            wait_for_segment_job,
        )
        from aep_io.emulator import EmulatorServer
        from aep_io.jobs import PollPolicy
        from aep_io.segmentation import delete_segment

        with EmulatorServer(emu) as server:
            client = AEPClient(Settings.from_env(server.client_env()))
            stamp = time.time_ns()
            ids = [create_segment(client, f"bench {stamp} {i}", pql).id
                   for i, (pql, _) in enumerate(SEGMENTS)]
            started = time.perf_counter()
            job = create_segment_job(client, ids)
            wait_for_segment_job(client, job.id, poll=PollPolicy(0.02, 1.2, 0.1))
            seconds = time.perf_counter() - started
            for segment_id in ids:  # their saved membership goes with them
                delete_segment(client, segment_id)
            return {"seconds": seconds}
    if name == "segment_eval":
        from datetime import UTC, datetime

        from aep_io.emulator.segment_jobs import evaluate

        definitions = [{"id": f"bench-eval-{i}", "version": 1,
                        "expression": {"type": "PQL", "format": "pql/text", "value": pql}}
                       for i, (pql, _) in enumerate(SEGMENTS)]
        started = time.perf_counter()
        result = evaluate(emu, tenant, definitions, now=datetime.now(UTC),
                          commit=lambda: False)  # the store stays as it is
        return {"seconds": time.perf_counter() - started, "phases": result.seconds}
    if name == "segment_sql":
        import duckdb

        filters = ", ".join(f"count(*) FILTER (WHERE {sql})" for _, sql in SEGMENTS)
        started = time.perf_counter()
        duckdb.connect().sql(f"SELECT {filters} FROM read_parquet('{store_file}')").fetchall()
        return {"seconds": time.perf_counter() - started}
    if name == "export_job":
        from aep_io import (
            AEPClient,
            Settings,
            create_dataset,
            create_export_job,
            wait_for_export_job,
        )
        from aep_io.emulator import EmulatorServer
        from aep_io.jobs import PollPolicy

        with EmulatorServer(emu) as server:
            client = AEPClient(Settings.from_env(server.client_env()))
            dataset = create_dataset(client, "bench export")
            started = time.perf_counter()
            job = create_export_job(client, dataset)
            wait_for_export_job(client, job.id, poll=PollPolicy(0.02, 1.2, 0.1))
            return {"seconds": time.perf_counter() - started}
    if name == "export_copy":
        import duckdb

        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            duckdb.connect().execute(
                f"COPY (SELECT * EXCLUDE (_emulatorProfileId, _repo) FROM "
                f"read_parquet('{store_file}')) TO '{tmp}/out.parquet' "
                "(FORMAT parquet, COMPRESSION snappy)")
            return {"seconds": time.perf_counter() - started}
    raise KeyError(name)


def serve_throughput(scale: float, pairs: int) -> list[tuple[str, float]]:
    """MB/s downloading every part from the emulator and from nginx (one process, sockets)."""
    import httpx

    from benchmarks.data import dataset
    from benchmarks.servers import EmulatorProcess, NginxProcess

    meta = dataset(scale)
    emu = EmulatorProcess(meta["emulator_dir"])
    try:
        nginx = NginxProcess(str(Path(meta["parts"][0]).parent))
    except FileNotFoundError:
        nginx = None
    from aep_io import AEPClient, Settings, plan_files

    client = AEPClient(Settings.from_env(emu.env()))
    files = plan_files(meta["batch_id"], client=client)
    token = client.tokens.token().reveal()
    headers = dict(emu.env())
    auth = {"Authorization": f"Bearer {token}", "x-api-key": headers["AEP_CLIENT_ID"],
            "x-gw-ims-org-id": headers["AEP_ORG_ID"], "x-sandbox-name": "prod"}
    results = []

    def pull(urls: list[str], hdrs: dict[str, str]) -> float:
        with httpx.Client(timeout=60) as h:
            started = time.perf_counter()
            total = 0
            for url in urls:
                with h.stream("GET", url, headers=hdrs) as r:
                    for chunk in r.iter_raw(1 << 20):
                        total += len(chunk)
            return total / 1e6 / (time.perf_counter() - started)

    def small(url: str, hdrs: dict[str, str], n: int = 300) -> float:
        """Milliseconds per 64 KiB ranged GET, one after another on one connection (the
        per-request cost that narrow projections pay)."""
        with httpx.Client(timeout=60) as h:
            h.get(url, headers={**hdrs, "Range": "bytes=0-99"})
            started = time.perf_counter()
            for i in range(n):
                r = h.get(url, headers={**hdrs, "Range": f"bytes={i * 4096}-{i * 4096 + 65535}"})
                if r.status_code != 206:
                    raise RuntimeError(f"{url}: ranged GET answered {r.status_code}")
            return (time.perf_counter() - started) / n * 1000

    try:
        names = [Path(p).name for p in meta["parts"]]
        for _ in range(pairs):
            results.append(("emulator", pull([f.url for f in files], auth)))
            results.append(("emulator_ms", small(files[0].url, auth)))
            if nginx is not None:
                results.append(("nginx", pull([f"{nginx.url}/{n}" for n in names], {})))
                results.append(("nginx_ms", small(f"{nginx.url}/{names[0]}", {})))
    finally:
        emu.stop()
        if nginx is not None:
            nginx.stop()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--json", default="benchmarks/emulator_results.json")
    args = parser.parse_args(argv)
    if args.case:
        print("RESULT " + json.dumps(case(args.case, args.scale)), flush=True)
        return 0
    _store(args.scale)
    report: dict[str, Any] = {}
    table = Table(title=f"emulator benchmarks, {int(1_000_000 * args.scale):,} profiles")
    for col in ("measure", "aep_io emulator (median s)", "baseline (median s)", "ratio"):
        table.add_column(col)
    phases: dict[str, list[float]] = {}
    for ours, base in (("segment_eval", "segment_sql"), ("segment_job", "segment_sql"),
                       ("export_job", "export_copy")):
        runs: dict[str, list[float]] = {ours: [], base: []}
        for i in range(args.pairs):
            for name in ((ours, base) if i % 2 == 0 else (base, ours)):
                proc = subprocess.run(
                    [sys.executable, "-m", "benchmarks.emulator_bench", "--case", name,
                     "--scale", str(args.scale)],
                    capture_output=True, text=True, cwd=Path(__file__).parent.parent)
                line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")),
                            None)
                if line is None:
                    raise RuntimeError(f"{name} failed: {proc.stderr[-2000:]}")
                measured = json.loads(line[7:])
                runs[name].append(measured["seconds"])
                for phase, value in measured.get("phases", {}).items():
                    phases.setdefault(f"{name}:{phase}", []).append(value)
        ratio = statistics.median(a / b for a, b in zip(runs[ours], runs[base], strict=True))
        table.add_row(f"{ours} vs {base}", f"{statistics.median(runs[ours]):.2f}",
                      f"{statistics.median(runs[base]):.2f}", f"{ratio:.2f}x")
        report[ours] = runs
    served = serve_throughput(args.scale, args.pairs)
    emu_rate = statistics.median(r for k, r in served if k == "emulator")
    ng = [r for k, r in served if k == "nginx"]
    if ng:
        nginx_rate = statistics.median(ng)
        table.add_row("file serving MB/s: emulator vs nginx", f"{emu_rate:.0f} MB/s",
                      f"{nginx_rate:.0f} MB/s", f"{emu_rate / nginx_rate:.2f}x")
    else:
        table.add_row("file serving MB/s (nginx not installed: skipped)", f"{emu_rate:.0f}", "-",
                      "-")
    emu_ms = statistics.median(r for k, r in served if k == "emulator_ms")
    ng_ms = [r for k, r in served if k == "nginx_ms"]
    if ng_ms:
        table.add_row("64 KiB ranged GET, ms each: emulator vs nginx", f"{emu_ms:.2f} ms",
                      f"{statistics.median(ng_ms):.2f} ms",
                      f"{emu_ms / statistics.median(ng_ms):.2f}x")
    else:
        table.add_row("64 KiB ranged GET, ms each (nginx not installed)", f"{emu_ms:.2f} ms",
                      "-", "-")
    report["serving"] = served
    report["phases"] = phases
    console.print(table)
    if phases:
        console.print("phases (median s): " + ", ".join(
            f"{k} {statistics.median(v):.3f}" for k, v in phases.items()))
    Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Emulator benchmarks: segment evaluation, export writing and file serving, against baselines.

``python -m benchmarks.emulator_bench [--scale S] [--pairs N]``

- segment evaluation of 1M profiles x 10 PQL segments (:data:`SEGMENTS`), twice: in process
  (``segment_eval``: ``segment_jobs.evaluate``, which computes every profile's membership of
  every segment, its status against the previous membership, counts the job's metrics and saves
  each segment's entries beside the store) and as a job through HTTP (``segment_job``: create ->
  poll until SUCCEEDED). Each against two hand-written DuckDB baselines over the same store file:

  * ``segment_sql_members``, the **equivalent** work (:func:`membership_sql`): one query
    computes the 10 conditions per profile into a temp table; then, per segment, the profiles
    that qualify or had an entry get their new entry (status realized / existing / exited, or
    an old non-member entry kept; version, lastQualificationTime, validUntil as the job sets
    them) from a LEFT JOIN with the previous membership (a table of the same entries, empty
    here since the benchmark's segments are new, as they are for the job), written with
    ``COPY ... TO`` one parquet file per segment;
  * ``segment_sql_count``, **count only (a lower bound)**: one ``count(*) FILTER (WHERE ...)``
    per segment; no membership, no status, nothing written.

  Neither baseline counts members per identity namespace (the job's metrics do).
- export job of every profile (write parts into a batch) vs DuckDB ``COPY ... TO parquet``;
- file serving: downloading every part over loopback HTTP from the emulator vs nginx.

Each measurement runs in a fresh process, rotating with its baselines; ratios are medians of
the per-round ratios. Modules are imported before the timer (``segment_jobs`` with duckdb and
pyarrow; duckdb for the baselines), except what the measured code imports itself (the PQL
package and its parser inside ``evaluate``); first connections and queries are timed.
``benchmarks/README.md`` (Emulator) describes each measure.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
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


MEMBER_STATUSES = "('realized', 'existing', 'entering')"  # what makes an entry a member


def membership_sql(
    store_file: Path, out_dir: Path, now: datetime,
    segments: list[tuple[str, str]] = SEGMENTS,
) -> list[str]:
    """The hand-written DuckDB statements doing a segment job's work for ``segments``.

    The first statement creates ``previous``: the segments' entries before this evaluation
    (the job's input, what an earlier evaluation left, keyed by segment and store row); it
    stays empty in the benchmark because its segments are new. Per segment ``j``, every profile
    that qualifies now or had an entry gets its new entry, as ``next_entries`` computes it:

    - qualifies, was a member (status realized/existing/entering): ``existing``, its
      lastQualificationTime kept;
    - qualifies, was not: ``realized`` at ``now``;
    - does not qualify, was a member: ``exited`` at ``now``, validUntil NULL;
    - does not qualify, had a non-member entry (e.g. exited): the entry kept as it was;

    version becomes the definition's (``'1'``) and validUntil ``now + ttlInDays`` (the segments
    have none: NULL) on every changed entry. Each segment's entries go to
    ``out_dir/segment_<j>.parquet`` keyed by the store row number (``file_row_number``, the
    key the job's saved entries are aligned on).
    """
    stamp = f"TIMESTAMPTZ '{now.isoformat()}'"
    conditions = ", ".join(f"{sql} AS q{j}" for j, (_, sql) in enumerate(segments))
    statements = [
        'CREATE TEMP TABLE previous (segment INTEGER, "row" BIGINT, version VARCHAR, '
        "lastQualificationTime TIMESTAMPTZ, validUntil TIMESTAMPTZ, status VARCHAR)",
        f'CREATE TEMP TABLE qualifies AS SELECT file_row_number AS "row", {conditions} '
        f"FROM read_parquet('{store_file}', file_row_number = true)",
    ]
    for j in range(len(segments)):
        statements.append(f"""COPY (
  WITH t AS (
    SELECT q."row", coalesce(q.q{j}, false) AS now_in,
           coalesce(lower(p.status) IN {MEMBER_STATUSES}, false) AS was_in,
           p.version, p.lastQualificationTime, p.validUntil, p.status
    FROM qualifies q LEFT JOIN previous p ON p.segment = {j} AND p."row" = q."row"
    WHERE q.q{j} OR p."row" IS NOT NULL)
  SELECT "row",
    CASE WHEN now_in OR was_in THEN '1' ELSE version END AS version,
    CASE WHEN now_in = was_in THEN lastQualificationTime ELSE {stamp} END
      AS lastQualificationTime,
    CASE WHEN now_in OR was_in THEN NULL ELSE validUntil END AS validUntil,
    CASE WHEN now_in AND was_in THEN 'existing' WHEN now_in THEN 'realized'
         WHEN was_in THEN 'exited' ELSE status END AS status
  FROM t) TO '{out_dir / f"segment_{j}.parquet"}' (FORMAT parquet)""")
    return statements


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
            job = wait_for_segment_job(client, job.id, poll=PollPolicy(0.02, 1.2, 0.1))
            seconds = time.perf_counter() - started
            for segment_id in ids:  # their saved membership goes with them
                delete_segment(client, segment_id)
            # where the time went, by the job's own metrics (ms): NEW -> SUCCEEDED inside the
            # emulator, of which PROCESSING; the rest is the client's polling interval
            inside = job.metrics["totalTime"]["totalTimeInMs"] / 1000
            processing = job.metrics["profileSegmentationTime"]["totalTimeInMs"] / 1000
            return {"seconds": seconds, "phases": {
                "processing": processing, "to_processing": inside - processing,
                "poll_lag": seconds - inside}}
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
    if name == "segment_sql_count":
        import duckdb

        filters = ", ".join(f"count(*) FILTER (WHERE {sql})" for _, sql in SEGMENTS)
        started = time.perf_counter()
        duckdb.connect().sql(f"SELECT {filters} FROM read_parquet('{store_file}')").fetchall()
        return {"seconds": time.perf_counter() - started}
    if name == "segment_sql_members":
        from datetime import UTC, datetime

        import duckdb

        with tempfile.TemporaryDirectory() as tmp:
            started = time.perf_counter()
            con = duckdb.connect()
            for statement in membership_sql(store_file, Path(tmp), datetime.now(UTC)):
                con.execute(statement)
            con.close()
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


def _run_case(name: str, scale: float) -> dict[str, Any]:
    """One measurement in a fresh process."""
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.emulator_bench", "--case", name, "--scale", str(scale)],
        capture_output=True, text=True, cwd=Path(__file__).parent.parent)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"{name} failed: {proc.stderr[-2000:]}")
    return dict(json.loads(line[7:]))


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
    from benchmarks.bytecode import compile_aep_io

    compile_aep_io()  # measured processes import aep_io as installed (benchmarks/bytecode.py)
    _store(args.scale)
    report: dict[str, Any] = {}
    table = Table(title=f"emulator benchmarks, {int(1_000_000 * args.scale):,} profiles")
    for col in ("measure", "aep_io emulator (median s)", "baseline (median s)", "ratio"):
        table.add_column(col)
    phases: dict[str, list[float]] = {}
    comparisons = (
        ("segment_eval", ("segment_sql_members", "segment_sql_count")),
        ("segment_job", ("segment_sql_members", "segment_sql_count")),
        ("export_job", ("export_copy",)),
    )
    labels = {
        "segment_sql_members": "hand-written SQL, same result (statuses, written)",
        "segment_sql_count": "hand-written SQL, count only (lower bound)",
        "export_copy": "DuckDB COPY TO parquet",
    }
    for ours, bases in comparisons:
        names = (ours, *bases)
        runs: dict[str, list[float]] = {name: [] for name in names}
        for i in range(args.pairs):
            shift = i % len(names)  # rotate the order between rounds
            for name in names[shift:] + names[:shift]:
                measured = _run_case(name, args.scale)
                runs[name].append(measured["seconds"])
                for phase, value in measured.get("phases", {}).items():
                    phases.setdefault(f"{name}:{phase}", []).append(value)
        for base in bases:
            ratio = statistics.median(a / b for a, b in zip(runs[ours], runs[base], strict=True))
            table.add_row(f"{ours} vs {labels[base]}", f"{statistics.median(runs[ours]):.2f}",
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

"""``aep-io demo``: the seed tutorial's whole journey against a local emulator, on loopback only.

1. start the emulator with synthetic XDM profiles in its profile store;
2. create three PQL segment definitions and evaluate them with a segment job;
3. create an export dataset (profile union schema) and export the audience twice: one batch
   for all segments, then one batch per segment (``segmentPerBatch``);
4. read the export into polars (lazy, flattened ``segmentMembership``) and DuckDB (SQL);
5. print audience sizes per segment and status, a sample of flattened rows, the bytes read
   and the time per step.

With ``--s3`` the emulator also delivers the exports to a dataset-export destination: an S3
bucket on a loopback S3 server (moto's server mode, a development dependency), and the demo
reads the same audience sizes back from ``s3://`` to compare rows and bytes.

Everything goes over HTTP exactly as it would at AEP: only the URLs differ.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.table import Table

from aep_io.cli.common import console, human_bytes

T = TypeVar("T")

SEGMENTS = [
    ("US residents", 'homeAddress.countryCode = "US"'),
    ("Gold and platinum members", '_acme.loyaltyTier in ["gold", "platinum"]'),
    ("Born 1980-1995, value over 200",
     "person.birthDate occurs between date(1980, 1, 1) and date(1995, 12, 31) "
     "and _acme.lifetimeValue > 200"),
]


class _Steps:
    def __init__(self) -> None:
        self.rows: list[tuple[str, float, str]] = []

    def run(self, name: str, fn: Callable[[], T], note: Callable[[T], str] = lambda _: "") -> T:
        with console.status(name):
            started = time.perf_counter()
            result = fn()
            elapsed = time.perf_counter() - started
        self.rows.append((name, elapsed, note(result)))
        console.print(f"[green]✓[/] {name} [dim]({elapsed:.2f}s)[/] {note(result)}")
        return result


def demo(
    profiles: int = typer.Option(100_000, help="Synthetic profiles in the profile store."),
    data: Path | None = typer.Option(
        None, help="Emulator data directory (a temporary one by default)."
    ),
    s3: bool = typer.Option(False, "--s3", help="Also deliver the exports to S3 (moto on "
                            "loopback) and read them back from s3://."),
) -> None:
    """Run the end-to-end demo against a local emulator (no network beyond loopback)."""
    if profiles < 1:
        raise typer.BadParameter("--profiles must be at least 1")
    with tempfile.TemporaryDirectory(prefix="aep-io-demo-") as tmp, _s3_server(s3) as bucket:
        _run(profiles, data or Path(tmp), bucket)


@contextlib.contextmanager
def _s3_server(wanted: bool) -> Any:
    if not wanted:
        yield None
        return
    from aep_io.emulator.s3 import _require_moto, moto_s3

    try:
        _require_moto()
        import s3fs  # noqa: F401 - reading s3:// needs it
    except ImportError as exc:
        raise typer.BadParameter(f"{exc} (s3fs: pip install 'aep_io[s3]')",
                                 param_hint="--s3") from None
    with moto_s3("aep-io-demo") as endpoint:
        console.print(f"S3 API (moto) serving bucket {endpoint.bucket} on "
                      f"{endpoint.endpoint_url} (loopback only)")
        yield endpoint


def _run(profiles: int, data: Path, s3: Any = None) -> None:
    import polars as pl

    from aep_io import (
        AEPClient,
        Settings,
        audience_sizes,
        create_dataset,
        create_export_job,
        create_segment,
        create_segment_job,
        flatten_membership,
        flatten_sql,
        scan_batches,
        scan_export_job,
        to_duckdb,
        wait_for_export_job,
        wait_for_segment_job,
    )
    from aep_io.emulator import Emulator, EmulatorServer

    steps = _Steps()
    emulator = Emulator(data, s3_destination=s3.destination("aep-demo") if s3 else None)
    steps.run(
        f"load {profiles:,} synthetic profiles into the emulator's profile store",
        lambda: emulator.profiles.load_synthetic(emulator.default_tenant, profiles=profiles),
        lambda _: "",
    )
    with EmulatorServer(emulator) as server:
        console.print(f"emulator serving AEP's APIs on {server.url} (loopback only)")
        client = AEPClient(Settings.from_env(server.client_env()))

        segments = steps.run(
            "create 3 PQL segment definitions",
            lambda: [create_segment(client, name, pql) for name, pql in SEGMENTS],
            lambda segs: ", ".join(s.id[:8] for s in segs),
        )
        ids = [s.id for s in segments]
        names = {s.id: s.name for s in segments}

        def evaluate() -> Any:
            job = create_segment_job(client, ids)
            return wait_for_segment_job(client, job.id, timeout=600)

        seg_job = steps.run("segment job: evaluate them (NEW → PROCESSING → SUCCEEDED)",
                            evaluate,
                            lambda j: f"{j.metrics.get('totalProfiles', '?'):,} profiles"
                            if isinstance(j.metrics.get("totalProfiles"), int) else j.status)
        dataset_id = steps.run("create the export dataset (profile union schema)",
                               lambda: create_dataset(client, "aep_io demo audience"),
                               lambda d: d)

        def export(per_batch: bool) -> Any:
            job = create_export_job(client, dataset_id, segments=ids,
                                    segment_per_batch=per_batch)
            return wait_for_export_job(client, job.id, timeout=600)

        job_all = steps.run("export job: the audience into one batch", lambda: export(False),
                            lambda j: f"job {j.id}, batch {j.batch_ids[0]}")
        job_each = steps.run("export job: one batch per segment (segmentPerBatch)",
                             lambda: export(True),
                             lambda j: f"job {j.id}, {len(j.batches)} batches")

        def measured(fn: Callable[[], T]) -> Callable[[], tuple[T, int, int]]:
            def run() -> tuple[T, int, int]:
                emulator.counters.reset()
                value = fn()
                return value, emulator.counters.bytes_sent("file"), \
                    emulator.counters.requests("file")
            return run

        def polars_sizes(lf: pl.LazyFrame | None = None) -> pl.DataFrame:
            lf = (lf if lf is not None else scan_export_job(job_all, client=client)).select(
                "identityMap", "segmentMembership")
            return (audience_sizes(lf, namespace="ups").filter(pl.col("segment_id").is_in(ids))
                    .collect().sort("segment_id", "status"))

        sizes, sizes_bytes, sizes_requests = steps.run(
            "polars: scan the export, flatten segmentMembership, audience sizes",
            measured(polars_sizes),
            lambda r: f"{human_bytes(r[1])} read in {r[2]} range requests",
        )
        if s3 is not None:
            url = emulator.destinations.for_job(job_all.id)[0].glob
            s3.traffic.reset()
            same = polars_sizes(scan_batches(url, storage_options=s3.storage_options()))
            console.print(f"[green]✓[/] {url}: audience sizes "
                          f"{'identical' if same.equals(sizes) else '[red]DIFFERENT[/]'} to "
                          f"aep://; {human_bytes(s3.traffic.object_bytes())} in "
                          f"{len(s3.traffic.object_gets())} ranged GETs (aep://: "
                          f"{human_bytes(sizes_bytes)} in {sizes_requests})")

        def sample() -> pl.DataFrame:
            lf = scan_export_job(job_each, client=client).select("identityMap",
                                                                 "segmentMembership",
                                                                 "segment_id")
            return flatten_membership(lf.head(50), namespace="ups").filter(
                pl.col("segment_id").is_in(ids)).head(5).collect()

        rows, _, _ = steps.run("polars: head of the per-segment export, flattened",
                               measured(sample),
                               lambda r: f"{human_bytes(r[1])} read in {r[2]} requests")

        def duck() -> list[tuple[Any, ...]]:
            con = to_duckdb(job_each.batch_ids, client=client, name="audience")
            flat = flatten_sql("audience", namespace="ups", con=con)
            id_list = ", ".join(f"'{i}'" for i in ids)
            return con.sql(
                f"SELECT segment_id, count(*) FROM ({flat}) WHERE segment_id IN ({id_list}) "
                "AND status IN ('realized', 'existing') GROUP BY 1 ORDER BY 1"
            ).fetchall()

        duck_rows, _, _ = steps.run("DuckDB: SQL over the per-segment batches, flattened",
                                    measured(duck),
                                    lambda r: f"{human_bytes(r[1])} read in {r[2]} requests")

    _report(sizes, rows, duck_rows, names, seg_job, sizes_bytes, sizes_requests, steps)


def _report(sizes: Any, rows: Any, duck_rows: list[tuple[Any, ...]], names: dict[str, str],
            seg_job: Any, moved: int, requests: int, steps: _Steps) -> None:
    table = Table(title="audience sizes per segment and status (polars over the export)")
    for col in ("segment", "name", "status", "profiles"):
        table.add_column(col, justify="right" if col == "profiles" else "left")
    for row in sizes.iter_rows(named=True):
        table.add_row(row["segment_id"][:8], names.get(row["segment_id"], ""), row["status"],
                      f"{row['profiles']:,}")
    console.print(table)
    evaluated = seg_job.metrics.get("segmentedProfileCounter") or {}
    check = Table(title="members now: segment job metrics vs DuckDB over the export")
    for col in ("segment", "segment job", "DuckDB"):
        check.add_column(col, justify="left" if col == "segment" else "right")
    for segment_id, count in duck_rows:
        check.add_row(names.get(segment_id, segment_id), f"{evaluated.get(segment_id, '?'):,}"
                      if isinstance(evaluated.get(segment_id), int) else "?", f"{count:,}")
    console.print(check)
    sample = Table(title="a sample of flattened segmentMembership rows")
    for col in ("identity", "segment", "status", "lastQualificationTime"):
        sample.add_column(col, overflow="fold")
    for row in rows.iter_rows(named=True):
        when = row["last_qualification_time"]
        sample.add_row(
            f"{row['identity_namespace']}:{row['identity_id']}",
            names.get(row["segment_id"], row["segment_id"]),
            row["status"],
            when.strftime("%Y-%m-%d %H:%M:%SZ") if when is not None else "",
        )
    console.print(sample)
    summary = Table(title="aep_io demo: time per step")
    summary.add_column("step")
    summary.add_column("seconds", justify="right")
    summary.add_column("detail")
    for name, seconds, note in steps.rows:
        summary.add_row(name, f"{seconds:.2f}", note)
    console.print(summary)
    console.print(f"the polars read moved {human_bytes(moved)} in {requests} range requests: "
                  "only the two columns it needed.")

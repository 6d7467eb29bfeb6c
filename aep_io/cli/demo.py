"""``aep-io demo``: the end-to-end journey against a local emulator, on loopback only.

Today it covers what exists end to end: the emulator starts with a synthetic profile export,
aep_io authenticates, plans the batch's files, and reads them through ``aep://`` with pyarrow and
DuckDB, printing time per step, bytes moved and request counts.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.table import Table

from aep_io.cli.common import console, human_bytes

T = TypeVar("T")


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
    profiles: int = typer.Option(100_000, help="Synthetic profiles in the export."),
    parts: int = typer.Option(8, help="Parquet part files in the export batch."),
    data: Path | None = typer.Option(
        None, help="Emulator data directory (a temporary one by default)."
    ),
) -> None:
    """Run the end-to-end demo against a local emulator (no network beyond loopback)."""
    import duckdb
    import pyarrow.dataset as pads

    from aep_io import AEPClient, AEPFileSystem, Settings, plan
    from aep_io.emulator import Emulator, EmulatorServer

    if profiles < 1 or parts < 1:
        raise typer.BadParameter("--profiles and --parts must be at least 1")
    steps = _Steps()
    with tempfile.TemporaryDirectory(prefix="aep-io-demo-") as tmp:
        emulator = Emulator(data or tmp)
        export = steps.run(
            f"generate {profiles:,} synthetic profiles as an export batch",
            lambda: emulator.add_synthetic_export(profiles, parts=parts),
            lambda e: f"{len(e.files)} files, {human_bytes(e.size)}",
        )
        with EmulatorServer(emulator) as server:
            console.print(f"emulator serving on {server.url}")
            settings = Settings.from_env(server.client_env())
            with AEPClient(settings) as client:
                result = steps.run(
                    "plan: batch -> dataset files -> parquet parts",
                    lambda: plan([export.batch_id], client=client),
                    lambda p: f"{len(p.files)} files, {human_bytes(p.total_bytes)}, "
                    f"status {p.batches[0].status}",
                )
                fs = AEPFileSystem(client, files=result.files)
                paths = [f.path for f in result.files]
                dataset = pads.dataset(paths, filesystem=fs, format="parquet")

                def measured(fn: Callable[[], Any]) -> Callable[[], tuple[Any, int, int]]:
                    def run() -> tuple[Any, int, int]:
                        emulator.counters.reset()
                        value = fn()
                        return value, emulator.counters.bytes_sent("file"), \
                            emulator.counters.requests("file")
                    return run

                full, full_bytes, _ = steps.run(
                    "read everything into Arrow (pyarrow over aep://)",
                    measured(lambda: dataset.to_table()),
                    lambda r: f"{r[0].num_rows:,} rows, {human_bytes(r[1])} moved, {r[2]} requests",
                )
                narrow, narrow_bytes, _ = steps.run(
                    "read one column (homeAddress): Range reads move only its bytes",
                    measured(lambda: dataset.to_table(columns=["homeAddress"])),
                    lambda r: f"{human_bytes(r[1])} moved "
                    f"({100 * r[1] / max(1, export.size):.1f}% of the files), {r[2]} requests",
                )
                con = duckdb.connect()
                con.register_filesystem(fs)
                glob = f"aep://{export.batch_id}/*/*.parquet"
                top, _, _ = steps.run(
                    "DuckDB SQL over the aep:// glob: profiles per country",
                    measured(lambda: con.sql(
                        f"SELECT homeAddress.countryCode AS country, count(*) AS profiles "
                        f"FROM read_parquet('{glob}') GROUP BY 1 ORDER BY 2 DESC LIMIT 5"
                    ).fetchall()),
                    lambda r: f"{human_bytes(r[1])} moved, {r[2]} requests",
                )
                con.close()

    table = Table(title="profiles per country (DuckDB over aep://)")
    table.add_column("country")
    table.add_column("profiles", justify="right")
    for country, count in top:
        table.add_row(str(country), f"{count:,}")
    console.print(table)
    summary = Table(title="aep_io demo summary")
    summary.add_column("step")
    summary.add_column("seconds", justify="right")
    summary.add_column("detail")
    for name, seconds, note in steps.rows:
        summary.add_row(name, f"{seconds:.2f}", note)
    console.print(summary)
    console.print(
        f"read {full.num_rows:,} profiles; the one-column read moved "
        f"{human_bytes(narrow_bytes)} instead of {human_bytes(full_bytes)}."
    )
    del narrow

"""``aep-io download BATCH... --to DIR``: export batches to local files, with a progress bar."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from aep_io.cli.common import console, err_console, human_bytes, one_line_errors
from aep_io.client import AEPClient
from aep_io.downloads import DownloadReport, present_bytes
from aep_io.downloads import download as download_files
from aep_io.errors import AEPError
from aep_io.planning import plan_files


@one_line_errors
def download(
    batch_ids: list[str] = typer.Argument(..., help="Export batch ids."),
    to: Path = typer.Option(
        ...,
        "--to",
        file_okay=False,
        help="Destination directory: files go to DIR/<batch>/<file id>/<name>.",
    ),
    workers: int = typer.Option(4, "--workers", "-w", min=1, help="Files downloaded at once."),
) -> None:
    """Download export batches (resumable: run it again to finish an interrupted download)."""
    try:
        report = _run(batch_ids, to, workers)
    except AEPError:
        raise
    except OSError as exc:  # the destination: not writable, full disk...
        raise AEPError(f"cannot write the download into {to}: {exc}") from exc
    console.print(escape(str(report)))


def _run(batch_ids: list[str], to: Path, workers: int) -> DownloadReport:
    with AEPClient() as client:
        files = plan_files(batch_ids, client=client)
        total = sum(f.size for f in files)
        present = present_bytes(files, to)
        err_console.print(
            f"{len(files)} files, {human_bytes(total)} "
            f"({human_bytes(total - present)} to fetch) into {escape(str(to))}"
        )
        columns = (
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            DownloadColumn(binary_units=True),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=err_console) as bar:
            task = bar.add_task("downloading", total=total, completed=present)
            report = download_files(
                files,
                to,
                client=client,
                max_workers=workers,
                progress=lambda n: bar.advance(task, n),
            )
    return report

"""``aep-io files BATCH...``: the parquet parts of export batches, with sizes."""

from __future__ import annotations

import typer
from rich.table import Table

from aep_io.cli.common import console, human_bytes, one_line_errors
from aep_io.planning import plan


@one_line_errors
def files(
    batch_ids: list[str] = typer.Argument(..., help="Export batch ids."),
    json_output: bool = typer.Option(False, "--json", help="Print JSON lines instead of a table."),
) -> None:
    """List the files of export batches (settings from AEP_* environment variables)."""
    result = plan(batch_ids)
    if json_output:
        import json

        for f in result.files:
            console.print_json(json.dumps({"uri": f.uri, "size": f.size, "batch_id": f.batch_id,
                                           "file_id": f.file_id, "name": f.name}))
        return
    table = Table(title=f"{len(result.files)} files, {human_bytes(result.total_bytes)}")
    for col in ("batch", "dataSetFileId", "name"):
        table.add_column(col, overflow="fold")
    table.add_column("size", justify="right", no_wrap=True)
    for f in result.files:
        table.add_row(f.batch_id, f.file_id, f.name, human_bytes(f.size))
    console.print(table)

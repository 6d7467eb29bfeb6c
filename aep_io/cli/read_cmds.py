"""``aep-io head``, ``aep-io query`` and ``aep-io load``: look at and load export batches."""

from __future__ import annotations

import re
import time
from pathlib import Path

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from aep_io.cli.common import console, human_bytes

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _print_arrow(table: object, title: str | None = None, max_rows: int = 50) -> None:
    import pyarrow as pa

    assert isinstance(table, pa.Table)
    out = Table(title=title, show_lines=False)
    for name in table.column_names:
        out.add_column(name, overflow="fold")
    for row in table.slice(0, max_rows).to_pylist():
        out.add_row(*[_cell(v) for v in row.values()])
    console.print(out)
    if table.num_rows > max_rows:
        console.print(f"[dim]... {table.num_rows - max_rows:,} more rows[/]")


def _cell(value: object) -> str:
    text = "null" if value is None else str(value)
    return text if len(text) <= 200 else text[:197] + "..."


def head(
    batches: list[str] = typer.Argument(..., help="Batch ids, aep:// paths or other URLs."),
    rows: int = typer.Option(10, "-n", "--rows", help="Rows to show."),
    columns: str | None = typer.Option(None, help="Comma-separated columns (default: all)."),
) -> None:
    """Show the first rows of export batches (reads one row group, not the export)."""
    from aep_io.arrow_io import read_arrow

    if rows < 1:
        raise typer.BadParameter("--rows must be at least 1")
    cols = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
    _print_arrow(read_arrow(batches, columns=cols, limit=rows))


def query(
    sql: str = typer.Argument(..., help="DuckDB SQL; read_parquet('aep://<batch>/*/*.parquet')."),
    max_rows: int = typer.Option(50, help="Rows to print."),
    csv: Path | None = typer.Option(None, help="Write the whole result to this CSV file."),
) -> None:
    """Run DuckDB SQL with ``aep://`` paths readable (settings from AEP_* variables)."""
    import duckdb

    from aep_io.duckdb_io import register

    con = duckdb.connect()
    register(con)
    try:
        relation = con.sql(sql)
    except duckdb.Error as exc:
        raise typer.BadParameter(f"DuckDB rejected the query: {exc}") from None
    if relation is None:
        console.print("ok")
        return
    result = relation.to_arrow_table()
    if csv is not None:
        import pyarrow.csv as pacsv

        pacsv.write_csv(result, csv)
        console.print(f"wrote {result.num_rows:,} rows to {csv}")
        return
    _print_arrow(result, max_rows=max_rows)


def load(
    batches: list[str] = typer.Argument(..., help="Batch ids, aep:// paths or other URLs."),
    duckdb_file: Path = typer.Option(..., "--duckdb", help="DuckDB database file to load into."),
    table: str = typer.Option("audience", help="Table to create (or append to)."),
    flatten: bool = typer.Option(
        False, help="Load flattened segmentMembership rows instead of profiles."
    ),
    namespace: str | None = typer.Option(None, help="With --flatten: keep only this namespace."),
    replace: bool = typer.Option(False, help="Replace the table if it exists."),
) -> None:
    """Bulk-load export batches into a DuckDB database file, one file at a time.

    DuckDB reads each parquet part itself through ``aep://`` (or the URL's filesystem), so
    nested columns never go through Python objects.
    """
    import duckdb

    from aep_io.membership import flatten_sql
    from aep_io.sources import Source

    if not _IDENT.match(table):
        raise typer.BadParameter(f"--table {table!r} must be a plain SQL identifier")
    source = Source.of(batches)
    files = source.files()
    if not files:
        raise typer.BadParameter("no parquet files to load")
    con = duckdb.connect(str(duckdb_file))
    registered: set[int] = set()
    for f in files:
        if id(f.fs) not in registered:
            con.register_filesystem(f.fs)
            registered.add(id(f.fs))
    if replace:
        con.execute(f'DROP TABLE IF EXISTS "{table}"')
    # DuckDB 2.0: fetch results completely (fetchone leaves the connection busy)
    exists = bool(con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [table]
    ).fetchall()[0][0])
    total = sum(f.size for f in files)
    started = time.perf_counter()
    with Progress(
        TextColumn("[bold]load[/]"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
        TimeRemainingColumn(), console=console, transient=False,
    ) as progress:
        task = progress.add_task("load", total=total)
        for f in files:
            path = f.display.replace("'", "''")
            source_sql = f"read_parquet('{path}')"
            select = flatten_sql(source_sql, namespace=namespace, con=con) if flatten \
                else f"SELECT * FROM {source_sql}"
            if exists:
                con.execute(f'INSERT INTO "{table}" {select}')
            else:
                con.execute(f'CREATE TABLE "{table}" AS {select}')
                exists = True
            progress.advance(task, f.size)
    rows = con.execute(f'SELECT count(*) FROM "{table}"').fetchall()[0][0]
    con.close()
    console.print(
        f"{table}: {rows:,} rows in {duckdb_file} from {len(files)} files "
        f"({human_bytes(total)}) in {time.perf_counter() - started:.1f}s"
    )

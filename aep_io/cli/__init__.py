"""The ``aep-io`` command line: demo, emulator, and reading export batches.

Every command prints errors as one clear line (never a traceback, never a credential) and exits
with status 1; ``--verbose`` turns on request logging (URLs and statuses, no headers).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

import typer
from rich.markup import escape

from aep_io.cli import demo, download_cmd, emulator_cmd, files_cmd, jobs_cmds, read_cmds
from aep_io.cli.common import err_console
from aep_io.errors import AEPError

__all__ = ["app", "main"]

app = typer.Typer(
    name="aep-io",
    help="Adobe Experience Platform audiences into polars and DuckDB.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log requests (no credentials)."),
) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not verbose:
        logging.getLogger("httpx").setLevel(logging.WARNING)


app.command("demo")(demo.demo)
app.command("files")(files_cmd.files)
app.command("head")(read_cmds.head)
app.command("query")(read_cmds.query)
app.command("load")(read_cmds.load)
app.command("download")(download_cmd.download)
app.add_typer(jobs_cmds.segments_app, name="segments")
app.add_typer(jobs_cmds.segment_jobs_app, name="segment-jobs")
app.add_typer(jobs_cmds.datasets_app, name="datasets")
app.add_typer(jobs_cmds.exports_app, name="exports")
app.add_typer(emulator_cmd.app, name="emulator")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``aep-io`` console script; returns the exit status."""
    try:
        app(args=list(argv) if argv is not None else None, standalone_mode=True)
    except SystemExit as exc:  # click's standalone mode ends every run this way
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except AEPError as exc:
        err_console.print(f"[red]error:[/] {escape(str(exc))}")
        return 1
    except KeyboardInterrupt:
        err_console.print("interrupted")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

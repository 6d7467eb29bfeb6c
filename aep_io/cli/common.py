"""Shared pieces of the CLI: consoles, sizes, and one-line errors for every command."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from rich.console import Console
from typer.exceptions import Abort, Exit, TyperException

from aep_io.errors import AEPError

__all__ = ["CommandError", "console", "err_console", "human_bytes", "one_line_errors"]

console = Console(highlight=False)
# soft_wrap: an error is one line however narrow the terminal (copy-pasteable URLs and ids)
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

F = TypeVar("F", bound=Callable[..., Any])

# Errors that already reach the user as a clear message (usage errors, aep_io's own).
_CLEAR = (AEPError, TyperException, Exit, Abort, KeyboardInterrupt)


class CommandError(AEPError):
    """A command failed on what it was given (a bad path, a column that does not exist...).

    ``aep-io`` prints it as one ``error:`` line and exits with status 1, like every
    :class:`~aep_io.errors.AEPError`.
    """


def _describe(exc: Exception) -> str:
    if isinstance(exc, KeyError) and exc.args:
        text = str(exc.args[0])
    elif isinstance(exc, OSError) and exc.strerror and exc.filename:
        text = f"{exc.strerror}: {exc.filename}"
    else:
        text = str(exc)
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return (lines[0] if lines else type(exc).__name__)[:1000]


def one_line_errors(command: F) -> F:
    """Wrap a command so that any error reaches the user as one line, never a traceback
    (``--verbose`` keeps the traceback of unexpected errors, for bug reports)."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except _CLEAR:
            raise
        except Exception as exc:
            if logging.getLogger().isEnabledFor(logging.DEBUG):
                raise
            raise CommandError(_describe(exc)) from None

    return run  # type: ignore[return-value]


def human_bytes(n: float) -> str:
    """``1536`` → ``'1.5 KiB'``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"

"""Shared pieces of the CLI: consoles, sizes, settings from options."""

from __future__ import annotations

from rich.console import Console

__all__ = ["console", "err_console", "human_bytes"]

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


def human_bytes(n: float) -> str:
    """``1536`` → ``'1.5 KiB'``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"

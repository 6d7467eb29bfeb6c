"""Compile aep_io's bytecode once before timing processes that import it.

Installed from a wheel, aep_io's modules come with bytecode (pip compiles them); an editable
install compiles them at first import, unless ``PYTHONDONTWRITEBYTECODE`` is set (as on this
project's machines), in which case every fresh process compiles them from source again: about
0.1 s per process here, which a benchmark case would count against aep_io but not against its
baseline (pyarrow, polars and DuckDB come compiled). The runners call :func:`compile_aep_io`
first, so cases measure aep_io as installed.
"""

from __future__ import annotations

import compileall
from pathlib import Path


def compile_aep_io() -> bool:
    """Write the bytecode of every aep_io module (only those out of date); True on success."""
    import aep_io

    root = Path(aep_io.__file__).parent
    return bool(compileall.compile_dir(root, quiet=1))

"""Benchmark data: synthetic exports generated once per scale and cached.

``.bench-cache/scale-<s>/parts/``   the parquet parts (1M profiles x scale, 8 parts; another
                                     number of parts lives in ``scale-<s>-parts-<n>/``)
``.bench-cache/scale-<s>/emulator/`` an emulator data directory holding them as one batch
``.bench-cache/scale-<s>/meta.json`` batch id, sizes, profile count

``AEP_IO_BENCH_CACHE`` moves the cache elsewhere (the harness's smoke test uses a temporary one).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

ROOT = Path(os.environ.get("AEP_IO_BENCH_CACHE")
            or Path(__file__).resolve().parent.parent / ".bench-cache")
BASE_PROFILES = 1_000_000


def dataset(scale: float, *, parts: int = 8, row_groups: int = 16) -> dict[str, Any]:
    """The cached dataset for ``scale`` (generated on first use)."""
    from aep_io.emulator import Emulator
    from aep_io.emulator.synthetic import SyntheticSpec, write_parts

    home = ROOT / (f"scale-{scale:g}" if parts == 8 else f"scale-{scale:g}-parts-{parts}")
    meta_path = home / "meta.json"
    if meta_path.exists():
        return json.loads(meta_path.read_text())
    if home.exists():
        shutil.rmtree(home)
    profiles = int(BASE_PROFILES * scale)
    started = time.perf_counter()
    paths = write_parts(SyntheticSpec(profiles=profiles), home / "parts", parts=parts,
                        row_groups_per_part=row_groups)
    emulator = Emulator(home / "emulator")
    export = emulator.add_export_batch(paths)  # copies: the local baseline keeps its files
    emulator.close()
    meta = {
        "scale": scale,
        "profiles": profiles,
        "row_groups": parts * row_groups,
        "batch_id": export.batch_id,
        "parts": [str(p) for p in paths],
        "bytes": sum(p.stat().st_size for p in paths),
        "emulator_dir": str(home / "emulator"),
        "seconds_to_generate": round(time.perf_counter() - started, 1),
    }
    meta_path.write_text(json.dumps(meta, indent=2))
    return meta

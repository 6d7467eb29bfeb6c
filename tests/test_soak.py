"""Smoke test of the soak (benchmarks/soak.py): a short run with every fault kind on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent


def test_short_soak_reads_every_engine_without_a_wrong_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `benchmarks` lives at the repository root (the spawned readers inherit this sys.path)
    monkeypatch.syspath_prepend(str(ROOT))
    from benchmarks import soak

    out = tmp_path / "soak.json"
    soak.main(["--readers", "2", "--seconds", "6", "--profiles", "5000", "--fault-rate", "0.1",
               "--data", str(tmp_path / "data"), "--json", str(out)])
    figures = json.loads(out.read_text())
    assert figures["totals"]["wrong"] == 0, figures["bad_reads"]
    assert figures["totals"]["lost_rows"] == 0, figures["bad_reads"]
    for engine in soak.ENGINES:
        assert figures["engines"][engine]["reads"] >= 1, figures["engines"]
    assert not figures["hung"] and not figures["crashes"], (figures["hung"], figures["crashes"])
    assert sum(figures["emulator"]["counters"]["faults"].values()) > 0  # faults really happened

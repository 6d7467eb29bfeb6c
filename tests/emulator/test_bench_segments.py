"""The segment benchmark's hand-written SQL baseline (``benchmarks/emulator_bench.py``) produces
exactly the entries a segment job saves, on fresh segments and across status transitions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from aep_io.emulator import Emulator
from aep_io.emulator.segment_jobs import evaluate

ROOT = Path(__file__).resolve().parent.parent.parent
FIELDS = ["version", "lastQualificationTime", "validUntil", "status"]


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(ROOT))  # `benchmarks` lives at the repository root
    from benchmarks import emulator_bench

    return emulator_bench


def _definitions(segments: list[tuple[str, str]]) -> list[dict[str, object]]:
    return [{"id": f"bench-eval-{j}", "version": 1,
             "expression": {"type": "PQL", "format": "pql/text", "value": pql}}
            for j, (pql, _) in enumerate(segments)]  # fmt: skip


def _previous(entries: dict[str, pa.Array]) -> pa.Table:
    """The job's saved entries as the baseline's ``previous`` table (segment, row, entry)."""
    parts = []
    for j in range(len(entries)):
        column = entries[f"bench-eval-{j}"]
        rows = np.flatnonzero(np.asarray(column.is_valid().to_numpy(zero_copy_only=False)))
        taken = column.take(pa.array(rows))
        parts.append(pa.table({
            "segment": pa.array(np.full(len(rows), j, np.int32)), "row": pa.array(rows),
            **{f: taken.field(f) for f in FIELDS}}))  # fmt: skip
    return pa.concat_tables(parts)


def test_membership_sql_matches_the_job(bench: ModuleType, tmp_path: Path) -> None:
    emu = Emulator(tmp_path / "emu", job_step_delay=0.0)
    tenant = emu.default_tenant
    rows = emu.profiles.load_synthetic(tenant, profiles=5_000, seed=3)
    store_file = emu.profiles.profiles_path(tenant)
    overlay = emu.profiles.overlay(tenant)
    ids = [f"bench-eval-{j}" for j in range(len(bench.SEGMENTS))]
    # other conditions under the same ids
    shifted = [bench.SEGMENTS[k:] + bench.SEGMENTS[:k] for k in (1, 2)]
    start = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
    seen: set[str] = set()
    try:
        # fresh segments (the benchmark's case), then a change of every condition (realized,
        # existing, exited), then another (also exited entries that stay out: kept as they were)
        for round_, segments in enumerate([bench.SEGMENTS, *shifted]):
            now = start + timedelta(days=round_)
            before = overlay.load(ids, rows)
            evaluate(emu, tenant, _definitions(segments), now=now)
            after = overlay.load(ids, rows)
            out = tmp_path / f"round{round_}"
            out.mkdir()
            statements = bench.membership_sql(store_file, out, now, segments)
            con = duckdb.connect()
            con.execute(statements[0])  # CREATE TEMP TABLE previous
            if before:
                con.register("job_before", _previous(before))
                con.execute("INSERT INTO previous SELECT * FROM job_before")
            for statement in statements[1:]:
                con.execute(statement)
            con.close()
            for j, segment_id in enumerate(ids):
                got = pq.read_table(out / f"segment_{j}.parquet").sort_by("row")
                job = after[segment_id]
                where = np.flatnonzero(np.asarray(job.is_valid().to_numpy(zero_copy_only=False)))
                assert got.column("row").to_pylist() == where.tolist(), (round_, j)
                taken = job.take(pa.array(where))
                for name in FIELDS:
                    want = taken.field(name)
                    have = got.column(name).combine_chunks().cast(want.type)
                    assert have.to_pylist() == want.to_pylist(), (round_, j, name)
                kept = pc.and_(pc.equal(taken.field("status"), "exited"),
                               pc.less(taken.field("lastQualificationTime"), pa.scalar(now)))
                seen.update(pc.unique(taken.field("status")).to_pylist())
                seen.update(["exited, kept"] if pc.any(kept).as_py() else [])
    finally:
        emu.close()
    assert {"realized", "existing", "exited", "exited, kept"} <= seen

"""The aep-io command line, against the emulator."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aep_io.cli import main
from aep_io.emulator import Emulator, EmulatorServer, ExportBatch


@pytest.fixture
def env(server: EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in server.client_env().items():
        monkeypatch.setenv(key, value)


def test_files_table(env: None, export: ExportBatch, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["files", export.batch_id]) == 0
    out = capsys.readouterr().out
    assert "4 files" in out
    assert out.count("part-0000") == 4


def test_files_json(env: None, export: ExportBatch, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["files", "--json", export.batch_id]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.split("\n}\n") if x.strip()
             for x in [x if x.rstrip().endswith("}") else x + "}"]]
    assert len(lines) == 4 and all(line["uri"].startswith("aep://") for line in lines)


def test_missing_settings_is_one_clear_line(monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    for key in ("AEP_CLIENT_ID", "AEP_CLIENT_SECRET", "AEP_ACCESS_TOKEN", "AEP_ORG_ID"):
        monkeypatch.delenv(key, raising=False)
    assert main(["files", "B1"]) == 1
    err = capsys.readouterr().err
    assert "AEP_CLIENT_ID is missing" in err
    assert "Traceback" not in err


def test_unknown_batch(env: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["files", "01NOSUCHBATCH0000000000000"]) == 1
    assert "404" in capsys.readouterr().err


def test_emulator_generate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["emulator", "generate", "--data", str(tmp_path), "--profiles", "300",
                 "--parts", "2"]) == 0
    assert "300 profiles, 2 files" in " ".join(capsys.readouterr().out.split())


def test_emulator_serve_refuses_non_loopback(tmp_path: Path) -> None:
    assert main(["emulator", "serve", "--data", str(tmp_path), "--host", "0.0.0.0"]) == 2


@pytest.mark.slow
def test_demo_runs_end_to_end(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--profiles", "3000"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "audience sizes per segment and status" in out
    assert "aep_io demo: time per step" in out
    assert "US residents" in out


def test_head(env: None, export: ExportBatch, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["head", export.batch_id, "-n", "3", "--columns", "_acme"]) == 0
    out = capsys.readouterr().out
    assert "_acme" in out and out.count("loyaltyTier") == 3


def test_query_over_aep_globs(env: None, export: ExportBatch,
                              capsys: pytest.CaptureFixture[str]) -> None:
    sql = (f"SELECT count(*) AS n FROM read_parquet('aep://{export.batch_id}/*/*.parquet')")
    assert main(["query", sql]) == 0
    assert "20000" in capsys.readouterr().out


def test_query_error_is_explained(env: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["query", "SELEC nonsense"]) == 2
    assert "DuckDB rejected the query" in capsys.readouterr().err


@pytest.mark.parametrize("flatten", [False, True])
def test_load_into_duckdb_file(env: None, export: ExportBatch, tmp_path: Path,
                               emulator: Emulator, flatten: bool) -> None:
    import duckdb

    db = tmp_path / "audience.duckdb"
    args = ["load", export.batch_id, "--duckdb", str(db), "--table", "t"]
    emulator.counters.reset()
    assert main([*args, *(["--flatten"] if flatten else [])]) == 0
    if not flatten:  # DuckDB reads the parts itself, in one statement: each byte once, the
        # footers twice (union_by_name reads them first to unify the schemas). Flattening these
        # tiny row groups, DuckDB's reader over fsspec reads the bytes several times over (as
        # much per file as in one statement: measured).
        assert export.size <= emulator.counters.bytes_sent("file") <= export.size * 1.02
    con = duckdb.connect(str(db))
    rows = con.sql("SELECT count(*) FROM t").fetchall()[0][0]
    if flatten:
        columns = [c[0] for c in con.sql("DESCRIBE t").fetchall()]
        assert {"identity_id", "namespace", "segment_id", "status"} <= set(columns)
        assert rows > export.record_count * 10
    else:
        assert rows == export.record_count
    con.close()
    assert main([*args, "--replace"]) == 0  # reload replaces instead of appending

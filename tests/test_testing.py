"""aep_io.testing: the emulator context manager and the pytest plugin users get."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import polars as pl
import pytest

from aep_io import AEPClient, scan_batches
from aep_io.testing import LocalAEP, emulator


def test_emulator_serves_profiles_and_an_export_on_loopback() -> None:
    with emulator(profiles=1_500, parts=3, row_groups_per_part=2) as aep:
        assert aep.url.startswith("http://127.0.0.1:")
        assert aep.env["AEP_PLATFORM_URL"] == aep.env["AEP_IMS_URL"] == aep.url
        assert aep.export is not None and len(aep.export.files) == 3
        assert aep.emulator.profiles.count(aep.emulator.default_tenant) == 1_500
        lf = scan_batches(aep.batch_id, client=aep.client())
        assert lf.select(pl.len()).collect().item() == 1_500
        flat_ids = set(lf.select(pl.col("segmentMembership").map.keys()).collect().to_series()
                       .explode().drop_nulls().unique())
        assert flat_ids <= {"ups", "aam"}
        assert len(aep.segment_ids["ups"]) > 0 and len(aep.segment_ids["aam"]) > 0
        data_dir = aep.data_dir
        assert "127.0.0.1" in repr(aep)
    assert not data_dir.exists()  # the temporary directory went with it
    assert "closed" in repr(aep)
    aep.close()  # idempotent


def test_without_export_and_with_a_data_dir(tmp_path: Path) -> None:
    with emulator(profiles=200, export=False, data_dir=tmp_path / "emu") as aep:
        assert aep.batch_id is None and aep.export is None
        assert aep.emulator.profiles.count(aep.emulator.default_tenant) == 200
    assert (tmp_path / "emu").exists()  # a directory of yours is kept
    with pytest.raises(ValueError, match="at least one profile"):
        emulator(profiles=0)
    with pytest.raises(ValueError, match=">= 0"):
        emulator(profiles=-1, export=False)


def test_set_env_points_at_the_emulator_and_restores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AEP_ACCESS_TOKEN", "a-real-token")  # must not leak into the emulator's
    monkeypatch.setenv("AEP_PLATFORM_URL", "https://platform.adobe.io")
    monkeypatch.delenv("AEP_CLIENT_ID", raising=False)
    with emulator(profiles=100, export=False, set_env=True) as aep:
        assert "AEP_ACCESS_TOKEN" not in os.environ
        assert {k: v for k, v in os.environ.items() if k.startswith("AEP_")} == aep.env
        with AEPClient() as client:
            assert client.settings.platform_url == aep.url
    assert os.environ["AEP_ACCESS_TOKEN"] == "a-real-token"
    assert os.environ["AEP_PLATFORM_URL"] == "https://platform.adobe.io"
    assert "AEP_CLIENT_ID" not in os.environ


def test_clients_are_closed_with_the_emulator() -> None:
    aep = emulator(profiles=100, export=False)
    assert isinstance(aep, LocalAEP)
    client = aep.client()
    aep.close()
    assert client.http.is_closed


def test_pytest_plugin_fixtures_and_ini_options(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(textwrap.dedent("""
        [tool.pytest.ini_options]
        aep_emulator_profiles = "700"
        aep_emulator_parts = "1"
    """))
    (tmp_path / "test_user.py").write_text(textwrap.dedent("""
        import os

        from aep_io import AEPClient, plan_files


        def test_session_emulator(aep_emulator):
            assert aep_emulator.profiles == 700
            assert aep_emulator.export.record_count == 700
            assert len(aep_emulator.export.files) == 1


        def test_env(aep_env, aep_emulator):
            assert "AEP_ACCESS_TOKEN" not in os.environ
            assert os.environ["AEP_PLATFORM_URL"] == aep_emulator.url == aep_env["AEP_IMS_URL"]
            with AEPClient() as client:
                assert len(plan_files(aep_emulator.batch_id, client=client)) == 1


        def test_env_is_restored_after_the_test():
            assert os.environ["AEP_ACCESS_TOKEN"] == "from-the-user-shell"
    """))
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
            "--rootdir", str(tmp_path)]
    installed = {ep.value for ep in importlib.metadata.entry_points(group="pytest11")}
    if "aep_io.testing.pytest_plugin" not in installed:  # until the entry point is installed
        args += ["-p", "aep_io.testing.pytest_plugin"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AEP_", "PYTEST_"))}
    env["AEP_ACCESS_TOKEN"] = "from-the-user-shell"
    result = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout, result.stdout

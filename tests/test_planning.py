"""Planning: batch ids to files, over real HTTP."""

from __future__ import annotations

import pickle

import pytest

from aep_io import AEPClient, BatchNotReadyError, NotFoundError, plan, plan_files
from aep_io.emulator import Emulator, ExportBatch


def test_plan_lists_the_export(client: AEPClient, export: ExportBatch) -> None:
    result = plan([export.batch_id], client=client)
    assert [b.status for b in result.batches] == ["success"]
    assert result.batches[0].record_count == 20_000
    assert result.batches[0].dataset_id == export.dataset_id
    assert sorted((f.file_id, f.name, f.size) for f in result.files) == sorted(export.files)
    assert all(f.uri.startswith(f"aep://{export.batch_id}/") for f in result.files)
    assert all(f.modified is not None for f in result.files)


def test_plan_result_is_picklable(client: AEPClient, export: ExportBatch) -> None:
    files = plan_files(export.batch_id, client=client)
    assert pickle.loads(pickle.dumps(files)) == files


def test_duplicate_ids_are_planned_once(client: AEPClient, export: ExportBatch,
                                        emulator: Emulator) -> None:
    files = plan_files([export.batch_id, export.batch_id], client=client)
    assert len(files) == len(export.files)
    assert emulator.counters.requests("catalog") == 1


def test_unknown_batch_is_not_found(client: AEPClient) -> None:
    with pytest.raises(NotFoundError) as info:
        plan_files(["01NOSUCHBATCH0000000000000"], client=client)
    assert "01NOSUCHBATCH0000000000000" in str(info.value)
    assert isinstance(info.value, FileNotFoundError)


def test_unfinished_batch_is_refused(client: AEPClient, emulator: Emulator,
                                     export: ExportBatch) -> None:
    batch = emulator.store.create_batch(emulator.default_tenant, export.dataset_id)
    with pytest.raises(BatchNotReadyError, match="loading"):
        plan_files([batch["id"]], client=client)
    assert plan_files([batch["id"]], client=client, check_status=False) == []


def test_empty_input_makes_no_request(client: AEPClient, emulator: Emulator) -> None:
    assert plan_files([], client=client) == []
    assert emulator.counters.requests() == 0

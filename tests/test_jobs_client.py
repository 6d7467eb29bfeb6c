"""The segmentation and export-job client against the emulator over loopback."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from aep_io import (
    AEPClient,
    BadRequestError,
    ConflictError,
    JobFailedError,
    JobNotFinishedError,
    JobTimeoutError,
    Settings,
    audience_sizes,
    cancel_segment_job,
    create_dataset,
    create_export_job,
    create_segment,
    create_segment_job,
    export_audience,
    get_export_job,
    get_segment,
    list_export_jobs,
    list_segment_jobs,
    list_segments,
    scan_export_job,
    wait_for_export_job,
    wait_for_segment_job,
)
from aep_io.emulator import Emulator, EmulatorServer
from aep_io.jobs import PollPolicy

FAST = PollPolicy(initial=0.02, factor=1.5, maximum=0.2)


@pytest.fixture(scope="module")
def jobs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorServer]:
    emu = Emulator(tmp_path_factory.mktemp("jobs"), job_step_delay=0.0)
    emu.profiles.load_synthetic(emu.default_tenant, profiles=5_000)
    with EmulatorServer(emu) as srv:
        yield srv
    emu.close()


@pytest.fixture
def jc(jobs_server: EmulatorServer) -> Iterator[AEPClient]:
    with AEPClient(Settings.from_env(jobs_server.client_env())) as c:
        yield c


_names = itertools.count()


def _segment(jc: AEPClient, pql: str) -> str:
    return create_segment(jc, f"segment {next(_names)}", pql).id


def test_segment_definitions(jc: AEPClient) -> None:
    seg = create_segment(jc, "client US", 'homeAddress.countryCode = "US"',
                         description="people in the US")
    assert get_segment(jc, seg.id).expression == 'homeAddress.countryCode = "US"'
    assert seg.id in {s.id for s in list_segments(jc, page_size=2)}
    with pytest.raises(ConflictError):
        create_segment(jc, "client US", 'homeAddress.countryCode = "CA"')


def test_invalid_pql_error_points_at_the_position(jc: AEPClient) -> None:
    with pytest.raises(BadRequestError) as info:
        create_segment(jc, "broken", "homeAddress.countryCode = ")
    assert "column" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_segment_job_lifecycle_and_metrics(jc: AEPClient) -> None:
    seg = _segment(jc, '_acme.loyaltyTier = "gold"')
    seen: list[str] = []
    job = create_segment_job(jc, [seg])
    assert job.status == "NEW"
    done = wait_for_segment_job(jc, job.id, poll=FAST, progress=lambda j: seen.append(j.status))
    assert done.status == "SUCCEEDED" and seen[-1] == "SUCCEEDED"
    assert done.profiles_in(seg) and done.profiles_in(seg) > 0
    assert done.id in {j.id for j in list_segment_jobs(jc, page_size=2)}
    assert done.id in {j.id for j in list_segment_jobs(jc, status="SUCCEEDED")}


def test_failed_segment_job_carries_its_errors(jc: AEPClient) -> None:
    job = create_segment_job(jc, ["00000000-0000-0000-0000-000000000000"])
    with pytest.raises(JobFailedError) as info:
        wait_for_segment_job(jc, job.id, poll=FAST)
    assert info.value.errors
    assert info.value.status == "FAILED"


def test_wait_timeout_is_typed(jc: AEPClient, jobs_server: EmulatorServer) -> None:
    seg = _segment(jc, '_acme.loyaltyTier = "silver"')
    jobs_server.emulator.job_step_delay = 0.5
    try:
        job = create_segment_job(jc, [seg])
        with pytest.raises(JobTimeoutError) as info:
            wait_for_segment_job(jc, job.id, timeout=0.1, poll=FAST)
        assert isinstance(info.value, TimeoutError)
        cancel_segment_job(jc, job.id)
    finally:
        jobs_server.emulator.job_step_delay = 0.0


def test_export_job_to_lazy_frame(jc: AEPClient) -> None:
    seg = _segment(jc, 'homeAddress.countryCode = "DE"')
    wait_for_segment_job(jc, create_segment_job(jc, [seg]).id, poll=FAST)
    dataset = create_dataset(jc, "client export")
    job = create_export_job(jc, dataset, segments=[seg])
    assert job.status == "NEW" and len(job.batch_ids) == 1
    with pytest.raises(JobNotFinishedError):
        scan_export_job(job, client=jc)
    job = wait_for_export_job(jc, job.id, poll=FAST)
    frame = scan_export_job(job.id, client=jc).collect()
    countries = frame["homeAddress"].struct.field("countryCode").unique().to_list()
    assert countries == ["DE"]
    assert job.id in {j.id for j in list_export_jobs(jc, page_size=1)}
    assert get_export_job(jc, job.id).dataset_id == dataset


def test_segment_per_batch_adds_segment_id(jc: AEPClient) -> None:
    a = _segment(jc, '_acme.loyaltyTier = "platinum"')
    b = _segment(jc, 'homeAddress.countryCode = "JP"')
    wait_for_segment_job(jc, create_segment_job(jc, [a, b]).id, poll=FAST)
    dataset = create_dataset(jc, "per segment")
    job = create_export_job(jc, dataset, segments=[a, b], segment_per_batch=True)
    job = wait_for_export_job(jc, job.id, poll=FAST)
    assert {r.segment_id for r in job.batches} == {a, b}
    frame = scan_export_job(job, client=jc).collect()
    by_segment = dict(frame.group_by("segment_id").len().iter_rows())
    assert set(by_segment) == {a, b}
    tiers = frame.filter(pl.col("segment_id") == a)["_acme"].struct.field("loyaltyTier")
    assert set(tiers.to_list()) == {"platinum"}


def test_export_audience_one_call(jc: AEPClient) -> None:
    seg = _segment(jc, '_acme.lifetimeValue > 1000')
    steps: list[str] = []
    result = export_audience([seg], client=jc, evaluate=True, poll=FAST,
                             progress=lambda step, job: steps.append(step))
    assert result.segment_job is not None and result.segment_job.status == "SUCCEEDED"
    assert {"segment job", "export job"} <= set(steps)
    sizes = audience_sizes(result.frame.select("identityMap", "segmentMembership"),
                           namespace="ups").filter(pl.col("segment_id") == seg).collect()
    members = sizes.filter(pl.col("status").is_in(["realized", "existing"]))["profiles"].sum()
    assert members == result.segment_job.profiles_in(seg)


def test_cli_segments_and_exports(jobs_server: EmulatorServer, monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    import json

    from aep_io.cli import main

    for key, value in jobs_server.client_env().items():
        monkeypatch.setenv(key, value)
    assert main(["segments", "create", "cli gold", '_acme.loyaltyTier = "gold"', "--json"]) == 0
    seg = json.loads(capsys.readouterr().out)["id"]
    assert main(["segment-jobs", "create", seg, "--wait", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "SUCCEEDED"
    assert main(["datasets", "create", "cli export", "--json"]) == 0
    dataset = json.loads(capsys.readouterr().out)["id"]
    assert main(["exports", "create", "--dataset", dataset, "--segment", seg, "--wait",
                 "--json"]) == 0
    job = json.loads(capsys.readouterr().out)
    assert job["status"] == "SUCCEEDED"
    assert main(["exports", "list"]) == 0
    assert str(job["id"]) in capsys.readouterr().out
    assert main(["segments", "create", "bad", "homeAddress.countryCode = "]) == 1
    assert "column" in capsys.readouterr().err


def test_polling_and_listings_survive_faults(jobs_server: EmulatorServer) -> None:
    """Every GET of the job and listing routes fails ~30% of the time, in every way the
    emulator can fail: waiting, listing and reading still give the fault-free answer."""
    from aep_io import RetryPolicy, plan_files
    from aep_io.emulator import Fault

    emu = jobs_server.emulator
    retry = RetryPolicy(max_attempts=12, initial_backoff=0.001, max_backoff=0.01,
                        max_retry_after=0.01)
    with AEPClient(Settings.from_env(jobs_server.client_env()), retry=retry) as client:
        seg = _segment(client, 'homeAddress.countryCode = "US"')
        clean = export_audience([seg], client=client, evaluate=True, poll=FAST)
        clean_files = sorted(f.name for f in plan_files(clean.batch_ids,
                                                        client=client))
        clean_rows = clean.frame.select(pl.len()).collect().item()
        kinds = [Fault(status=429, headers={"Retry-After": "0"}), Fault(status=500),
                 Fault(status=502), Fault(status=503), Fault(status=504),
                 Fault(kind="reset"), Fault(kind="reset_mid_body"), Fault(kind="truncate"),
                 Fault(kind="latency", delay=0.01), Fault(kind="expire_token")]
        emu.faults.clear()
        emu.faults.reseed(3)
        for fault in kinds:
            fault.rate, fault.times, fault.method = 0.03, None, "GET"
            emu.faults.add(fault)
        emu.counters.reset()
        try:
            again = export_audience([seg], client=client, evaluate=True, poll=FAST)
            files = sorted(f.name for f in plan_files(again.batch_ids, client=client))
            rows = again.frame.select(pl.len()).collect().item()
        finally:
            emu.faults.clear()
    assert again.segment_job is not None and again.segment_job.status == "SUCCEEDED"
    assert again.job.status == "SUCCEEDED"
    assert len(files) == len(clean_files) and rows == clean_rows
    served = emu.counters.snapshot()
    assert sum(served["faults"].values()) >= 5, served["faults"]  # the faults really happened

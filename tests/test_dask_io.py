"""Dask DataFrames over export batches: a LocalCluster (127.0.0.1, 2 worker processes, no
dashboard) reading from the emulator, checked against the polars path."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

dd = pytest.importorskip("dask.dataframe", reason="Dask is an optional extra: aep_io[dask]")
distributed = pytest.importorskip("distributed", reason="Dask is an optional extra: aep_io[dask]")

import polars as pl  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.compute as pc  # noqa: E402

from aep_io import AEPClient, Settings, flatten_membership, scan_batches  # noqa: E402
from aep_io import membership as pl_membership  # noqa: E402
from aep_io.dask_io import (  # noqa: E402
    audience_sizes,
    local_cluster,
    membership_matrix,
    read_batches,
)
from aep_io.emulator import Emulator, EmulatorServer, ExportBatch  # noqa: E402
from aep_io.emulator.credentials import DEFAULT_CLIENT_SECRET  # noqa: E402
from aep_io.emulator.faults import Fault  # noqa: E402

LISTING_KINDS = ("listing", "batch_files", "catalog")


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    # 127.0.0.1, no dashboard, worker processes; the worker environment holds the secret only
    # for the credentials="worker-env" test
    with local_cluster(2, threads_per_worker=2,
                       env={"AEP_CLIENT_SECRET": DEFAULT_CLIENT_SECRET}) as c:
        yield c


@pytest.fixture(scope="module")
def dclient(cluster: Any) -> Iterator[Any]:
    with distributed.Client(cluster, set_as_default=False) as c:
        yield c


@pytest.fixture(scope="module")
def aep(server: EmulatorServer) -> Iterator[AEPClient]:
    with AEPClient(Settings.from_env(server.client_env())) as c:
        yield c


def _pl(frame: Any) -> pl.DataFrame:
    out = pl.from_arrow(pa.Table.from_pandas(frame, preserve_index=False))
    assert isinstance(out, pl.DataFrame)
    return out


def _sorted(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.sort(frame.columns, nulls_last=True)


def _kinds(emulator: Emulator) -> dict[str, int]:
    return dict(emulator.counters.snapshot()["requests_by_kind"])


# -- no cluster: building the frame -------------------------------------------------------------


def test_building_lists_once_and_reads_one_footer(
    emulator: Emulator, export: ExportBatch, aep: AEPClient
) -> None:
    ddf = read_batches(export.batch_id, client=aep)
    kinds = _kinds(emulator)
    assert kinds.get("file") == 1  # meta: the first footer, one request
    assert kinds.get("batch_files") == 1
    assert ddf.npartitions == 4
    assert list(ddf.columns) == [
        "identityMap", "person", "personalEmail", "homeAddress", "_acme", "segmentMembership",
    ]
    assert all(str(t).endswith("[pyarrow]") for t in ddf.dtypes)


def test_threaded_scheduler_equals_polars(export: ExportBatch, aep: AEPClient) -> None:
    got = read_batches(export.batch_id, client=aep).compute(scheduler="threads")
    want = scan_batches(export.batch_id, client=aep).collect()
    assert _pl(got).equals(want)


def test_unknown_column_is_a_clear_error(export: ExportBatch, aep: AEPClient) -> None:
    with pytest.raises(KeyError, match="nosuch"):
        read_batches(export.batch_id, client=aep, columns=["person", "nosuch"])
    with pytest.raises(TypeError):
        read_batches(export.batch_id, client=aep, columns="person")


def test_dnf_filters_equal_expression(sorted_export: ExportBatch, aep: AEPClient) -> None:
    expr = (pc.field("profileIndex") < 1500) & (pc.field("_acme", "loyaltyTier") == "gold")
    dnf = [("profileIndex", "<", 1500), ("_acme.loyaltyTier", "==", "gold")]
    a = read_batches(sorted_export.batch_id, client=aep, columns=["profileIndex"], filters=expr)
    b = read_batches(sorted_export.batch_id, client=aep, columns=["profileIndex"], filters=dnf)
    got_a = a.compute(scheduler="sync")["profileIndex"].tolist()
    got_b = b.compute(scheduler="sync")["profileIndex"].tolist()
    want = (
        scan_batches(sorted_export.batch_id, client=aep)
        .filter((pl.col("profileIndex") < 1500)
                & (pl.col("_acme").struct.field("loyaltyTier") == "gold"))
        .select("profileIndex").collect().to_series().to_list()
    )
    assert got_a == got_b == want and 0 < len(want) < 1500


def test_filter_matching_nothing_gives_typed_empty_frame(
    sorted_export: ExportBatch, aep: AEPClient
) -> None:
    ddf = read_batches(sorted_export.batch_id, client=aep, columns=["profileIndex", "person"],
                       filters=pc.field("profileIndex") < 0, split_row_groups=True)
    out = ddf.compute(scheduler="sync")
    assert len(out) == 0 and list(out.columns) == ["profileIndex", "person"]
    ddf = read_batches(sorted_export.batch_id, client=aep, columns=["profileIndex", "person"],
                       filters=pc.field("profileIndex") < 0)
    out = ddf.compute(scheduler="sync")
    assert len(out) == 0 and str(out.dtypes["profileIndex"]) == "int64[pyarrow]"


def test_secrets_never_in_keys_reprs_or_tokens(server: EmulatorServer, export: ExportBatch) -> None:
    from dask.base import tokenize

    settings = Settings.from_env(server.client_env())
    with AEPClient(settings) as aep:
        ddf = read_batches(export.batch_id, client=aep, flatten=True)
        token = aep.tokens.token().reveal()
        secrets = [DEFAULT_CLIENT_SECRET, token]
        graph = ddf.__dask_graph__()
        texts = [repr(ddf), str(ddf.expr), repr(dict(graph)), str(list(graph.keys())),
                 *(repr(task) for task in graph.values()), ddf._name, tokenize(ddf)]
        optimized = ddf.optimize().__dask_graph__()
        texts += [repr(dict(optimized)), *(repr(t) for t in optimized.values())]
        for task in graph.values():
            func = getattr(task, "func", None)
            texts += [repr(func), repr(getattr(task, "args", ()))]
        for text in texts:
            for secret in secrets:
                assert secret not in text
    # keys do not derive from the secret: another secret, same keys
    other = settings.with_(client_secret="a-different-secret")
    with AEPClient(other) as aep2:
        aep2.tokens._token = aep.tokens._token  # no IMS call for the wrong secret
        aep2.tokens._refresh_at = float("inf")
        assert read_batches(export.batch_id, client=aep2, flatten=True)._name == ddf._name


def test_worker_env_credentials_leave_no_secret_in_the_graph(
    export: ExportBatch, aep: AEPClient
) -> None:
    import cloudpickle

    shipped = read_batches(export.batch_id, client=aep)
    assert DEFAULT_CLIENT_SECRET.encode() in cloudpickle.dumps(dict(shipped.__dask_graph__()))
    env_only = read_batches(export.batch_id, client=aep, credentials="worker-env")
    assert DEFAULT_CLIENT_SECRET.encode() not in cloudpickle.dumps(
        dict(env_only.__dask_graph__())
    )
    with pytest.raises(ValueError, match="credentials"):
        read_batches(export.batch_id, client=aep, credentials="nope")  # type: ignore[arg-type]


# -- on the cluster ------------------------------------------------------------------------------


@pytest.mark.slow
def test_cluster_equals_polars_without_listing_on_workers(
    emulator: Emulator, export: ExportBatch, aep: AEPClient, dclient: Any
) -> None:
    ddf = read_batches(export.batch_id, client=aep)
    before = _kinds(emulator)
    got = dclient.compute(ddf).result()
    after = _kinds(emulator)
    for kind in LISTING_KINDS:
        assert after.get(kind, 0) == before.get(kind, 0), f"workers made {kind} requests"
    # one shared client per worker process: at most one token per worker, not one per task
    assert after.get("token", 0) - before.get("token", 0) <= 2
    assert _pl(got).equals(scan_batches(export.batch_id, client=aep).collect())


@pytest.mark.slow
def test_projection_and_filters_reduce_bytes_moved(
    emulator: Emulator, sorted_export: ExportBatch, aep: AEPClient, dclient: Any
) -> None:
    def moved(ddf: Any) -> tuple[int, Any]:
        before = emulator.counters.bytes_sent("file")
        result = dclient.compute(ddf).result()
        return emulator.counters.bytes_sent("file") - before, result

    batch = sorted_export.batch_id
    full, _ = moved(read_batches(batch, client=aep))
    narrow, got = moved(read_batches(batch, client=aep, columns=["person"]))
    pushed, got_pushed = moved(read_batches(batch, client=aep)["person"])  # pushed down by Dask
    assert narrow < full / 3 and pushed < full / 3
    want = scan_batches(batch, client=aep).select("person").collect()
    assert _pl(got).equals(want)
    assert _pl(got_pushed.to_frame()).equals(want)
    flt = pc.field("profileIndex") < 1000  # sorted: 2 of 20 row groups can match
    filtered, got = moved(read_batches(batch, client=aep, filters=flt))
    assert filtered < full / 4
    want = scan_batches(batch, client=aep).filter(pl.col("profileIndex") < 1000).collect()
    assert _pl(got).equals(want) and len(got) == 1000


@pytest.mark.slow
def test_split_row_groups_partitions(
    sorted_export: ExportBatch, aep: AEPClient, dclient: Any
) -> None:
    batch = sorted_export.batch_id
    ddf = read_batches(batch, client=aep, split_row_groups=3)
    assert ddf.npartitions == 8  # 2 parts x ceil(10 / 3)
    got = dclient.compute(ddf).result()
    assert _pl(got).equals(scan_batches(batch, client=aep).collect())
    pruned = read_batches(batch, client=aep, split_row_groups=True,
                          filters=pc.field("profileIndex") >= 8_800)
    assert pruned.npartitions == 3  # row groups ruled out by statistics are not partitions
    assert sorted(dclient.compute(pruned).result()["profileIndex"]) == list(range(8_800, 10_000))


@pytest.mark.slow
def test_flatten_rows_equal_polars(
    emulator: Emulator, export: ExportBatch, aep: AEPClient, dclient: Any
) -> None:
    ddf = read_batches(export.batch_id, client=aep, flatten=True, namespace="ups")
    before = emulator.counters.bytes_sent("file")
    got = _pl(dclient.compute(ddf).result())
    flat_bytes = emulator.counters.bytes_sent("file") - before
    want = flatten_membership(scan_batches(export.batch_id, client=aep), namespace="ups").collect()
    assert got.height == want.height > export.record_count
    assert _sorted(got).equals(_sorted(want))
    assert flat_bytes < export.size  # only identityMap and segmentMembership were fetched


@pytest.mark.slow
def test_membership_helpers_equal_polars(
    export: ExportBatch, aep: AEPClient, dclient: Any
) -> None:
    ddf = read_batches(export.batch_id, client=aep, columns=["identityMap", "segmentMembership"])
    lf = scan_batches(export.batch_id, client=aep)
    with distributed.Client(dclient.cluster, set_as_default=True):  # segment listing pass
        matrix = membership_matrix(ddf)
        got = _pl(matrix.compute())
    want = pl_membership.membership_matrix(lf).collect()
    assert got.shape == want.shape and got.height == export.record_count
    assert got.equals(want)
    sizes = _pl(dclient.compute(audience_sizes(ddf)).result())
    assert sizes.equals(pl_membership.audience_sizes(lf).collect())
    chosen = want.columns[2:4]
    lazy = membership_matrix(ddf, segment_ids=chosen, namespace="ups")
    assert _pl(dclient.compute(lazy).result()).equals(
        pl_membership.membership_matrix(lf, segment_ids=chosen).collect()
    )


@pytest.mark.slow
def test_worker_env_credentials_read(export: ExportBatch, aep: AEPClient, dclient: Any) -> None:
    ddf = read_batches(export.batch_id, client=aep, columns=["person"], credentials="worker-env")
    got = dclient.compute(ddf).result()
    assert _pl(got).equals(scan_batches(export.batch_id, client=aep).select("person").collect())


@pytest.mark.slow
def test_tokens_refresh_on_workers(tmp_path: Path, dclient: Any) -> None:
    emu = Emulator(tmp_path / "emu", token_lifetime=2)
    exp = emu.add_synthetic_export(2_000, parts=4, row_groups_per_part=2)
    try:
        with EmulatorServer(emu) as srv, AEPClient(Settings.from_env(srv.client_env())) as aep:
            ddf = read_batches(exp.batch_id, client=aep, columns=["person"])
            tokens = emu.counters.requests("token")
            assert len(dclient.compute(ddf).result()) == 2_000
            first = emu.counters.requests("token") - tokens
            assert 1 <= first <= 2  # one per worker process
            time.sleep(2.2)  # every worker's token has expired
            tokens = emu.counters.requests("token")
            assert len(dclient.compute(ddf).result()) == 2_000
            assert emu.counters.requests("token") > tokens  # refreshed on the workers
            logs = str(dclient.get_worker_logs()) + str(dclient.get_scheduler_logs())
            assert DEFAULT_CLIENT_SECRET not in logs
    finally:
        emu.close()


@pytest.mark.slow
def test_failed_task_logs_no_secret(
    emulator: Emulator, export: ExportBatch, aep: AEPClient, dclient: Any
) -> None:
    ddf = read_batches(export.batch_id, client=aep, columns=["person"])
    token = aep.tokens.token().reveal()
    emulator.faults.add(Fault(kind="status", status=403, route="file", times=None))
    with pytest.raises(Exception, match="403") as info:
        dclient.compute(ddf).result()
    emulator.faults.clear()
    logs = str(dclient.get_worker_logs()) + str(dclient.get_scheduler_logs())
    for text in (logs, str(info.value), repr(info.value)):
        assert DEFAULT_CLIENT_SECRET not in text and token not in text


@pytest.mark.slow
def test_cli_load_dask(
    server: EmulatorServer, export: ExportBatch, aep: AEPClient, cluster: Any, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    import pyarrow.dataset as pads

    from aep_io.cli import main

    for key, value in server.client_env().items():
        monkeypatch.setenv(key, value)
    out = tmp_path / "flat"
    args = ["load", export.batch_id, "--engine", "dask", "--to", str(out), "--flatten",
            "--scheduler", cluster.scheduler_address]
    assert main(args) == 0
    want = flatten_membership(scan_batches(export.batch_id, client=aep)).collect()
    dataset = pads.dataset(out, format="parquet")
    assert dataset.count_rows() == want.height and len(dataset.files) == 4
    assert _sorted(pl.from_arrow(dataset.to_table())).equals(_sorted(want))  # type: ignore[arg-type]
    assert f"{want.height:,} membership rows" in capsys.readouterr().out
    assert main(args) == 2  # not empty: refuses without --replace
    assert main([*args, "--replace"]) == 0
    # a local cluster of its own; plain profiles
    plain = tmp_path / "plain"
    assert main(["load", export.batch_id, "--engine", "dask", "--workers", "1",
                 "--to", f"file://{plain}"]) == 0
    assert pads.dataset(plain, format="parquet").count_rows() == export.record_count
    assert main(["load", export.batch_id, "--engine", "dask"]) == 2  # no --to


@pytest.mark.slow
def test_worker_killed_mid_read_loses_and_duplicates_nothing(
    emulator: Emulator, sorted_export: ExportBatch, aep: AEPClient, dclient: Any
) -> None:
    ddf = read_batches(sorted_export.batch_id, client=aep, split_row_groups=1,
                       columns=["profileIndex", "person"])
    assert ddf.npartitions == 20
    emulator.faults.add(Fault(kind="latency", delay=0.1, route="file", times=None))
    pids = dclient.run(os.getpid)
    future = dclient.compute(ddf)
    deadline = time.monotonic() + 20
    victim = None
    while victim is None and time.monotonic() < deadline:
        busy = [w for w, keys in dclient.processing().items() if keys]
        if busy and emulator.counters.requests("file") >= 8:
            victim = busy[0]
        time.sleep(0.05)
    assert victim is not None, "no worker was reading"
    assert not future.done()
    os.kill(pids[victim], signal.SIGKILL)
    got = future.result(timeout=60)
    emulator.faults.clear()
    assert sorted(got["profileIndex"].tolist()) == list(range(10_000))
    want = scan_batches(sorted_export.batch_id, client=aep).select("profileIndex", "person")
    assert _sorted(_pl(got).unnest("person")).equals(_sorted(want.collect().unnest("person")))
    dclient.wait_for_workers(2, timeout=30)
    assert pids[victim] not in dclient.run(os.getpid).values()


@pytest.mark.slow
def test_local_cluster_workers_run_no_profiler_on_python_311(dclient: Any) -> None:
    import sys

    running = dclient.run(lambda dask_worker: "profile" in dask_worker.periodic_callbacks)
    assert len(running) == 2
    if sys.version_info < (3, 12):  # CPython gh-106883: the profiler can deadlock workers
        assert not any(running.values())


def test_profiler_guard_stops_a_running_worker_profiler(monkeypatch: pytest.MonkeyPatch) -> None:
    from aep_io import dask_io

    class Callback:
        stopped = False

        def is_running(self) -> bool:
            return not self.stopped

        def stop(self) -> None:
            self.stopped = True

    class Loop:
        def add_callback(self, fn: Any) -> None:
            fn()

    class Worker:
        def __init__(self) -> None:
            self.periodic_callbacks = {"profile": Callback()}
            self.loop = Loop()

    worker = Worker()
    monkeypatch.setattr(distributed, "get_worker", lambda: worker)
    monkeypatch.setattr(dask_io, "_PROFILER_DEADLOCK", True)
    monkeypatch.setattr(dask_io, "_PROFILER_GUARDED", False)
    dask_io._guard_worker_profiler()
    assert worker.periodic_callbacks["profile"].stopped

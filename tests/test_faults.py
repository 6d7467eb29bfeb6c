"""Reading through faults: every engine returns exactly the fault-free rows (issue 6 figures).

About 10% of requests fail, across every fault kind the emulator injects: 429 (Retry-After),
500/502/503/504, 401 (token expired mid-read), latency, reset before headers, reset mid-body,
a body cut short, a Range answered with 200 and the whole file, a listed file that answers 404
(a stale listing) and a token that really expires (revoked: only a new one works).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa
import pytest

from aep_io import (
    AEPClient,
    AEPFileSystem,
    RetryPolicy,
    Settings,
    download,
    plan_files,
    read_arrow,
    scan_batches,
    to_duckdb,
)
from aep_io.emulator import Emulator, EmulatorServer, ExportBatch, Fault

pytestmark = pytest.mark.slow

# an order-independent checksum of every value (float sums would depend on summation order)
CHECKSUM = ("SELECT count(*), sum(hash(identityMap)), sum(hash(person)), "
            "sum(hash(personalEmail)), sum(hash(homeAddress)), sum(hash(_acme)), "
            "sum(hash(segmentMembership)) FROM audience")

FAST = RetryPolicy(max_attempts=12, initial_backoff=0.001, max_backoff=0.01,
                   max_retry_after=0.01)


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[EmulatorServer,
                                                                      ExportBatch]]:
    emu = Emulator(tmp_path_factory.mktemp("faults"), fault_seed=7)
    export = emu.add_synthetic_export(20_000, parts=4, row_groups_per_part=8)
    with EmulatorServer(emu) as srv:
        yield srv, export
    emu.close()


def _client(server: EmulatorServer, retry: RetryPolicy = FAST) -> AEPClient:
    return AEPClient(Settings.from_env(server.client_env()), retry=retry)


def _faults_on(emu: Emulator) -> None:
    emu.faults.clear()
    emu.faults.reseed(7)
    kinds = [
        Fault(status=429, headers={"Retry-After": "0"}),
        Fault(status=500), Fault(status=502), Fault(status=503), Fault(status=504),
        Fault(kind="latency", delay=0.01),
        Fault(kind="reset"), Fault(kind="reset_mid_body"), Fault(kind="truncate"),
    ]
    for fault in kinds:  # ~1% each on every route but the token one
        fault.rate, fault.times, fault.path = 0.011, None, r"^/data/"
        emu.faults.add(fault)
    for fault in (Fault(status=401), Fault(kind="ignore_range"), Fault(kind="stale_listing"),
                  Fault(kind="expire_token")):
        fault.rate, fault.times, fault.route = 0.011, None, "file"
        emu.faults.add(fault)


def _sorted(frame: pl.DataFrame) -> pl.DataFrame:
    key = pl.col("identityMap").map.get("ECID").list.first().struct.field("id")
    return frame.with_columns(__k=key).sort("__k").drop("__k")


def test_every_engine_reads_exactly_the_fault_free_rows(
    faulty: tuple[EmulatorServer, ExportBatch], tmp_path: Path
) -> None:
    server, export = faulty
    emu = server.emulator
    emu.faults.clear()
    with _client(server) as client:
        clean_polars = _sorted(scan_batches(export.batch_id, client=client).collect())
        clean_arrow = read_arrow(export.batch_id, client=client, columns=["person", "_acme"])
        clean_duck = to_duckdb(export.batch_id, client=client).sql(CHECKSUM).fetchall()

    _faults_on(emu)
    emu.counters.reset()
    with _client(server, FAST) as client:
        got = _sorted(scan_batches(export.batch_id, client=client).collect())
        assert got.equals(clean_polars)
        arrow = read_arrow(export.batch_id, client=client, columns=["person", "_acme"])
        assert pa.Table.equals(arrow.combine_chunks(), clean_arrow.combine_chunks())
        con = to_duckdb(export.batch_id, client=client, con=duckdb.connect())
        assert con.sql(CHECKSUM).fetchall() == clean_duck
        files = plan_files(export.batch_id, client=client)
        report = download(files, tmp_path, client=client)
    assert report.files == len(export.files)
    for dsf, name, _ in export.files:
        stored = emu.store.physical_file(dsf, name)
        assert stored is not None
        local = tmp_path / export.batch_id / dsf / name
        assert hashlib.sha256(local.read_bytes()).digest() == hashlib.sha256(
            stored.path.read_bytes()).digest()
    served = emu.counters.snapshot()
    faults = sum(served["faults"].values())
    assert faults / served["requests"] > 0.05, served  # the faults really happened
    assert len(served["faults"]) >= 5, served["faults"]  # kinds seen (statuses count as one)


def test_token_expired_mid_read_is_replaced_once(server: EmulatorServer, export: ExportBatch
                                                 ) -> None:
    emu = server.emulator
    with _client(server) as client:
        files = plan_files(export.batch_id, client=client)
        old = client.tokens.token()
        fs = AEPFileSystem(client, files=files)
        emu.counters.reset()
        emu.faults.add(Fault(kind="expire_token", route="file"))
        assert fs.cat_file(files[0].path, 0, 4) == b"PAR1"
        served = emu.counters.snapshot()
        assert served["faults"] == {"expire_token": 1}
        assert served["requests_by_kind"] == {"file": 2, "token": 1}  # 401, new token, replay
        new = client.tokens.token()
        assert new != old and client.tokens.fetch_count == 2
        assert emu.credentials.verify(old.reveal()) is None  # expired for real
        assert emu.credentials.verify(new.reveal()) is not None


def test_token_expired_under_parallel_reads_is_replaced_once(server: EmulatorServer,
                                                             export: ExportBatch) -> None:
    emu = server.emulator
    with _client(server) as client:
        clean = read_arrow(export.batch_id, client=client, columns=["person"])
        emu.counters.reset()
        # the token expires mid-read: the requests in flight with it all get 401
        emu.faults.add(Fault(kind="expire_token", route="file", path=export.files[2][0]))
        got = read_arrow(export.batch_id, client=client, columns=["person"])
        assert pa.Table.equals(got.combine_chunks(), clean.combine_chunks())
        assert emu.counters.requests("token") == 1
        assert emu.counters.snapshot()["faults"] == {"expire_token": 1}

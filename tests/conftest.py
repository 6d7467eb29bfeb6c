"""Shared fixtures: one emulator on loopback for the session, a synthetic export, clients.

Every test gets clean counters and no active faults. Retry sleeps are recorded, not slept, so
retry tests run fast and can assert the waits the client chose.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator

import pytest

from aep_io import AEPClient, RetryPolicy, Settings
from aep_io.emulator import Emulator, EmulatorServer, ExportBatch
from aep_io.planning import BatchFile, plan_files


def pytest_configure(config: pytest.Config) -> None:
    """Keep what the run caches (the PQL parser's tables) out of the user's home directory:
    a temporary ``XDG_CACHE_HOME``, inherited by the processes the tests start."""
    cache_home = tempfile.mkdtemp(prefix="aep-io-test-cache-")
    os.environ["XDG_CACHE_HOME"] = cache_home
    config.add_cleanup(lambda: shutil.rmtree(cache_home, ignore_errors=True))


@pytest.fixture(scope="session")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    emu = Emulator(tmp_path_factory.mktemp("emulator"))
    yield emu
    emu.close()


@pytest.fixture(scope="session")
def server(emulator: Emulator) -> Iterator[EmulatorServer]:
    with EmulatorServer(emulator) as srv:
        yield srv


@pytest.fixture(scope="session")
def export(emulator: Emulator) -> ExportBatch:
    """20k synthetic profiles in 4 parts of 8 row groups each."""
    return emulator.add_synthetic_export(20_000, parts=4, row_groups_per_part=8)


@pytest.fixture(autouse=True)
def _clean_emulator(request: pytest.FixtureRequest) -> Iterator[None]:
    if "emulator" not in request.fixturenames and "server" not in request.fixturenames:
        yield
        return
    emu: Emulator = request.getfixturevalue("emulator")
    emu.faults.clear()
    emu.counters.reset()
    yield
    emu.faults.clear()


@pytest.fixture
def sleeps() -> list[float]:
    """The waits the retry policy asked for, in order."""
    return []


@pytest.fixture
def retry_policy(sleeps: list[float]) -> RetryPolicy:
    return RetryPolicy(max_attempts=5, max_total=60, sleep=sleeps.append)


@pytest.fixture
def settings(server: EmulatorServer) -> Settings:
    return Settings.from_env(server.client_env())


@pytest.fixture
def client(settings: Settings, retry_policy: RetryPolicy) -> Iterator[AEPClient]:
    with AEPClient(settings, retry=retry_policy) as c:
        yield c


@pytest.fixture(scope="session")
def sorted_export(emulator: Emulator, tmp_path_factory: pytest.TempPathFactory) -> ExportBatch:
    """10k synthetic profiles plus a sorted ``profileIndex`` column: 2 parts x 10 row groups,
    so a range predicate on it can skip row groups by their statistics."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from aep_io.emulator.synthetic import SyntheticSpec, generate_table

    table = generate_table(SyntheticSpec(profiles=10_000, seed=7))
    table = table.append_column("profileIndex", pa.array(range(10_000), pa.int64()))
    root = tmp_path_factory.mktemp("sorted")
    paths = []
    for part in range(2):
        path = root / f"part-{part:05d}-sorted-c000.snappy.parquet"
        pq.write_table(table.slice(part * 5_000, 5_000), path, row_group_size=500)
        paths.append(path)
    return emulator.add_export_batch(paths)


@pytest.fixture
def files(client: AEPClient, export: ExportBatch) -> list[BatchFile]:
    """The session export's files, as planned."""
    return plan_files(export.batch_id, client=client)


@pytest.fixture
def stored(emulator: Emulator) -> Callable[[BatchFile], bytes]:
    """The bytes the emulator stores for a planned file (what a read must return)."""

    def read(file: BatchFile) -> bytes:
        found = emulator.store.physical_file(file.file_id, file.name)
        assert found is not None
        return found.path.read_bytes()

    return read

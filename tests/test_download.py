"""download(): parallel, streamed, resumable downloads against the emulator (real HTTP)."""

from __future__ import annotations

import dataclasses
import itertools
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pyarrow.dataset as pads
import pytest

from aep_io import (
    AEPClient,
    AEPError,
    BatchChangedError,
    BatchFile,
    IncompleteReadError,
    NotFoundError,
    Settings,
    TransportError,
)
from aep_io.cli import main
from aep_io.downloads import (
    DownloadError,
    body_span,
    download,
    local_path,
    present_bytes,
)
from aep_io.emulator import Emulator, EmulatorServer, ExportBatch, Fault
from aep_io.emulator.counters import RequestRecord


def _assert_identical(dest: Path, emulator: Emulator, export: ExportBatch) -> None:
    for dsf_id, name, length in export.files:
        local = dest / export.batch_id / dsf_id / name
        found = emulator.store.physical_file(dsf_id, name)
        assert found is not None
        assert local.stat().st_size == length
        assert local.read_bytes() == found.path.read_bytes(), local
    assert not list(dest.rglob("*.part"))


def _settle(emulator: Emulator) -> None:
    """Wait until the emulator has recorded every request (streams abandoned by a stopped run
    are recorded when the server finishes them, which can be after the client returned)."""
    last, stable, deadline = -1, 0, time.monotonic() + 3.0
    while stable < 3 and time.monotonic() < deadline:
        count = emulator.counters.requests()
        stable = stable + 1 if count == last else 0
        last = count
        time.sleep(0.03)


def _range_start(header: str | None) -> int:
    assert header is not None and header.startswith("bytes=") and header.endswith("-"), header
    return int(header[len("bytes="):-1])


def test_downloads_every_part_byte_identical(client: AEPClient, export: ExportBatch,
                                             emulator: Emulator, tmp_path: Path) -> None:
    seen: list[int] = []
    inside = threading.Lock()

    def progress(n: int) -> None:
        assert inside.acquire(blocking=False), "progress called from two threads at once"
        seen.append(n)
        inside.release()

    report = download(export.batch_id, tmp_path, client=client, max_workers=4,
                      chunk_size=64 * 1024, progress=progress)
    _assert_identical(tmp_path, emulator, export)
    assert (report.files, report.downloaded, report.resumed, report.skipped) == (4, 4, 0, 0)
    assert report.bytes_transferred == export.size == emulator.counters.bytes_sent("file")
    assert report.bytes_present == 0 and report.retries == 0
    assert sum(seen) == export.size and all(n > 0 for n in seen)
    log = emulator.counters.log("file")
    assert len(log) == 4 and all(r.range is None for r in log)
    assert str(report).startswith("4 files: 4 downloaded;")
    # the layout is the aep:// one, so a local glob reads the batch
    dataset = pads.dataset(str(tmp_path / export.batch_id), format="parquet")
    assert dataset.count_rows() == export.record_count


def test_rerun_transfers_nothing(client: AEPClient, files: list[BatchFile], export: ExportBatch,
                                 emulator: Emulator, tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    download(export.batch_id, tmp_path, client=client)
    emulator.counters.reset()
    report = download(export.batch_id, tmp_path, client=client)
    assert (report.skipped, report.downloaded, report.resumed) == (4, 0, 0)
    assert report.bytes_transferred == 0 and report.bytes_present == export.size
    assert emulator.counters.requests("file") == 0
    assert emulator.counters.bytes_sent("file") == 0
    assert "4 already complete" in str(report)
    # with planned files nothing needs the network: no client is even built
    for key in ("AEP_CLIENT_ID", "AEP_ORG_ID", "AEP_ACCESS_TOKEN", "AEP_CLIENT_SECRET"):
        monkeypatch.delenv(key, raising=False)
    emulator.counters.reset()
    assert download(files, tmp_path).skipped == 4
    assert emulator.counters.requests() == 0


def test_killed_midway_rerun_fetches_only_missing_bytes(client: AEPClient, files: list[BatchFile],
                                                        export: ExportBatch, emulator: Emulator,
                                                        tmp_path: Path) -> None:
    download(files, tmp_path, client=client)
    cut, gone = files[0], files[1]
    half = cut.size // 2
    final = local_path(tmp_path, cut)
    part = final.with_name(final.name + ".part")
    final.rename(part)
    with part.open("r+b") as fh:
        fh.truncate(half)
    local_path(tmp_path, gone).unlink()
    assert present_bytes(files, tmp_path) == export.size - gone.size - (cut.size - half)

    emulator.counters.reset()
    report = download(export.batch_id, tmp_path, client=client)
    _assert_identical(tmp_path, emulator, export)
    assert (report.skipped, report.resumed, report.downloaded) == (2, 1, 1)
    missing = (cut.size - half) + gone.size
    assert report.bytes_transferred == missing == emulator.counters.bytes_sent("file")
    assert report.bytes_present == export.size - missing
    ranges = {r.query: r.range for r in emulator.counters.log("file")}
    assert len(ranges) == 2
    by_name = {q.rsplit("path=", 1)[1]: rng for q, rng in ranges.items()}
    assert by_name[cut.name] == f"bytes={half}-"
    assert by_name[gone.name] is None


def test_reset_mid_body_resumes_from_bytes_written(client: AEPClient, export: ExportBatch,
                                                   emulator: Emulator, tmp_path: Path,
                                                   sleeps: list[float]) -> None:
    emulator.faults.add(Fault(kind="reset_mid_body", route="file", times=2))
    report = download(export.batch_id, tmp_path, client=client)
    _assert_identical(tmp_path, emulator, export)
    assert report.retries == 2 and report.downloaded == 4
    per_file: dict[str, list[RequestRecord]] = defaultdict(list)
    for rec in emulator.counters.log("file"):
        per_file[rec.query].append(rec)
    assert len(per_file) == 4
    resumes = 0
    for reqs in per_file.values():  # in order: (reset, resume)* then a complete response
        assert reqs[0].range is None and reqs[-1].fault is None
        for prev, again in itertools.pairwise(reqs):
            assert prev.fault == "reset_mid_body"
            before = _range_start(prev.range) if prev.range else 0
            # resumed right after the bytes on disk: past where the broken request began, at
            # most where the server stopped (Linux drops bytes still unread when the RST lands)
            assert before < _range_start(again.range) <= before + prev.bytes_sent
            resumes += 1
    assert resumes == 2
    assert report.bytes_transferred == export.size  # no byte was fetched twice
    assert len(sleeps) == 2  # a short backoff before each resume, through the retry policy


def test_an_error_status_stops_the_run_without_a_bad_final_file(
    client: AEPClient, files: list[BatchFile], emulator: Emulator, tmp_path: Path
) -> None:
    missing = files[2]
    emulator.faults.add(Fault(kind="status", status=404, route="file", path=missing.file_id,
                              times=None))
    with pytest.raises(NotFoundError, match="404"):
        download(files, tmp_path, client=client)
    _settle(emulator)
    assert not local_path(tmp_path, missing).exists()
    for f in files:  # the others are complete or resumable, never a short final file
        final = local_path(tmp_path, f)
        assert not final.exists() or final.stat().st_size == f.size


def test_a_stale_listing_is_relisted_and_the_file_fetched_again(
    client: AEPClient, files: list[BatchFile], export: ExportBatch, emulator: Emulator,
    tmp_path: Path, sleeps: list[float]
) -> None:
    emulator.counters.reset()  # the fixture's planning
    emulator.faults.add(Fault(kind="stale_listing", path=files[1].file_id))
    report = download(files, tmp_path, client=client)
    _assert_identical(tmp_path, emulator, export)
    assert (report.downloaded, report.retries) == (4, 1)  # the 404 counts as one retry
    served = emulator.counters.snapshot()
    assert served["faults"] == {"stale_listing": 1}
    assert served["requests_by_kind"]["batch_files"] == 1  # one re-list
    assert served["requests_by_kind"]["file"] == 5
    assert len(sleeps) == 1  # through the retry policy's backoff


def test_a_file_gone_from_its_batch_stops_with_batch_changed(
    client: AEPClient, files: list[BatchFile], emulator: Emulator, tmp_path: Path
) -> None:
    name = "part-99999-removed-c000.snappy.parquet"
    ghost = dataclasses.replace(files[0], name=name,
                                url=files[0].url.split("?")[0] + f"?path={name}")
    with pytest.raises(BatchChangedError, match="changed since it was planned; plan again") as info:
        download([ghost], tmp_path, client=client)
    assert info.value.batch_id == ghost.batch_id and ghost.uri in str(info.value)
    assert "no longer listed" in str(info.value)
    assert not local_path(tmp_path, ghost).exists()
    assert not list(tmp_path.rglob("*.part"))  # nothing was received, nothing is kept


def test_part_longer_than_listed_and_wrong_size_final_are_replaced(
    client: AEPClient, files: list[BatchFile], emulator: Emulator, tmp_path: Path,
    stored: Callable[[BatchFile], bytes],
) -> None:
    long_one, stale = files[0], files[1]
    final = local_path(tmp_path, long_one)
    final.parent.mkdir(parents=True)
    final.with_name(final.name + ".part").write_bytes(b"x" * (long_one.size + 100))
    stale_final = local_path(tmp_path, stale)
    stale_final.parent.mkdir(parents=True)
    stale_final.write_bytes(b"not the file")
    assert present_bytes([long_one, stale], tmp_path) == 0

    report = download([long_one, stale], tmp_path, client=client)
    assert (report.downloaded, report.resumed, report.skipped) == (2, 0, 0)
    assert [r.range for r in emulator.counters.log("file")] == [None, None]
    assert final.read_bytes() == stored(long_one)
    assert stale_final.read_bytes() == stored(stale)
    assert not list(tmp_path.rglob("*.part"))


def test_body_span_decides_resume_or_restart() -> None:
    assert body_span(206, "bytes 100-999/1000", 100, 1000) == (100, 1000)
    assert body_span(206, "bytes 100-499/*", 100, 1000) == (100, 500)  # a capped range is fine
    assert body_span(200, None, 100, 1000) == (0, 1000)  # Range ignored: restart from 0
    assert body_span(200, None, 0, 1000) == (0, 1000)
    with pytest.raises(IncompleteReadError, match="changed since it was listed"):
        body_span(206, "bytes 100-1099/1100", 100, 1000)
    with pytest.raises(IncompleteReadError, match="the server sent"):
        body_span(206, "bytes 0-999/1000", 100, 1000)
    with pytest.raises(IncompleteReadError, match="Content-Range"):
        body_span(206, None, 100, 1000)
    with pytest.raises(IncompleteReadError, match="204"):
        body_span(204, None, 0, 1000)


class _IgnoresRange(BaseHTTPRequestHandler):
    body = bytes(range(256)) * 400
    ranges: ClassVar[list[str | None]] = []

    def do_GET(self) -> None:
        type(self).ranges.append(self.headers.get("Range"))
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def ignores_range() -> Iterator[str]:
    _IgnoresRange.ranges = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _IgnoresRange)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_server_ignoring_range_restarts_from_zero(ignores_range: str, tmp_path: Path) -> None:
    body = _IgnoresRange.body
    settings = Settings(client_id="id", org_id="O@AdobeOrg", access_token="t",
                        platform_url=ignores_range)
    f = BatchFile("B1", "F1-1", "part-0.parquet", len(body),
                  f"{ignores_range}/data/foundation/export/files/F1-1?path=part-0.parquet")
    final = local_path(tmp_path, f)
    final.parent.mkdir(parents=True)
    half = len(body) // 2
    final.with_name(final.name + ".part").write_bytes(b"?" * half)  # not even the right bytes
    seen: list[int] = []
    with AEPClient(settings) as client:
        report = download([f], tmp_path, client=client, progress=seen.append)
    assert _IgnoresRange.ranges == [f"bytes={half}-"]
    assert final.read_bytes() == body
    assert (report.downloaded, report.resumed, report.bytes_transferred) == (1, 0, len(body))
    assert seen[0] == -half and sum(seen) == len(body) - half  # the bar went back, then on


def test_stream_that_never_recovers_raises_and_keeps_no_final_file(
    client: AEPClient, files: list[BatchFile], emulator: Emulator, tmp_path: Path,
    stored: Callable[[BatchFile], bytes],
) -> None:
    emulator.faults.add(Fault(kind="reset_mid_body", route="file", times=None))
    one = files[0]
    with pytest.raises(DownloadError) as info:
        download([one], tmp_path, client=client, max_resumes=5)
    err = info.value
    assert isinstance(err, TransportError) and isinstance(err, AEPError)
    assert err.attempts == 6 and err.file == one
    text = str(err)
    assert one.name in text and "6 attempt(s)" in text and "Connection reset" in text
    final = local_path(tmp_path, one)
    part = final.with_name(final.name + ".part")
    assert not final.exists()
    assert 0 < part.stat().st_size == err.bytes_on_disk < one.size
    # the whole batch: every file fails, none is left under its final name
    with pytest.raises(DownloadError):
        download(files, tmp_path, client=client)
    _settle(emulator)
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and not p.name.endswith(".part")]

    # once the network heals, a re-run resumes from the bytes kept
    emulator.faults.clear()
    emulator.counters.reset()
    kept = part.stat().st_size
    report = download([one], tmp_path, client=client)
    assert report.resumed == 1 and report.bytes_transferred == one.size - kept
    assert [r.range for r in emulator.counters.log("file")] == [f"bytes={kept}-"]
    assert final.read_bytes() == stored(one)


def test_unsafe_names_and_empty_files(client: AEPClient, emulator: Emulator,
                                      tmp_path: Path) -> None:
    evil = BatchFile("B1", "F1-1", "../../escape.parquet", 3, "https://x/y")
    with pytest.raises(AEPError, match="not a plain file name"):
        download([evil], tmp_path, client=client)
    assert not list(tmp_path.parent.glob("escape.parquet"))
    empty = BatchFile("B1", "F1-1", "empty.parquet", 0,
                      client.settings.platform_url + "/data/foundation/export/files/F1-1?path=e")
    report = download([empty], tmp_path, client=client)
    assert local_path(tmp_path, empty).read_bytes() == b"" and report.downloaded == 1
    assert emulator.counters.requests("file") == 0
    assert download([], tmp_path).files == 0


@pytest.fixture
def env(server: EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in server.client_env().items():
        monkeypatch.setenv(key, value)


def test_cli_download(env: None, export: ExportBatch, emulator: Emulator, tmp_path: Path,
                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["download", export.batch_id, "--to", str(tmp_path), "--workers", "2"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "4 files: 4 downloaded;" in out
    _assert_identical(tmp_path, emulator, export)
    assert main(["download", export.batch_id, "--to", str(tmp_path)]) == 0
    assert "4 already complete" in " ".join(capsys.readouterr().out.split())


def test_cli_download_failure_is_one_line(env: None, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["download", "01NOSUCHBATCH0000000000000", "--to", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "404" in err and "Traceback" not in err


def test_cli_refuses_a_file_as_destination(env: None, export: ExportBatch,
                                           tmp_path: Path) -> None:
    target = tmp_path / "a-file"
    target.write_text("x")
    assert main(["download", export.batch_id, "--to", str(target)]) == 2  # usage error

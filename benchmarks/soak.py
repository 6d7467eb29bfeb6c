"""Soak: concurrent readers against the emulator, through faults, for a fixed time (issue 6).

``python -m benchmarks.soak [--readers 8] [--seconds 60] [--profiles 200000] [--fault-rate 0.1]
[--seed 7] [--json out.json]``

1. The emulator serves a synthetic export in its own process on 127.0.0.1 (``aep-io emulator
   serve``); the data is generated once and cached in ``.bench-cache/`` (or into ``--data``).
2. With no fault active, every engine reads the export once: its row count and an
   order-independent checksum of every value are the **reference** (and the warm-up). The
   download's reference is the SHA-256 of every file as the emulator stores it.
3. Faults go on through the emulator's HTTP API (``POST /_emulator/faults``): ``--fault-rate``
   spread over every kind (429 with ``Retry-After: 0``, 500, 502, 503, 504, latency, reset,
   reset mid-body, truncated body, Range ignored, stale listing, token expired), seeded.
4. ``--readers`` readers (processes by default, so that they do not share one GIL; ``--mode
   threads`` runs them as threads of this process) loop over the engines round-robin until
   the deadline: ``scan_batches(...).collect()`` (polars), ``read_arrow``, ``to_duckdb`` + a
   checksum query, and a resumable ``download`` to a temporary directory compared byte for
   byte with the served files. Every read must give exactly the reference; a read that
   raises is a failure.
5. The emulator's RSS is sampled every second. Memory is *stable* when the RSS at the end is
   within +10% and within +50 MB of the RSS at the end of the first quarter of the soak.

Exits non-zero on any wrong read, lost row, failed (or hung) read, or unstable memory.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import multiprocessing
import os
import queue
import shutil
import statistics
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from rich.console import Console
from rich.table import Table

from benchmarks.servers import EmulatorProcess

if TYPE_CHECKING:
    from aep_io.emulator.admin import AdminClient

console = Console(width=150)

ENGINES: tuple[str, ...] = ("polars", "arrow", "duckdb", "download")

# An order-independent checksum of every value (as in tests/test_faults.py): float sums would
# depend on the summation order, hashes summed as HUGEINT do not.
CHECKSUM = ("SELECT count(*), sum(hash(identityMap)), sum(hash(person)), "
            "sum(hash(personalEmail)), sum(hash(homeAddress)), sum(hash(_acme)), "
            "sum(hash(segmentMembership)) FROM audience")

# Memory is stable when the end RSS is within both bounds of the RSS at the end of the 1st quarter.
STABLE_RATIO = 1.10
STABLE_MB = 50.0
# A reader still busy this long after the deadline is reported as hung (and the soak fails).
HANG_GRACE = 300.0


# -- what a read produces -----------------------------------------------------------------------
@dataclass
class ReadResult:
    """One read by one reader: what it returned, or how it failed."""

    reader: int
    engine: str
    started: float  # seconds since the soak started
    seconds: float
    rows: int = 0
    checksum: list[str] = field(default_factory=list)
    bytes: int = 0  # decoded Arrow bytes (in-memory engines) or bytes transferred (download)
    resumes: int = 0  # download streams resumed mid-file
    error: str | None = None  # "Type: message" when the read raised
    trace: str | None = None


@dataclass
class ReaderSpec:
    """Everything a reader needs (picklable: readers may be processes)."""

    reader: int
    env: dict[str, str]
    batch_id: str
    seconds: float
    scratch: str
    retry: dict[str, float]


_DATA = r"^/data/"
#: Every fault kind the soak injects, by label (``--exclude`` takes these labels).
FAULT_LABELS: dict[str, dict[str, Any]] = {
    "429": {"kind": "status", "status": 429, "headers": {"Retry-After": "0"}, "path": _DATA},
    "500": {"kind": "status", "status": 500, "path": _DATA},
    "502": {"kind": "status", "status": 502, "path": _DATA},
    "503": {"kind": "status", "status": 503, "path": _DATA},
    "504": {"kind": "status", "status": 504, "path": _DATA},
    "latency": {"kind": "latency", "delay": 0.01, "path": _DATA},
    "reset": {"kind": "reset", "path": _DATA},
    "reset_mid_body": {"kind": "reset_mid_body", "path": _DATA},
    "truncate": {"kind": "truncate", "path": _DATA},
    "expire_token": {"kind": "expire_token", "path": _DATA},
    "ignore_range": {"kind": "ignore_range", "route": "file"},
    "stale_listing": {"kind": "stale_listing", "route": "file"},
}


class _Queue(Protocol):
    def put(self, item: Any) -> None: ...


class _Barrier(Protocol):
    def wait(self, timeout: float | None = None) -> int: ...


def _retry_policy(spec: dict[str, float]) -> Any:
    from aep_io import RetryPolicy

    return RetryPolicy(max_attempts=int(spec["max_attempts"]), max_total=spec["max_total"],
                       initial_backoff=spec["initial_backoff"], max_backoff=spec["max_backoff"],
                       max_retry_after=spec["max_retry_after"])


def _arrow_checksum(table: Any) -> tuple[int, list[str]]:
    import duckdb

    con = duckdb.connect()
    try:
        con.register("audience", table)
        row = con.sql(CHECKSUM).fetchall()[0]
    finally:
        con.close()
    return int(row[0]), [str(v) for v in row[1:]]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _read_polars(client: Any, batch_id: str, scratch: Path) -> tuple[int, list[str], int, int]:
    from aep_io import scan_batches

    frame = scan_batches(batch_id, client=client).collect()
    table = frame.to_arrow()
    rows, checksum = _arrow_checksum(table)
    if rows != frame.height:
        checksum.append(f"height={frame.height}")
    return rows, checksum, table.nbytes, 0


def _read_arrow(client: Any, batch_id: str, scratch: Path) -> tuple[int, list[str], int, int]:
    from aep_io import read_arrow

    table = read_arrow(batch_id, client=client)
    rows, checksum = _arrow_checksum(table)
    if rows != table.num_rows:
        checksum.append(f"num_rows={table.num_rows}")
    return rows, checksum, table.nbytes, 0


def _read_duckdb(client: Any, batch_id: str, scratch: Path) -> tuple[int, list[str], int, int]:
    import duckdb

    from aep_io import to_duckdb

    con = to_duckdb(batch_id, client=client, con=duckdb.connect())
    try:
        row = con.sql(CHECKSUM).fetchall()[0]
    finally:
        con.close()
    return int(row[0]), [str(v) for v in row[1:]], 0, 0


def _download_checksum(root: Path, batch_id: str) -> tuple[int, list[str]]:
    """Rows (from the footers) and ``file_id/name=sha256`` of every file under ``root/batch``."""
    import pyarrow.parquet as pq

    rows = 0
    sums: list[str] = []
    for path in sorted((root / batch_id).glob("*/*")):
        if path.name.endswith(".part"):
            sums.append(f"{path.parent.name}/{path.name}=PARTIAL")
            continue
        sums.append(f"{path.parent.name}/{path.name}={_sha256(path)}")
        try:
            rows += pq.ParquetFile(path).metadata.num_rows
        except Exception as exc:  # a corrupt file: its rows are lost, the hash says why
            sums.append(f"{path.name}: {type(exc).__name__}")
    return rows, sums


def _read_download(client: Any, batch_id: str, scratch: Path) -> tuple[int, list[str], int, int]:
    from aep_io import download

    dest = Path(tempfile.mkdtemp(prefix="dl-", dir=scratch))
    try:
        report = download(batch_id, dest, client=client)
        rows, sums = _download_checksum(dest, batch_id)
    finally:
        shutil.rmtree(dest, ignore_errors=True)
    return rows, sums, report.bytes_transferred, report.retries


READERS: dict[str, Callable[[Any, str, Path], tuple[int, list[str], int, int]]] = {
    "polars": _read_polars,
    "arrow": _read_arrow,
    "duckdb": _read_duckdb,
    "download": _read_download,
}


def one_read(reader: int, engine: str, client: Any, batch_id: str, scratch: Path,
             t0: float) -> ReadResult:
    """Read the whole export once with ``engine``; never raises (errors are in the result)."""
    started = time.monotonic()
    result = ReadResult(reader, engine, started - t0, 0.0)
    try:
        result.rows, result.checksum, result.bytes, result.resumes = READERS[engine](
            client, batch_id, scratch)
    except Exception as exc:
        result.error = f"{type(exc).__name__}: {exc}"[:600]
        result.trace = traceback.format_exc(limit=12)[-4000:]
    result.seconds = time.monotonic() - started
    return result


def reader_loop(spec: ReaderSpec, out: _Queue, barrier: _Barrier) -> None:
    """A reader: wait for the others, then read round-robin until the deadline.

    Every read is put on ``out`` as it starts (``("start", reader, engine, t)``) and ends
    (``("done", ReadResult-as-dict)``), so the soak knows about a read that never returns.
    """
    import duckdb  # noqa: F401 - imported before the clock starts
    import polars  # noqa: F401
    import pyarrow.parquet  # noqa: F401

    from aep_io import AEPClient, Settings

    scratch = Path(spec.scratch) / f"reader-{spec.reader}"
    scratch.mkdir(parents=True, exist_ok=True)
    client = AEPClient(Settings.from_env(spec.env), retry=_retry_policy(spec.retry))
    try:
        barrier.wait(timeout=300)
        t0 = time.monotonic()
        deadline = t0 + spec.seconds
        i = spec.reader  # readers start on different engines
        while time.monotonic() < deadline:
            engine = ENGINES[i % len(ENGINES)]
            i += 1
            out.put(("start", spec.reader, engine, time.monotonic() - t0))
            result = one_read(spec.reader, engine, client, spec.batch_id, scratch, t0)
            out.put(("done", asdict(result)))
    except Exception as exc:  # the reader itself broke (not a read): report it, then stop
        out.put(("crash", spec.reader, f"{type(exc).__name__}: {exc}", traceback.format_exc()))
    finally:
        client.close()
        out.put(("exit", spec.reader))


# -- the emulator: admin calls, faults, memory --------------------------------------------------
def fault_specs(rate: float, exclude: Sequence[str] = ()) -> list[dict[str, Any]]:
    """``rate`` spread evenly over every fault kind (as tests/test_faults.py ``_faults_on``).

    Statuses, resets, truncation, latency and token expiry hit every Data Access request;
    ignored ranges and stale listings (a listed file that answers 404) hit the file downloads.
    ``exclude`` names kinds to leave out (labels of :data:`FAULT_LABELS`).
    """
    unknown = set(exclude) - set(FAULT_LABELS)
    if unknown:
        raise ValueError(f"unknown fault kind(s) {sorted(unknown)}; one of {FAULT_LABELS}")
    kinds = [dict(FAULT_LABELS[label]) for label in FAULT_LABELS if label not in exclude]
    for spec in kinds:
        spec.update(rate=rate / len(kinds) if kinds else 0.0, times=None)
    return kinds


def faults_on(admin: AdminClient, rate: float, seed: int,
              exclude: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Replace the emulator's faults with ``fault_specs(...)``, seeded; returns what is active."""
    admin.clear_faults()
    for spec in fault_specs(rate, exclude):
        admin.add_fault(spec)
    admin.reseed(seed)
    return [f.to_dict() for f in admin.faults()]


class MemorySampler:
    """Samples a process's RSS (and open fds, threads) every ``interval`` seconds in a thread."""

    def __init__(self, pid: int, interval: float = 1.0) -> None:
        import psutil

        self.proc = psutil.Process(pid)
        self.interval = interval
        self.samples: list[tuple[float, float, int, int]] = []  # (t, rss MB, fds, threads)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._t0 = 0.0

    def start(self) -> None:
        self._t0 = time.monotonic()
        self._sample()
        self._thread.start()

    def _sample(self) -> None:
        with self.proc.oneshot():
            rss = self.proc.memory_info().rss / 2**20
            fds = self.proc.num_fds()
            threads = self.proc.num_threads()
        self.samples.append((time.monotonic() - self._t0, rss, fds, threads))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with contextlib.suppress(Exception):
                self._sample()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        with contextlib.suppress(Exception):
            self._sample()

    def cpu_seconds(self) -> float:
        times = self.proc.cpu_times()
        return float(times.user + times.system)

    def figures(self, soak_seconds: float) -> dict[str, Any]:
        """start, end of 1st quarter, max, end, 2nd-half slope (MB/min), and the verdict."""
        s = self.samples
        quarter = min(s, key=lambda x: abs(x[0] - soak_seconds / 4))
        half = [x for x in s if x[0] >= soak_seconds / 2] or s[-2:]
        slope = 0.0
        if len(half) >= 2 and len({x[0] for x in half}) >= 2:
            slope = statistics.linear_regression([x[0] for x in half],
                                                 [x[1] for x in half]).slope * 60
        end, q1 = s[-1][1], quarter[1]
        limit = min(q1 * STABLE_RATIO, q1 + STABLE_MB)
        return {
            "samples": len(s),
            "start_mb": round(s[0][1], 1),
            "quarter_mb": round(q1, 1),
            "max_mb": round(max(x[1] for x in s), 1),
            "end_mb": round(end, 1),
            "limit_mb": round(limit, 1),
            "slope_second_half_mb_per_min": round(slope, 2),
            "stable": end <= limit,
            "fds_start_end": [s[0][2], s[-1][2]],
            "threads_start_end": [s[0][3], s[-1][3]],
            "series": [[round(t, 1), round(m, 1)] for t, m, _, _ in s],
        }


# -- data and references ------------------------------------------------------------------------
def prepare_data(profiles: int, data: str | None) -> tuple[str, str, int]:
    """(emulator data dir, batch id, bytes): cached in .bench-cache/ or generated into ``data``."""
    if data is None:
        from benchmarks.data import BASE_PROFILES, dataset

        meta = dataset(profiles / BASE_PROFILES)
        return meta["emulator_dir"], meta["batch_id"], int(meta["bytes"])
    from aep_io.emulator import Emulator

    meta_path = Path(data) / "soak-meta.json"
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta["profiles"] == profiles:
            return data, meta["batch_id"], int(meta["bytes"])
        raise SystemExit(f"{data} holds {meta['profiles']} profiles, not {profiles}")
    emulator = Emulator(data)
    try:
        export = emulator.add_synthetic_export(profiles, parts=8, row_groups_per_part=16)
    finally:
        emulator.close()
    meta = {"profiles": profiles, "batch_id": export.batch_id, "bytes": export.size}
    meta_path.write_text(json.dumps(meta))
    return data, export.batch_id, export.size


def served_checksum(data_dir: str, files: Sequence[Any]) -> tuple[int, list[str]]:
    """Rows and ``file_id/name=sha256`` of the files as the emulator stores (serves) them."""
    import pyarrow.parquet as pq

    from aep_io.emulator.store import Store

    store = Store(data_dir)  # the catalog is SQLite in WAL mode: reading it alongside is safe
    try:
        rows = 0
        sums: list[str] = []
        for f in sorted(files, key=lambda f: (f.file_id, f.name)):
            stored = store.physical_file(f.file_id, f.name)
            if stored is None:
                raise RuntimeError(f"the emulator does not store {f.file_id}/{f.name}")
            sums.append(f"{f.file_id}/{f.name}={_sha256(stored.path)}")
            rows += pq.ParquetFile(stored.path).metadata.num_rows
    finally:
        store.close()
    return rows, sums


# -- the soak -----------------------------------------------------------------------------------
@dataclass
class EngineStats:
    reads: int = 0
    ok: int = 0
    wrong: int = 0
    lost_rows: int = 0
    extra_rows: int = 0
    failed: int = 0
    rows: int = 0
    bytes: int = 0
    resumes: int = 0
    seconds: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)

    def add(self, r: ReadResult, reference: tuple[int, list[str]]) -> str:
        self.reads += 1
        self.seconds.append(r.seconds)
        if r.error is not None:
            self.failed += 1
            self.errors[r.error[:300]] += 1
            return "failed"
        self.rows += r.rows
        self.bytes += r.bytes
        self.resumes += r.resumes
        if (r.rows, r.checksum) == (reference[0], list(reference[1])):
            self.ok += 1
            return "ok"
        self.wrong += 1
        self.lost_rows += max(0, reference[0] - r.rows)
        self.extra_rows += max(0, r.rows - reference[0])
        return "wrong"

    def figures(self) -> dict[str, Any]:
        return {
            "reads": self.reads, "ok": self.ok, "wrong": self.wrong,
            "lost_rows": self.lost_rows, "extra_rows": self.extra_rows, "failed": self.failed,
            "rows": self.rows, "bytes": self.bytes, "resumes": self.resumes,
            "seconds_median": round(statistics.median(self.seconds), 3) if self.seconds else None,
            "seconds_max": round(max(self.seconds), 3) if self.seconds else None,
            "errors": dict(self.errors),
        }


def _start_readers(mode: str, specs: list[ReaderSpec]) -> tuple[Any, Any, list[Any]]:
    """Start the readers (blocked on a barrier the caller also waits on)."""
    parties = len(specs) + 1
    if mode == "threads":
        q: Any = queue.Queue()
        barrier: Any = threading.Barrier(parties)
        workers: list[Any] = [threading.Thread(target=reader_loop, args=(s, q, barrier),
                                               name=f"reader-{s.reader}", daemon=True)
                              for s in specs]
    else:
        ctx = multiprocessing.get_context("spawn")
        q = ctx.Queue()
        barrier = ctx.Barrier(parties)
        workers = [ctx.Process(target=reader_loop, args=(s, q, barrier),
                               name=f"reader-{s.reader}", daemon=True) for s in specs]
    for w in workers:
        w.start()
    return q, barrier, workers


def _drain(q: Any, until: float, on_event: Callable[[tuple[Any, ...]], None],
           done: Callable[[], bool]) -> None:
    while not done() and time.monotonic() < until:
        try:
            event = q.get(timeout=0.5)
        except queue.Empty:
            continue
        on_event(event)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the soak; return its figures (see the module docstring)."""
    from aep_io import AEPClient, Settings, plan_files
    from aep_io.emulator.admin import AdminClient

    data_dir, batch_id, size = prepare_data(args.profiles, args.data)
    console.print(f"data: {args.profiles:,} profiles, {size / 1e6:.1f} MB, batch {batch_id} "
                  f"({data_dir})")
    retry = {"max_attempts": 10, "max_total": 60.0, "initial_backoff": 0.005,
             "max_backoff": 0.1, "max_retry_after": 0.1}
    figures: dict[str, Any] = {
        "config": {"readers": args.readers, "seconds": args.seconds, "profiles": args.profiles,
                   "bytes": size, "fault_rate": args.fault_rate, "seed": args.seed,
                   "exclude": args.exclude, "mode": args.mode, "retry": retry,
                   "cpus": os.cpu_count(), "load_average": os.getloadavg()},
    }
    scratch = tempfile.mkdtemp(prefix="aep-soak-")
    log_path = str(Path(scratch) / "emulator.log")
    emulator = EmulatorProcess(data_dir, log_path=log_path)
    admin = AdminClient(emulator.url)
    sampler: MemorySampler | None = None
    try:
        # 1. references, fault-free (also the warm-up of the emulator and of this process)
        admin.clear_faults()
        references: dict[str, tuple[int, list[str]]] = {}
        with AEPClient(Settings.from_env(emulator.env()), retry=_retry_policy(retry)) as client:
            files = plan_files(batch_id, client=client)
            served = served_checksum(data_dir, files)
            for engine in ENGINES:
                r = one_read(-1, engine, client, batch_id, Path(scratch), time.monotonic())
                if r.error is not None:
                    raise RuntimeError(f"fault-free {engine} read failed: {r.error}\n{r.trace}")
                references[engine] = (r.rows, r.checksum)
                console.print(f"reference {engine}: {r.rows:,} rows in {r.seconds:.2f}s")
        if references["download"] != served:
            raise RuntimeError("the fault-free download differs from the files the emulator "
                               f"stores:\n{references['download'][1]}\n{served[1]}")
        sums = {e: references[e] for e in ("polars", "arrow", "duckdb")}
        figures["reference"] = {
            "rows": served[0], "files": len(files),
            "engines_agree": len({(n, tuple(c)) for n, c in sums.values()}) == 1,
            "checksum": dict(zip(("identityMap", "person", "personalEmail", "homeAddress",
                                  "_acme", "segmentMembership"), references["duckdb"][1],
                                 strict=True)),
        }
        if any(n != served[0] for n, _ in references.values()):
            raise RuntimeError(f"fault-free row counts differ: {references}")

        # 2. faults on (after the reference), clean counters
        active = (faults_on(admin, args.fault_rate, args.seed, args.exclude)
                  if args.fault_rate > 0 else [])
        figures["faults_active"] = active
        admin.reset_counters()

        # 3. readers
        specs = [ReaderSpec(i, emulator.env(), batch_id, args.seconds, scratch, retry)
                 for i in range(args.readers)]
        q, barrier, workers = _start_readers(args.mode, specs)
        sampler = MemorySampler(emulator.pid)
        barrier.wait(timeout=300)
        sampler.start()
        cpu0 = sampler.cpu_seconds()
        t0 = time.monotonic()
        console.print(f"soak: {args.readers} readers ({args.mode}) for {args.seconds:g}s, "
                      f"fault rate {args.fault_rate:g}")
        stats = {e: EngineStats() for e in ENGINES}
        in_flight: dict[int, tuple[str, float]] = {}
        exited: set[int] = set()
        crashes: list[dict[str, str]] = []
        bad: list[dict[str, Any]] = []
        traces: dict[str, str] = {}

        def on_event(event: tuple[Any, ...]) -> None:
            kind = event[0]
            if kind == "start":
                in_flight[event[1]] = (event[2], event[3])
            elif kind == "done":
                r = ReadResult(**event[1])
                in_flight.pop(r.reader, None)
                verdict = stats[r.engine].add(r, references[r.engine])
                if verdict != "ok":
                    item = {"verdict": verdict, "reader": r.reader, "engine": r.engine,
                            "t": round(r.started, 2), "seconds": round(r.seconds, 2),
                            "rows": r.rows, "error": r.error}
                    if verdict == "wrong":
                        item["checksum"] = r.checksum
                    bad.append(item)
                    if r.trace and r.error:
                        traces.setdefault(f"{r.engine}: {r.error.split(':')[0]}", r.trace)
                    console.print(f"[red]{verdict}[/] read: reader {r.reader} {r.engine} at "
                                  f"{r.started:.1f}s: {r.error or f'{r.rows:,} rows'}")
            elif kind == "crash":
                crashes.append({"reader": event[1], "error": event[2], "trace": event[3]})
            elif kind == "exit":
                exited.add(event[1])

        _drain(q, t0 + args.seconds + HANG_GRACE, on_event,
               lambda: len(exited) == args.readers)
        soak_seconds = time.monotonic() - t0
        sampler.stop()
        cpu = sampler.cpu_seconds() - cpu0
        hung = [{"reader": r, "engine": e, "started": round(t, 1)}
                for r, (e, t) in in_flight.items() if r not in exited]
        for w in workers:
            w.join(timeout=10)  # a reader process exits once its last requests are done
            if isinstance(w, multiprocessing.process.BaseProcess) and w.is_alive():
                w.terminate()  # hung (or still retrying requests of a failed read)
                w.join(timeout=5)

        # 4. the emulator's own counters (faults off first, so these calls are clean)
        admin.clear_faults()
        counters = admin.counters()
        totals = {k: sum(getattr(s, k) for s in stats.values())
                  for k in ("reads", "ok", "wrong", "lost_rows", "extra_rows", "failed",
                            "rows", "bytes", "resumes")}
        memory = sampler.figures(soak_seconds)
        figures.update({
            "soak_seconds": round(soak_seconds, 1),
            "load_average_end": os.getloadavg(),
            "engines": {e: s.figures() for e, s in stats.items()},
            "totals": totals,
            "rows_per_second": round(totals["rows"] / soak_seconds),
            "bad_reads": bad,
            "traces": traces,
            "hung": hung,
            "crashes": crashes,
            "emulator": {"memory": memory, "cpu_seconds": round(cpu, 1),
                         "counters": counters},
        })
        failures = []
        if totals["wrong"] or totals["lost_rows"]:
            failures.append(f"{totals['wrong']} wrong reads, {totals['lost_rows']} lost rows")
        if totals["failed"]:
            failures.append(f"{totals['failed']} failed reads")
        if hung or crashes:
            failures.append(f"{len(hung)} hung reads, {len(crashes)} crashed readers")
        if not memory["stable"]:
            failures.append(f"emulator RSS {memory['quarter_mb']} -> {memory['end_mb']} MB "
                            f"(limit {memory['limit_mb']} MB)")
        figures["failures"] = failures
        figures["passed"] = not failures
        return figures
    finally:
        if sampler is not None and sampler._thread.is_alive():
            sampler.stop()
        admin.close()
        emulator.stop()
        with contextlib.suppress(OSError):
            tail = Path(log_path).read_text(errors="replace")[-4000:]
            figures["emulator_log_tail"] = tail
            if "passed" not in figures and tail.strip():  # the soak itself broke
                console.print(f"[dim]emulator log (tail):\n{tail}[/]")
        shutil.rmtree(scratch, ignore_errors=True)


def print_figures(f: dict[str, Any]) -> None:
    cfg = f["config"]
    table = Table(title=f"soak: {cfg['readers']} readers ({cfg['mode']}), {f['soak_seconds']}s, "
                        f"{cfg['profiles']:,} profiles ({cfg['bytes'] / 1e6:.1f} MB), "
                        f"fault rate {cfg['fault_rate']:g}, seed {cfg['seed']}"
                        + (f" (without {', '.join(cfg['exclude'])})" if cfg["exclude"] else ""))
    for col in ("engine", "reads", "ok", "wrong", "lost rows", "failed", "rows read",
                "MB (Arrow / on disk)", "resumed streams", "s/read (median, max)"):
        table.add_column(col, justify="left" if col == "engine" else "right")
    for engine, s in f["engines"].items():
        table.add_row(engine, str(s["reads"]), str(s["ok"]),
                      _red(s["wrong"]), _red(s["lost_rows"]), _red(s["failed"]),
                      f"{s['rows']:,}", f"{s['bytes'] / 1e6:,.0f}" if s["bytes"] else "-",
                      str(s["resumes"]),
                      f"{s['seconds_median']} / {s['seconds_max']}")
    t = f["totals"]
    table.add_row("all", str(t["reads"]), str(t["ok"]), _red(t["wrong"]), _red(t["lost_rows"]),
                  _red(t["failed"]), f"{t['rows']:,}", f"{t['bytes'] / 1e6:,.0f}",
                  str(t["resumes"]), f"{f['rows_per_second']:,} rows/s", end_section=True)
    console.print(table)
    m = f["emulator"]["memory"]
    mem = Table(title="emulator process")
    for col in ("RSS start MB", "RSS at 1/4 MB", "RSS max MB", "RSS end MB", "limit MB",
                "slope 2nd half MB/min", "stable", "fds", "threads", "CPU s"):
        mem.add_column(col, justify="right")
    mem.add_row(str(m["start_mb"]), str(m["quarter_mb"]), str(m["max_mb"]), str(m["end_mb"]),
                str(m["limit_mb"]), str(m["slope_second_half_mb_per_min"]),
                "[green]yes[/]" if m["stable"] else "[red]NO[/]",
                "→".join(map(str, m["fds_start_end"])),
                "→".join(map(str, m["threads_start_end"])),
                str(f["emulator"]["cpu_seconds"]))
    console.print(mem)
    c = f["emulator"]["counters"]
    faults = c.get("faults", {})
    console.print(
        f"emulator served {c.get('requests', 0):,} requests, "
        f"{c.get('bytes_sent', 0) / 1e6:,.0f} MB; by kind: "
        + ", ".join(f"{k} {v:,}" for k, v in sorted(c.get("requests_by_kind", {}).items())))
    total_faults = sum(faults.values())
    share = total_faults / c["requests"] if c.get("requests") else 0.0
    console.print(f"faults injected: {total_faults:,} ({100 * share:.1f}% of requests): "
                  + ", ".join(f"{k} {v:,}" for k, v in sorted(faults.items())))
    for engine, s in f["engines"].items():
        for error, n in s["errors"].items():
            console.print(f"[red]{engine} failed x{n}:[/] {error}")
    for key, trace in f["traces"].items():
        console.print(f"[dim]first traceback of {key}:\n{trace}[/]")
    load0, load1 = cfg["load_average"][0], f["load_average_end"][0]
    console.print(f"machine: {cfg['cpus']} CPUs, load average {load0:.1f} before, "
                  f"{load1:.1f} after")
    if f["passed"]:
        console.print("[bold green]PASS[/]: no wrong or lost rows, no failed read, "
                      "emulator memory stable")
    else:
        console.print("[bold red]FAIL[/]: " + "; ".join(f["failures"]))


def _red(n: int) -> str:
    return f"[red]{n}[/]" if n else "0"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--readers", type=int, default=8, help="concurrent readers (default 8)")
    parser.add_argument("--seconds", type=float, default=60.0, help="soak duration (default 60)")
    parser.add_argument("--profiles", type=int, default=200_000, help="export size (200000)")
    parser.add_argument("--fault-rate", type=float, default=0.1,
                        help="share of requests faulted, spread over every kind (default 0.1)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the faults (default 7)")
    parser.add_argument("--exclude", action="append", default=[], choices=list(FAULT_LABELS),
                        metavar="KIND", help="leave a fault kind out (repeatable): "
                        + ", ".join(FAULT_LABELS))
    parser.add_argument("--mode", choices=("processes", "threads"), default="processes",
                        help="readers as processes (default) or as threads of this process")
    parser.add_argument("--data", default=None,
                        help="generate into this directory instead of the .bench-cache/ cache")
    parser.add_argument("--json", default=None, help="write the figures to this file")
    args = parser.parse_args(argv)
    if args.readers < 1 or args.seconds <= 0 or args.profiles < 1:
        parser.error("--readers, --seconds and --profiles must be positive")
    if not 0.0 <= args.fault_rate <= 1.0:
        parser.error("--fault-rate must lie in [0, 1]")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    figures = run(args)
    print_figures(figures)
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2, default=str))
        console.print(f"wrote {args.json}")
    return 0 if figures["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())

"""Background work of the emulator: segment and export jobs run in a small thread pool.

Job records live in the Catalog store (``store.put``/``get`` with kinds ``segmentJob`` and
``exportJob``) so they survive restarts; :class:`JobRunner` serialises every read-modify-write
of a record (:meth:`JobRunner.update`), runs the work, and stops cleanly on
:meth:`JobRunner.close` (no new work, sleeps cut short, running jobs finish their step).

A job that a previous emulator process left unfinished is reported FAILED the first time it
is read (:meth:`JobRunner.settle_orphan`).
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aep_io.emulator.store import Store, Tenant, now_ms

__all__ = ["JobCancelled", "JobRunner", "next_number"]

log = logging.getLogger("aep_io.emulator")

_COUNTERS = Tenant("_emulator", "counters")
_counter_lock = threading.Lock()


def next_number(store: Store, name: str, start: int = 1) -> int:
    """The next value of a persistent counter (export job ids, compute job ids)."""
    with _counter_lock:
        record = store.get("counter", _COUNTERS, name) or {"next": start}
        value = int(record["next"])
        store.put("counter", _COUNTERS, name, {"next": value + 1, "created": 1})
        return value


class JobCancelled(Exception):
    """Raised inside a job's work when a DELETE asked for its cancellation."""


class JobRunner:
    """Runs job functions in background threads; owns the record-update lock."""

    def __init__(self, store: Store, *, workers: int = 2) -> None:
        self.store = store
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="aep-emulator-job")
        self.lock = threading.RLock()
        self._active: set[tuple[str, str]] = set()
        self._cancel: set[tuple[str, str]] = set()
        self._stopping = threading.Event()

    # -- records ---------------------------------------------------------------------------
    def update(
        self, kind: str, tenant: Tenant, job_id: str, change: Callable[[dict[str, Any]], None]
    ) -> dict[str, Any] | None:
        """Apply ``change`` to the stored record (atomically w.r.t. other updates)."""
        with self.lock:
            record = self.store.get(kind, tenant, job_id)
            if record is None:
                return None
            change(record)
            ms = now_ms()
            record["updateTime"] = ms
            if "updateEpoch" in record:
                record["updateEpoch"] = ms // 1000
            self.store.put(kind, tenant, job_id, record)
            return record

    def status(self, kind: str, tenant: Tenant, job_id: str) -> str | None:
        record = self.store.get(kind, tenant, job_id)
        return None if record is None else record.get("status")

    def settle_orphan(
        self, kind: str, tenant: Tenant, record: dict[str, Any], terminal: set[str]
    ) -> dict[str, Any]:
        """A non-terminal job no thread works on (the emulator restarted) becomes FAILED."""
        job_id = str(record["id"])
        if record.get("status") in terminal or (kind, job_id) in self._active:
            return record

        def fail(r: dict[str, Any]) -> None:
            if r.get("status") not in terminal and (kind, job_id) not in self._active:
                r["status"] = "CANCELLED" if r.get("status") == "CANCELLING" else "FAILED"
                r.setdefault("errors", []).append(
                    {"code": "0100000500", "msg": "the emulator restarted while the job ran",
                     "callStack": ""}
                )

        with self.lock:
            return self.update(kind, tenant, job_id, fail) or record

    # -- running ---------------------------------------------------------------------------
    def reserve(self, kind: str, job_id: str) -> None:
        """Mark a job active before its record is stored (so it is never taken for an orphan)."""
        with self.lock:
            self._active.add((kind, job_id))

    def submit(self, kind: str, job_id: str, work: Callable[[], None]) -> None:
        """Run ``work`` in the background; the job counts as active until it returns."""
        key = (kind, job_id)
        with self.lock:
            self._active.add(key)

        def run() -> None:
            try:
                work()
            except Exception:
                log.error("emulator %s %s crashed:\n%s", kind, job_id, traceback.format_exc())
            finally:
                with self.lock:
                    self._active.discard(key)

        try:
            self._pool.submit(run)
        except RuntimeError:  # shutting down
            with self.lock:
                self._active.discard(key)

    def request_cancel(self, kind: str, job_id: str) -> None:
        """Ask a running job to stop (it polls :meth:`cancel_requested`)."""
        with self.lock:
            self._cancel.add((kind, job_id))

    def cancel_requested(self, kind: str, job_id: str) -> bool:
        with self.lock:
            return (kind, job_id) in self._cancel

    def forget_cancel(self, kind: str, job_id: str) -> None:
        with self.lock:
            self._cancel.discard((kind, job_id))

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` (cut short when the runner closes)."""
        if seconds > 0:
            self._stopping.wait(seconds)

    def stopping(self) -> bool:
        return self._stopping.is_set()

    def close(self) -> None:
        """Stop taking work, cut sleeps short and wait for the running jobs."""
        self._stopping.set()
        self._pool.shutdown(wait=True, cancel_futures=True)


def time_block(start_ms: int, end_ms: int | None = None) -> dict[str, int]:
    """A metrics time block ``{startTimeInMs, endTimeInMs, totalTimeInMs}``."""
    end = end_ms if end_ms is not None else now_ms()
    return {"startTimeInMs": start_ms, "endTimeInMs": end, "totalTimeInMs": end - start_ms}

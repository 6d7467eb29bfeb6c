"""Waiting for asynchronous AEP jobs: polite polling, progress, and typed outcomes.

:func:`wait_for` polls a job until it reaches a terminal status, with a backoff that starts
short and grows (AEP recommends polling no more than every few seconds for long jobs), a
timeout, and a progress callback. FAILED and CANCELLED end in typed errors that carry the job's
``errors`` array. Transient failures of a poll (429, 5xx, resets) are retried by the client.

Example:
    >>> # job = wait_for(lambda: get_export_job(client, 7), timeout=600)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from aep_io.errors import JobCancelledError, JobFailedError, JobTimeoutError

__all__ = ["JobLike", "PollPolicy", "wait_for"]

TERMINAL = frozenset({"SUCCEEDED", "FAILED", "CANCELLED"})


class JobLike(Protocol):
    """What :func:`wait_for` needs of a job record."""

    @property
    def id(self) -> Any: ...

    @property
    def status(self) -> str: ...

    @property
    def errors(self) -> list[dict[str, Any]]: ...


J = TypeVar("J", bound=JobLike)


@dataclass(frozen=True)
class PollPolicy:
    """How often to poll: ``initial`` seconds, times ``factor`` per poll, at most ``maximum``."""

    initial: float = 0.5
    factor: float = 1.5
    maximum: float = 15.0
    sleep: Callable[[float], None] = time.sleep


def wait_for(
    fetch: Callable[[], J],
    *,
    timeout: float | None = 3600.0,
    poll: PollPolicy | None = None,
    progress: Callable[[J], None] | None = None,
    kind: str = "job",
) -> J:
    """Poll ``fetch()`` until the job is terminal; return it if it SUCCEEDED.

    Raises:
        JobFailedError: the job FAILED (``.errors`` holds its errors array).
        JobCancelledError: the job was CANCELLED.
        JobTimeoutError: ``timeout`` seconds passed first (the job itself goes on).
    """
    policy = poll or PollPolicy()
    started = time.monotonic()
    delay = policy.initial
    while True:
        job = fetch()
        if progress is not None:
            progress(job)
        status = job.status.upper()
        if status == "SUCCEEDED":
            return job
        if status == "FAILED":
            said = "; ".join(
                str(e.get("msg") or e.get("message") or e.get("description") or e)
                for e in job.errors
            ) or "no errors reported"
            raise JobFailedError(f"{kind} {job.id} FAILED: {said}", job_id=job.id,
                                 status=status, errors=job.errors)
        if status == "CANCELLED":
            raise JobCancelledError(f"{kind} {job.id} was CANCELLED", job_id=job.id,
                                    status=status, errors=job.errors)
        elapsed = time.monotonic() - started
        if timeout is not None and elapsed + delay > timeout:
            raise JobTimeoutError(
                f"{kind} {job.id} still {status} after {elapsed:.1f}s (timeout {timeout:g}s); "
                "it goes on running: wait again, or cancel it",
                job_id=job.id, status=status, errors=job.errors,
            )
        policy.sleep(delay)
        delay = min(policy.maximum, delay * policy.factor)

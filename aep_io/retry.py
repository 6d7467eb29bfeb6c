"""When and how long to retry a request.

Idempotent requests (GET, HEAD, PUT, DELETE) are retried on 429/500/502/503/504 and on
transport errors (a 500 on a read is usually transient at AEP; repeating a read is harmless). A request that is not idempotent (POST) is retried only when the server cannot have
acted on it: a connection that was never established, or a 429 (rejected before processing).

The wait honours ``Retry-After`` (seconds or an HTTP date), else the body's ``retryAfterMs``
(AEP's Profile APIs put it there), else capped exponential backoff with full jitter. Attempts and
total time are both bounded. The retry engine is `tenacity`, a well-kept library: this module only
supplies AEP's policy to it.

Example:
    >>> policy = RetryPolicy(max_attempts=3)
    >>> policy.should_retry_status(503, idempotent=True), policy.should_retry_status(503, idempotent=False)
    (True, False)
"""  # noqa: E501

from __future__ import annotations

import email.utils
import functools
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
import tenacity

from aep_io.errors import TransportError, parse_error_body

__all__ = ["RetryPolicy", "retry_after_seconds", "send_with_retry"]

log = logging.getLogger("aep_io.http")

# Errors raised before the request can have reached the server: safe to replay any method.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
# Errors that may happen after the server received the request: replay only idempotent ones.
_MAYBE_SENT = (httpx.TransportError,)
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds and waits for retries.

    Attributes:
        max_attempts: attempts per request, the first included.
        max_total: seconds after the first attempt beyond which no new attempt starts.
        initial_backoff: seconds; backoff is full jitter over ``initial * 2**n``...
        max_backoff: ...capped at this many seconds.
        max_retry_after: a server's ``Retry-After`` longer than this is capped to it.
        statuses: HTTP statuses worth retrying for idempotent requests.
        sleep: the sleep function (tests pass a fake one).
    """

    max_attempts: int = 6
    max_total: float = 120.0
    initial_backoff: float = 0.25
    max_backoff: float = 20.0
    max_retry_after: float = 60.0
    statuses: frozenset[int] = frozenset({429, 500, 502, 503, 504})
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False, repr=False)

    def __post_init__(self) -> None:
        attempts = self.max_attempts
        if isinstance(attempts, bool) or not isinstance(attempts, int):
            raise TypeError(f"max_attempts must be an int, not {type(attempts).__name__}")
        if attempts < 1:
            raise ValueError(f"max_attempts={attempts} must be >= 1 (1: no retry)")
        for name in ("max_total", "initial_backoff", "max_backoff", "max_retry_after"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TypeError(f"{name} must be a number of seconds, not {type(value).__name__}")
            if math.isnan(value) or value < 0:
                raise ValueError(f"{name}={value!r} must be a number of seconds >= 0")
        if self.max_backoff < self.initial_backoff:
            raise ValueError(f"max_backoff={self.max_backoff!r} is below "
                             f"initial_backoff={self.initial_backoff!r}")  # fmt: skip
        try:
            statuses = frozenset(self.statuses)
        except TypeError:
            raise TypeError(f"statuses must be a set of HTTP status codes, not "
                            f"{self.statuses!r:.60}") from None  # fmt: skip
        bad = sorted(str(s) for s in statuses
                     if isinstance(s, bool) or not isinstance(s, int) or not 400 <= s <= 599)
        if bad:
            raise ValueError(f"statuses {', '.join(bad)} are not HTTP error statuses (400-599)")
        object.__setattr__(self, "statuses", statuses)
        if not callable(self.sleep):
            raise TypeError(f"sleep must be a function of seconds, not {type(self.sleep).__name__}")

    def should_retry_status(self, status: int, *, idempotent: bool) -> bool:
        """Whether a response with this status is worth another attempt."""
        if status == 429:
            return True  # rejected before processing: safe for every method
        return idempotent and status in self.statuses

    def should_retry_exception(self, exc: BaseException, *, idempotent: bool) -> bool:
        """Whether a transport exception is worth another attempt."""
        if isinstance(exc, _NOT_SENT):
            return True
        return idempotent and isinstance(exc, _MAYBE_SENT)


def retry_after_seconds(response: httpx.Response, *, now: float | None = None) -> float | None:
    """The wait the server asked for: ``Retry-After`` (seconds or HTTP date) or ``retryAfterMs``.

    Example:
        >>> r = httpx.Response(429, headers={"Retry-After": "2"})
        >>> retry_after_seconds(r)
        2.0
        >>> retry_after_seconds(httpx.Response(429, json={"retryAfterMs": "500"}))
        0.5
    """
    header = response.headers.get("retry-after")
    if header:
        header = header.strip()
        try:
            return max(0.0, float(header))
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(header)
            except (TypeError, ValueError, IndexError):
                when = None
            if when is not None:
                if when.tzinfo is None:
                    when = when.replace(tzinfo=UTC)
                current = datetime.fromtimestamp(time.time() if now is None else now, UTC)
                return max(0.0, (when - current).total_seconds())
    try:
        body = response.content
    except httpx.ResponseNotRead:
        return None
    if body and len(body) < 65536:
        detail = parse_error_body(body)
        if detail is not None and detail.retry_after_ms is not None:
            return max(0.0, detail.retry_after_ms / 1000.0)
    return None


def _describe(outcome: tenacity.Future | None) -> str:
    if outcome is None:
        return "nothing"
    if outcome.failed:
        exc = outcome.exception()
        return f"{type(exc).__name__}: {exc}"
    return f"HTTP {outcome.result().status_code}"


def _attempt(http: httpx.Client, request: httpx.Request, stream: bool,
             policy: RetryPolicy, idempotent: bool) -> httpx.Response:
    response = http.send(request, stream=stream)
    if stream and policy.should_retry_status(response.status_code, idempotent=idempotent):
        response.read()  # small error body: needed for retryAfterMs and the error message
    return response


def _engine(policy: RetryPolicy, idempotent: bool) -> tenacity.Retrying:
    # ``sleep`` is not part of the policy's equality: key on it too
    return _cached_engine(policy, policy.sleep, idempotent)


@functools.lru_cache(maxsize=64)
def _cached_engine(
    policy: RetryPolicy, sleep: Callable[[float], None], idempotent: bool
) -> tenacity.Retrying:
    """One tenacity engine per (policy, idempotence), reused by every request.

    Building a ``Retrying`` per request left a ``threading.local`` in a reference cycle for the
    garbage collector each time; on Python 3.11 a collection during ``sys._current_frames()``
    (Dask's profiler calls it) can deadlock (CPython gh-106883). Reused engines make no garbage.
    The request travels in the call's arguments: ``(http, request, stream, policy, idempotent)``.
    """
    backoff = tenacity.wait_random_exponential(
        multiplier=policy.initial_backoff, max=policy.max_backoff
    )

    def wait(state: tenacity.RetryCallState) -> float:
        outcome = state.outcome
        if outcome is not None and not outcome.failed:
            asked = retry_after_seconds(outcome.result())
            if asked is not None:
                return min(asked, policy.max_retry_after)
        return float(backoff(state))

    def retry_on(state: tenacity.RetryCallState) -> bool:
        outcome = state.outcome
        if outcome is None:
            return False
        if outcome.failed:
            return policy.should_retry_exception(outcome.exception(), idempotent=idempotent)
        return policy.should_retry_status(outcome.result().status_code, idempotent=idempotent)

    def before_sleep(state: tenacity.RetryCallState) -> None:
        assert state.outcome is not None
        if not state.outcome.failed:
            state.outcome.result().close()
        request: httpx.Request = state.args[1]
        log.info(
            "%s %s: attempt %d gave %s; retrying in %.2fs",
            request.method, request.url, state.attempt_number, _describe(state.outcome),
            state.upcoming_sleep,
        )

    def give_up(state: tenacity.RetryCallState) -> httpx.Response:
        outcome = state.outcome
        assert outcome is not None
        if outcome.failed:
            exc = outcome.exception()
            request: httpx.Request = state.args[1]
            raise TransportError(
                f"{request.method} {request.url} failed after {state.attempt_number} attempt(s) "
                f"in {state.seconds_since_start:.1f}s; last cause: {type(exc).__name__}: {exc}"
            ) from exc
        return outcome.result()

    return tenacity.Retrying(
        stop=tenacity.stop_after_attempt(policy.max_attempts)
        | tenacity.stop_before_delay(policy.max_total),
        wait=wait,
        retry=retry_on,
        before_sleep=before_sleep,
        retry_error_callback=give_up,
        sleep=policy.sleep,
    )


def send_with_retry(
    http: httpx.Client,
    request: httpx.Request,
    policy: RetryPolicy,
    *,
    idempotent: bool | None = None,
    stream: bool = False,
) -> httpx.Response:
    """Send ``request``, retrying per ``policy``; return the final response (maybe an error one).

    Raises :class:`~aep_io.errors.TransportError` naming the URL, the attempts and the last cause
    when every attempt failed at the transport level.
    """
    if idempotent is None:
        idempotent = request.method.upper() in IDEMPOTENT_METHODS
    try:
        return _engine(policy, idempotent)(_attempt, http, request, stream, policy, idempotent)
    except httpx.TransportError as exc:  # not retryable (e.g. a POST whose body was sent)
        raise TransportError(
            f"{request.method} {request.url} failed: {type(exc).__name__}: {exc}"
            + ("" if idempotent else " (not retried: the server may have received it)")
        ) from exc

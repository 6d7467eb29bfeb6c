"""Retries against injected faults, over real HTTP on loopback."""

from __future__ import annotations

import email.utils
import time

import httpx
import pytest

from aep_io import (
    AEPClient,
    RateLimitError,
    RetryPolicy,
    ServerError,
    Service,
    Settings,
    TransportError,
)
from aep_io.emulator import Emulator, Fault
from aep_io.retry import retry_after_seconds


def _get(client: AEPClient) -> object:
    return client.get_json(client.url(Service.CATALOG, "/dataSets"))


def test_429_with_retry_after_seconds(client: AEPClient, emulator: Emulator,
                                      sleeps: list[float]) -> None:
    emulator.faults.add(Fault(status=429, headers={"Retry-After": "3"}, route="catalog", times=2))
    _get(client)
    assert sleeps == [3.0, 3.0]
    assert [r.status for r in emulator.counters.log("catalog")] == [429, 429, 200]


def test_429_with_retry_after_http_date(client: AEPClient, emulator: Emulator,
                                        sleeps: list[float]) -> None:
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    emulator.faults.add(Fault(status=429, headers={"Retry-After": when}, route="catalog"))
    _get(client)
    assert len(sleeps) == 1 and 25 <= sleeps[0] <= 31


def test_429_with_body_retry_after_ms(client: AEPClient, emulator: Emulator,
                                      sleeps: list[float]) -> None:
    body = [{"message": "Too many requests", "retryAfterMs": "1500", "statusCode": "429"}]
    emulator.faults.add(Fault(status=429, body=body, route="catalog"))
    _get(client)
    assert sleeps == [1.5]


def test_429_without_hint_backs_off_with_jitter(client: AEPClient, emulator: Emulator,
                                                sleeps: list[float]) -> None:
    emulator.faults.add(Fault(status=429, route="catalog", times=3))
    _get(client)
    assert len(sleeps) == 3
    assert all(0 <= s <= client.retry.max_backoff for s in sleeps)


@pytest.mark.parametrize("status", [502, 503, 504])
def test_gateway_errors_are_retried(client: AEPClient, emulator: Emulator, status: int) -> None:
    emulator.faults.add(Fault(status=status, route="catalog"))
    _get(client)
    assert [r.status for r in emulator.counters.log("catalog")] == [status, 200]


def test_500_is_retried_for_reads_not_for_posts(client: AEPClient, emulator: Emulator) -> None:
    emulator.faults.add(Fault(status=500, route="catalog", body={"title": "boom"}))
    _get(client)
    assert emulator.counters.requests("catalog") == 2
    emulator.faults.add(Fault(status=500, route="catalog", method="POST", body={"title": "boom"}))
    with pytest.raises(ServerError, match="boom"):
        client.post_json(client.url(Service.CATALOG, "/dataSets"), {"name": "x"})
    assert emulator.counters.requests("catalog", method="POST") == 1


def test_connection_reset_is_retried_for_get(client: AEPClient, emulator: Emulator) -> None:
    emulator.faults.add(Fault(kind="reset", route="catalog"))
    _get(client)
    assert emulator.counters.requests("catalog") == 2


def test_reset_mid_body_is_retried_for_get(client: AEPClient, emulator: Emulator,
                                           export: object) -> None:
    emulator.faults.add(Fault(kind="reset_mid_body", route="batch_files"))
    batch_id = export.batch_id  # type: ignore[attr-defined]
    body = client.get_json(client.url(Service.DATA_ACCESS, f"/batches/{batch_id}/files"))
    assert len(body["data"]) == 4
    assert emulator.counters.requests("batch_files") == 2


def test_post_is_never_replayed_after_it_may_have_been_received(
    client: AEPClient, emulator: Emulator
) -> None:
    before = len(emulator.store.list("dataSet", emulator.default_tenant))
    emulator.faults.add(Fault(kind="reset_mid_body", route="catalog", method="POST"))
    with pytest.raises(TransportError, match="not retried"):
        client.post_json(
            client.url(Service.CATALOG, "/dataSets"),
            {"name": "x", "schemaRef": {"id": "https://ns.adobe.com/xdm/context/profile__union"}},
        )
    assert emulator.counters.requests("catalog", method="POST") == 1
    # the server did act on it once: exactly one dataset more, never two
    assert len(emulator.store.list("dataSet", emulator.default_tenant)) == before + 1


def test_post_is_retried_on_429(client: AEPClient, emulator: Emulator) -> None:
    emulator.faults.add(Fault(status=429, route="catalog", method="POST"))
    result = client.post_json(
        client.url(Service.CATALOG, "/dataSets"),
        {"name": "y", "schemaRef": {"id": "https://ns.adobe.com/xdm/context/profile__union"}},
    )
    assert result[0].startswith("@/dataSets/")
    assert emulator.counters.requests("catalog", method="POST") == 2


def test_post_is_retried_when_never_connected(sleeps: list[float]) -> None:
    import socket

    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    settings = Settings(client_id="c", org_id="o", access_token="t", platform_url=url,
                        ims_url=url, timeout=2)
    policy = RetryPolicy(max_attempts=3, sleep=sleeps.append)
    with AEPClient(settings, retry=policy) as c, pytest.raises(TransportError) as info:
        c.post_json(c.url(Service.CATALOG, "/dataSets"), {"name": "z"})
    assert "3 attempt(s)" in str(info.value)
    assert len(sleeps) == 2


def test_budget_exhausted_gives_typed_error(client: AEPClient, emulator: Emulator) -> None:
    emulator.faults.add(Fault(status=429, route="catalog", times=None,
                              body={"title": "Too many", "detail": "slow down"}))
    with pytest.raises(RateLimitError, match="slow down"):
        _get(client)
    assert emulator.counters.requests("catalog") == client.retry.max_attempts


def test_total_time_bound_stops_before_a_long_wait(settings: Settings, emulator: Emulator,
                                                   sleeps: list[float]) -> None:
    policy = RetryPolicy(max_attempts=10, max_total=5, sleep=sleeps.append)
    emulator.faults.add(Fault(status=503, headers={"Retry-After": "30"}, route="catalog",
                              times=None))
    with AEPClient(settings, retry=policy) as c, pytest.raises(ServerError):
        _get(c)
    assert sleeps == []  # waiting 30 s would pass the 5 s budget: give up at once


def test_retry_after_parsing() -> None:
    assert retry_after_seconds(httpx.Response(503, headers={"Retry-After": "0"})) == 0.0
    assert retry_after_seconds(httpx.Response(503, headers={"Retry-After": "junk"})) is None
    past = email.utils.formatdate(time.time() - 100, usegmt=True)
    assert retry_after_seconds(httpx.Response(503, headers={"Retry-After": past})) == 0.0
    assert retry_after_seconds(httpx.Response(429, json={"retryAfterMs": 250})) == 0.25

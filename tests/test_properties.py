"""Property-based tests (hypothesis) for the retry policy and the paging helpers."""

from __future__ import annotations

from typing import Any

import httpx
from hypothesis import given, settings
from hypothesis import strategies as st

from aep_io.paging import iter_catalog, iter_cursor_pages, iter_linked_pages
from aep_io.retry import RetryPolicy, send_with_retry

STATUSES = st.sampled_from([200, 201, 400, 401, 403, 404, 409, 422, 429, 500, 502, 503, 504])


@given(status=STATUSES, method=st.sampled_from(["GET", "HEAD", "PUT", "DELETE", "POST"]))
def test_a_post_is_only_retried_when_the_server_refused_it(status: int, method: str) -> None:
    policy = RetryPolicy()
    idempotent = method != "POST"
    retried = policy.should_retry_status(status, idempotent=idempotent)
    if not idempotent:
        assert retried == (status == 429)
    else:
        assert retried == (status in policy.statuses)


@settings(max_examples=60, deadline=None)
@given(
    statuses=st.lists(STATUSES, min_size=1, max_size=12),
    attempts=st.integers(1, 6),
    retry_after=st.one_of(st.none(), st.integers(0, 100)),
)
def test_attempts_and_waits_stay_within_the_policy(
    statuses: list[int], attempts: int, retry_after: int | None
) -> None:
    waits: list[float] = []
    policy = RetryPolicy(max_attempts=attempts, max_total=1e9, max_backoff=2.0,
                         max_retry_after=5.0, sleep=waits.append)
    sent: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        status = statuses[min(len(sent), len(statuses) - 1)]
        sent.append(status)
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        return httpx.Response(status, headers=headers)

    with httpx.Client(transport=httpx.MockTransport(handler)) as http:
        response = send_with_retry(http, http.build_request("GET", "http://h/x"), policy)
    assert 1 <= len(sent) <= attempts
    assert len(waits) == len(sent) - 1
    assert response.status_code == sent[-1]
    for wait in waits:
        assert 0 <= wait <= (min(retry_after, 5.0) if retry_after is not None else 2.0)
    # it stops at the first answer not worth retrying
    assert all(policy.should_retry_status(s, idempotent=True) for s in sent[:-1])


class _PagedClient:
    """Just enough of AEPClient for the paging helpers: pages served from a list."""

    def __init__(self, items: list[int], page_size: int) -> None:
        self.items, self.page_size, self.calls = items, page_size, 0

    def get_json(self, url: str, *, params: dict[str, Any] | None = None) -> Any:
        self.calls += 1
        params = dict(params or {})
        if "start=" in url:  # a followed link
            params.update(p.split("=") for p in url.split("?", 1)[1].split("&"))
        start = int(params.get("start", 0))
        limit = int(params.get("limit", self.page_size))
        chunk = self.items[start:start + limit]
        more = start + limit < len(self.items)
        if "/catalog" in url:
            return {f"id{i}": {"n": i} for i in chunk}
        base = url.split("?", 1)[0]
        nxt = f"{base}?start={start + limit}&limit={limit}" if more else ""
        if "/cursor" in url:
            return {"records": [{"id": i} for i in chunk], "link": {"next": nxt}}
        return {"data": [{"id": i} for i in chunk], "_links": {"next": {"href": nxt}} if more
                else {}}

    def check_href(self, href: str, *, service: Any = None) -> str:
        return href


@given(n=st.integers(0, 350), size=st.integers(1, 100))
def test_paging_yields_every_item_once(n: int, size: int) -> None:
    items = list(range(n))
    catalog = _PagedClient(items, size)
    got = [v["n"] for _, v in iter_catalog(catalog, "http://h/catalog", limit=size)]  # type: ignore[arg-type]
    assert got == items
    linked = _PagedClient(items, size)
    pages = list(iter_linked_pages(linked, "http://h/linked", params={"limit": size}))  # type: ignore[arg-type]
    assert [d["id"] for p in pages for d in p["data"]] == items
    cursor = _PagedClient(items, size)
    records = list(iter_cursor_pages(cursor, "http://h/cursor", params={"limit": size}))  # type: ignore[arg-type]
    assert [r["id"] for r in records] == items

"""Helpers for the three paging styles of the AEP APIs.

=====================  =========================================  ==============================
API                    how the next page is found                 helper
=====================  =========================================  ==============================
Data Access            ``_links.next.href`` (absolute URL)        :func:`iter_linked_pages`
Catalog                ``start += limit`` until a short page      :func:`iter_catalog`
Export jobs            cursor ``link.next`` (relative path)       :func:`iter_cursor_pages`
=====================  =========================================  ==============================

Every helper refuses a next link that repeats a page already seen (a server bug would otherwise
loop forever) and never follows a link to another origin with credentials.

Example:
    >>> # for obj_id, batch in iter_catalog(client, client.url(Service.CATALOG, "/batches"),
    >>> #                                   params={"dataSet": ds_id}):
    >>> #     ...
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from aep_io.client import AEPClient, Service
from aep_io.errors import AEPError

__all__ = ["CATALOG_MAX_LIMIT", "iter_catalog", "iter_cursor_pages", "iter_linked_pages"]

CATALOG_MAX_LIMIT = 100
_MAX_PAGES = 1_000_000


class PagingLoopError(AEPError):
    """The server sent a next link to a page that was already read."""


def _next_href(body: Mapping[str, Any], *path: str) -> str | None:
    node: Any = body
    for key in path:
        if not isinstance(node, Mapping):
            return None
        node = node.get(key)
    if isinstance(node, Mapping):  # {"href": ...} or {} when there is no next page
        node = node.get("href")
    return node if isinstance(node, str) and node else None


def iter_linked_pages(
    client: AEPClient, url: str, *, params: Mapping[str, Any] | None = None
) -> Iterator[dict[str, Any]]:
    """Yield each page body, following ``_links.next.href`` (Data Access style)."""
    seen: set[str] = set()
    current: str | None = url
    current_params = params
    while current is not None:
        key = f"{current}?{sorted((current_params or {}).items())}"
        if key in seen or len(seen) > _MAX_PAGES:
            raise PagingLoopError(f"the server's next link {current} repeats a page already read")
        seen.add(key)
        body = client.get_json(current, params=current_params)
        if not isinstance(body, dict):
            raise AEPError(f"GET {current}: expected a JSON object page, got {type(body).__name__}")
        yield body
        href = _next_href(body, "_links", "next")
        current = client.check_href(href, service=Service.DATA_ACCESS) if href else None
        current_params = None  # the link carries its own query


def iter_catalog(
    client: AEPClient,
    url: str,
    *,
    params: Mapping[str, Any] | None = None,
    limit: int = CATALOG_MAX_LIMIT,
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ``(id, object)`` over a Catalog listing, paging by ``start``/``limit``."""
    if not 1 <= limit <= CATALOG_MAX_LIMIT:
        raise ValueError(f"limit={limit}: Catalog pages hold 1 to {CATALOG_MAX_LIMIT} objects")
    start = 0
    seen: set[str] = set()
    while True:
        page = client.get_json(url, params={**(params or {}), "start": start, "limit": limit})
        if not isinstance(page, dict):
            raise AEPError(f"GET {url}: expected a map of id to object, got {type(page).__name__}")
        fresh = 0
        for obj_id, obj in page.items():
            if obj_id in seen:
                continue
            seen.add(obj_id)
            fresh += 1
            yield obj_id, obj
        if len(page) < limit:
            return
        if fresh == 0:
            raise PagingLoopError(f"GET {url}: page at start={start} repeats the previous one")
        start += limit


def iter_cursor_pages(
    client: AEPClient,
    url: str,
    *,
    params: Mapping[str, Any] | None = None,
    items_key: str = "records",
    service: Service = Service.SEGMENTATION,
) -> Iterator[dict[str, Any]]:
    """Yield each item, following the cursor in ``link.next`` (export-jobs style).

    ``link.next`` is a path relative to the service (``/export/jobs/?limit=2&offset=<ms>_<id>``);
    an empty string or a missing key ends the listing.
    """
    seen: set[str] = set()
    current: str | None = url
    current_params = params
    while current is not None:
        if current in seen:
            raise PagingLoopError(f"the server's next link {current} repeats a page already read")
        seen.add(current)
        body = client.get_json(current, params=current_params)
        if not isinstance(body, dict):
            raise AEPError(f"GET {current}: expected a JSON object page, got {type(body).__name__}")
        yield from body.get(items_key) or []
        href = _next_href(body, "link", "next")
        current = client.check_href(href, service=service) if href else None
        current_params = None

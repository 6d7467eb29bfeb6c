"""The one place that builds AEP URLs and sends requests.

:class:`AEPClient` owns an ``httpx.Client`` with :class:`~aep_io.auth.AEPAuth`, applies the
:class:`~aep_io.retry.RetryPolicy`, and turns error responses into the typed exceptions of
:mod:`aep_io.errors`. Everything else in aep_io talks to AEP through it.

Example:
    >>> from aep_io.settings import Settings
    >>> client = AEPClient(Settings(client_id="id", org_id="O@AdobeOrg", access_token="t",
    ...                             platform_url="http://127.0.0.1:8080"))
    >>> client.url(Service.DATA_ACCESS, "/batches/B1/files")
    'http://127.0.0.1:8080/data/foundation/export/batches/B1/files'
    >>> client.close()
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

import httpx

from aep_io.auth import AEPAuth, TokenProvider, _verify, origin_of
from aep_io.errors import AEPError, UnsafeRedirectError, error_for_status
from aep_io.http_transport import default_transport
from aep_io.retry import RetryPolicy, retry_after_seconds, send_with_retry
from aep_io.settings import Settings

__all__ = ["AEPClient", "Service", "check_id"]

log = logging.getLogger("aep_io.http")

_USER_AGENT = "aep_io/0.1"
# Characters that would change the URL an id is put into (path, query, fragment, escapes).
_URL_SYNTAX = frozenset("/\\?#%")
_MAX_ID = 512


def check_id(value: object, what: str, *, integer: bool = False) -> str:
    """``value`` as an id to put in a URL path, or a TypeError/ValueError naming ``what``.

    An id is a non-empty string (an integer too with ``integer``, as export job ids are) with
    no ``/``, ``\\``, ``?``, ``#``, ``%``, whitespace or control character: such characters would
    make the request reach another URL than the one meant (``../jobs`` is not a segment id).

    Example:
        >>> check_id("01JBATCH0000000000000000AB", "batch id")
        '01JBATCH0000000000000000AB'
        >>> check_id("../jobs", "segment id")
        Traceback (most recent call last):
        ...
        ValueError: segment id '../jobs' is not an id: it contains '/' (ids have no /, \\, ?, #, %, spaces or control characters)
    """  # noqa: E501
    if isinstance(value, bool) or not isinstance(value, int | str) or (
            isinstance(value, int) and not integer):
        kind = "a string or an integer" if integer else "a string"
        raise TypeError(f"{what} must be {kind}, not {type(value).__name__} {value!r:.60}")
    text = str(value)
    if not text:
        raise ValueError(f"{what} is empty: give the {what}")
    if len(text) > _MAX_ID:
        raise ValueError(f"{what} {text[:40]!r}... is {len(text)} characters long: not an id")
    bad = next((c for c in text if c in _URL_SYNTAX or c.isspace() or not c.isprintable()), None)
    if bad is not None or text in (".", ".."):
        why = f"it contains {bad!r}" if bad is not None else "it is a path step"
        raise ValueError(f"{what} {text[:80]!r} is not an id: {why} (ids have no /, \\, ?, #, "
                         "%, spaces or control characters)")
    return text


class Service(StrEnum):
    """Path prefixes of the AEP services behind the Platform gateway."""

    SEGMENTATION = "/data/core/ups"
    CATALOG = "/data/foundation/catalog"
    DATA_ACCESS = "/data/foundation/export"


class AEPClient:
    """Authenticated, retrying HTTP access to AEP (or to the emulator, by URL).

    Args:
        settings: connection settings; ``Settings.from_env()`` when omitted.
        retry: the retry policy for every request.
        max_connections: size of the connection pool (parallel reads need several).
        transport: the httpx transport to send requests with; by default a
            :class:`~aep_io.http_transport.StdlibTransport` (less CPU per request than
            httpcore, and bodies read straight into the reader's buffers), or httpx's own
            transports when a proxy from the environment applies to the platform URL. Pass
            ``httpx.HTTPTransport()`` to use httpcore.

    The client is thread-safe and picklable: pickling keeps the settings and the retry policy;
    the unpickled copy opens its own connections and fetches its own token.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        retry: RetryPolicy | None = None,
        max_connections: int = 64,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.settings = settings if settings is not None else Settings.from_env()
        self.retry = retry or RetryPolicy()
        self.max_connections = max_connections
        self.tokens = TokenProvider(self.settings, retry=self.retry)
        self._origin = origin_of(self.settings.platform_url)
        self._prefix = self.settings.platform_url.rstrip("/") + "/"
        verify = _verify(self.settings)
        if transport is None:
            transport = default_transport(
                self.settings.platform_url, verify=verify, max_connections=max_connections
            )
        self.http = httpx.Client(
            transport=transport,
            auth=AEPAuth(self.settings, self.tokens),
            timeout=httpx.Timeout(self.settings.timeout, connect=min(10.0, self.settings.timeout)),
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            verify=verify,
            headers={"Accept": "application/json", "User-Agent": _USER_AGENT},
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        s = self.settings
        return (
            f"AEPClient(platform_url={s.platform_url!r}, org_id={s.org_id!r}, "
            f"sandbox={s.sandbox!r})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_client, (self.settings, self.retry, self.max_connections))

    def __enter__(self) -> AEPClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self.http.close()
        self.tokens.close()

    # -- URLs -------------------------------------------------------------------------------
    def url(self, service: Service, path: str) -> str:
        """The absolute URL of ``path`` under ``service``."""
        return f"{self.settings.platform_url}{service.value}/{path.lstrip('/')}"

    def check_href(self, href: str, *, service: Service | None = None) -> str:
        """Resolve a link from a response; refuse one that leaves the platform origin.

        Relative links (``/export/jobs?...``) are resolved under ``service``.
        """
        if href.startswith(("http://", "https://")):
            if href.startswith(self._prefix):  # under the platform URL: same origin, no parse
                return href
            if origin_of(href) != self._origin:
                raise UnsafeRedirectError(
                    f"the server linked to {httpx.URL(href).host!r}, which is not the platform "
                    f"origin {self.settings.platform_url}: not following it with credentials"
                )
            return href
        if service is None:
            return f"{self.settings.platform_url}/{href.lstrip('/')}"
        return self.url(service, href)

    # -- requests -----------------------------------------------------------------------------
    def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
        stream: bool = False,
    ) -> httpx.Response:
        """Send one request with retries; return the response or raise a typed error.

        ``url`` must be absolute (build it with :meth:`url` or :meth:`check_href`).
        With ``stream=True`` the caller must read or close the successful response.
        """
        url = self.check_href(url)
        hdrs = dict(headers or {})
        if json is not None:
            hdrs.setdefault("Content-Type", "application/json")
        request = self.http.build_request(method, url, params=params, json=json, headers=hdrs)
        response = send_with_retry(
            self.http, request, self.retry, idempotent=idempotent, stream=stream
        )
        log.debug("%s %s -> %d", method, request.url, response.status_code)
        if 300 <= response.status_code < 400:
            response.close()
            target = httpx.URL(response.headers.get("location", "")).host or "an unnamed location"
            raise UnsafeRedirectError(
                f"{method} {request.url} answered HTTP {response.status_code}, a redirect to "
                f"{target!r}: aep_io follows no redirect (AEP credentials go to "
                f"{self.settings.platform_url} only, and a redirect body is not the data asked for)"
            )
        if response.status_code >= 400:
            if stream:
                response.read()
            raise error_for_status(
                method,
                str(request.url),
                response.status_code,
                response.content,
                retry_after=retry_after_seconds(response),
            )
        return response

    def get_json(self, url: str, *, params: Mapping[str, Any] | None = None) -> Any:
        """GET ``url`` and decode its JSON body."""
        return _decode_json(self.request("GET", url, params=params))

    def post_json(self, url: str, body: Any, *, params: Mapping[str, Any] | None = None) -> Any:
        """POST a JSON body (never replayed once sent) and decode the JSON answer."""
        return _decode_json(self.request("POST", url, params=params, json=body))


def _decode_json(response: httpx.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        raise AEPError(
            f"{response.request.method} {response.request.url}: expected a JSON body, got "
            f"{response.headers.get('content-type', 'no content type')}"
        ) from None


def _rebuild_client(settings: Settings, retry: RetryPolicy, max_connections: int) -> AEPClient:
    return AEPClient(settings, retry=retry, max_connections=max_connections)

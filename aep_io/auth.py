"""Authentication: IMS OAuth server-to-server tokens and the four AEP headers.

:class:`TokenProvider` fetches a token from IMS (``POST /ims/token/v3``, ``client_credentials``),
caches it and refreshes it before it expires. :class:`AEPAuth` is an ``httpx.Auth`` that puts
``Authorization``, ``x-api-key``, ``x-gw-ims-org-id`` and ``x-sandbox-name`` on every request
to the platform origin; on a 401 it refreshes the token once and replays the request.

Credentials are only ever sent to the configured platform origin: a request to any other host
through :class:`AEPAuth` raises :class:`~aep_io.errors.UnsafeRedirectError`.

Example:
    >>> from aep_io.settings import Settings
    >>> auth = AEPAuth(Settings(client_id="id", org_id="O@AdobeOrg", access_token="tok-42"))
    >>> "tok-42" in repr(auth)
    False
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Generator

import httpx

from aep_io.errors import TokenError, TransportError, UnsafeRedirectError, parse_error_body
from aep_io.http_transport import default_transport
from aep_io.retry import RetryPolicy, send_with_retry
from aep_io.settings import Secret, Settings

__all__ = ["AEPAuth", "TokenProvider", "origin_of"]

log = logging.getLogger("aep_io.auth")

# Refresh this long before expiry (at most), so a token never expires mid-request.
_REFRESH_MARGIN_S = 300.0


def origin_of(url: str | httpx.URL) -> tuple[str, str, int]:
    """The (scheme, host, port) origin of a URL, with the default port filled in.

    Example:
        >>> origin_of("https://platform.adobe.io:443/x") == origin_of("https://platform.adobe.io/y")
        True
    """
    u = url if isinstance(url, httpx.URL) else httpx.URL(url)
    port = u.port or (443 if u.scheme == "https" else 80)
    return (u.scheme, (u.host or "").lower(), port)


class TokenProvider:
    """Gets IMS access tokens for one integration and keeps the current one.

    Thread-safe: concurrent callers share one refresh. A static token (``AEP_ACCESS_TOKEN``) is
    returned as-is and cannot be refreshed.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        http: httpx.Client | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self._settings = settings
        self._retry = retry or RetryPolicy()
        self._own_http = http is None
        self._http = http
        self._lock = threading.Lock()
        self._token: Secret | None = settings.access_token
        self._expires_at = float("inf") if settings.access_token else 0.0
        self._refresh_at = self._expires_at
        self.fetch_count = 0

    def __repr__(self) -> str:
        s = self._settings
        return f"TokenProvider(client_id={s.client_id!r}, ims={s.ims_url!r})"

    def _client(self) -> httpx.Client:
        if self._http is None:
            s = self._settings
            verify = _verify(s)
            self._http = httpx.Client(
                timeout=s.timeout, verify=verify,
                transport=default_transport(s.ims_url, verify=verify, max_connections=4),
            )
        return self._http

    def token(self) -> Secret:
        """The current token, fetching or refreshing it when due."""
        with self._lock:
            if self._token is None or time.time() >= self._refresh_at:
                self._fetch()
            assert self._token is not None
            return self._token

    def invalidate(self, rejected: Secret) -> bool:
        """Forget ``rejected`` (the server said 401). Returns False if it cannot be replaced."""
        if not self._settings.uses_oauth:
            return False
        with self._lock:
            if self._token == rejected:
                self._token = None
        return True

    def _fetch(self) -> None:
        s = self._settings
        if not s.uses_oauth:
            raise TokenError(
                "the static access token (AEP_ACCESS_TOKEN) was rejected or expired; "
                "get a new one, or set AEP_CLIENT_SECRET so aep_io can refresh tokens itself"
            )
        assert s.client_secret is not None
        url = f"{s.ims_url}/ims/token/v3"
        request = self._client().build_request(
            "POST",
            url,
            data={
                "grant_type": "client_credentials",
                "client_id": s.client_id,
                "client_secret": s.client_secret.reveal(),
                "scope": ",".join(s.scopes),
            },
            headers={"Accept": "application/json"},
        )
        started = time.time()
        try:
            # Asking IMS for a token twice is harmless: retry it like an idempotent request.
            response = send_with_retry(self._client(), request, self._retry, idempotent=True)
        except TransportError as exc:
            raise TokenError(f"could not reach IMS at {url}: {exc}") from None
        if response.status_code != 200:
            detail = parse_error_body(response.content)
            said = detail.message if detail else f"HTTP {response.status_code}"
            code = f" [{detail.code}]" if detail and detail.code else ""
            raise TokenError(
                f"IMS refused a token for client_id {s.client_id!r} at {url}: "
                f"HTTP {response.status_code}{code} {said}. "
                "Check AEP_CLIENT_ID, AEP_CLIENT_SECRET and AEP_SCOPES"
            )
        try:
            body = response.json()
            token = str(body["access_token"])
            lifetime = float(body.get("expires_in", 86399))
        except (ValueError, KeyError, TypeError):
            raise TokenError(f"IMS at {url} answered 200 without an access_token") from None
        self._token = Secret(token)
        self._expires_at = started + lifetime
        margin = min(_REFRESH_MARGIN_S, lifetime * 0.1)
        self._refresh_at = self._expires_at - margin
        self.fetch_count += 1
        log.debug("fetched an IMS token valid for %.0fs", lifetime)

    def close(self) -> None:
        """Close the HTTP client this provider created, if any."""
        if self._own_http and self._http is not None:
            self._http.close()
            self._http = None


def _verify(settings: Settings) -> bool | ssl.SSLContext:
    if settings.ca_bundle:
        return ssl.create_default_context(cafile=settings.ca_bundle)
    return True


MAX_TOKEN_REFRESHES = 3


class AEPAuth(httpx.Auth):
    """httpx auth flow adding the four AEP headers; on a 401 refreshes the token and replays
    (at most :data:`MAX_TOKEN_REFRESHES` times per request, each with a new token)."""

    def __init__(self, settings: Settings, tokens: TokenProvider | None = None) -> None:
        self.settings = settings
        self.tokens = tokens or TokenProvider(settings)
        self._origin = origin_of(settings.platform_url)

    def __repr__(self) -> str:
        return f"AEPAuth(client_id={self.settings.client_id!r}, org_id={self.settings.org_id!r})"

    def _apply(self, request: httpx.Request, token: Secret) -> None:
        request.headers["Authorization"] = f"Bearer {token.reveal()}"
        request.headers["x-api-key"] = self.settings.client_id
        request.headers["x-gw-ims-org-id"] = self.settings.org_id
        request.headers["x-sandbox-name"] = self.settings.sandbox

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if origin_of(request.url) != self._origin:
            raise UnsafeRedirectError(
                f"refusing to send AEP credentials to {request.url.scheme}://{request.url.host}: "
                f"only {self.settings.platform_url} receives them"
            )
        token = self.tokens.token()
        self._apply(request, token)
        response = yield request
        rejected = [token]
        # A token can be revoked while requests are in flight, and the replacement too (a
        # rotation racing a read): refresh and replay while each 401 comes from a new token,
        # at most MAX_TOKEN_REFRESHES times, then let the 401 through.
        while (response.status_code == 401 and len(rejected) <= MAX_TOKEN_REFRESHES
               and self.tokens.invalidate(token)):  # fmt: skip
            response.read()
            token = self.tokens.token()
            if token in rejected:
                break
            log.info("%s %s: 401, refreshing the token (%d)", request.method, request.url,
                     len(rejected))  # fmt: skip
            rejected.append(token)
            self._apply(request, token)
            response = yield request

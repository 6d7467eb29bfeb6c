"""Connection settings: where AEP is, who we are, and how long to wait.

Settings come from keyword arguments or, for anything not given, from environment variables:

==========================  ==========================================  ============================
variable                    meaning                                     default
==========================  ==========================================  ============================
``AEP_CLIENT_ID``           the integration's client id (``x-api-key``)  required
``AEP_CLIENT_SECRET``       its client secret (OAuth server-to-server)   required unless a token
``AEP_ACCESS_TOKEN``        a static access token instead of OAuth       none
``AEP_ORG_ID``              the IMS org, ``XXXX@AdobeOrg``               required
``AEP_SANDBOX``             the sandbox name                             ``prod``
``AEP_SCOPES``              comma-separated OAuth scopes                 AEP's usual scopes
``AEP_PLATFORM_URL``        the Platform gateway                         ``https://platform.adobe.io``
``AEP_IMS_URL``             the IMS host                                 ``https://ims-na1.adobelogin.com``
``AEP_TIMEOUT``             seconds for connect/read of one request      ``60``
``AEP_CA_BUNDLE``           a CA bundle file for TLS verification        system store
==========================  ==========================================  ============================

A local emulator is used exactly like AEP: point ``AEP_PLATFORM_URL`` and ``AEP_IMS_URL`` at it.
Nothing silently falls back to another target: a missing setting is an error naming the variable.

Secrets are held in :class:`Secret`, whose ``repr`` and ``str`` never show the value.

Example:
    >>> s = Settings(client_id="abc", client_secret="s3cret", org_id="ORG@AdobeOrg")
    >>> "s3cret" in repr(s)
    False
    >>> s.sandbox
    'prod'
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any
from urllib.parse import urlsplit

from aep_io.errors import ConfigurationError

__all__ = ["DEFAULT_IMS_URL", "DEFAULT_PLATFORM_URL", "DEFAULT_SCOPES", "Secret", "Settings"]

_SANDBOX = re.compile(r"^[a-z0-9][a-z0-9-]{0,255}$")
DEFAULT_PLATFORM_URL = "https://platform.adobe.io"
DEFAULT_IMS_URL = "https://ims-na1.adobelogin.com"
DEFAULT_SCOPES: tuple[str, ...] = (
    "openid",
    "AdobeID",
    "read_organizations",
    "additional_info.projectedProductContext",
    "session",
)


class Secret:
    """A string that never shows itself in ``repr``, ``str``, f-strings or logs.

    Call :meth:`reveal` at the one place that must send it.

    Example:
        >>> token = Secret("abc")
        >>> f"{token}", token.reveal()
        ('**********', 'abc')
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError(f"Secret holds a str, not {type(value).__name__}")
        self._value = value

    def reveal(self) -> str:
        """Return the secret value."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    def __str__(self) -> str:
        return "**********"

    def __format__(self, spec: str) -> str:
        return "**********"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickling keeps the value (workers need it to authenticate); it is never printed.
        return (Secret, (self._value,))


def _secret(value: str | Secret | None) -> Secret | None:
    if value is None or isinstance(value, Secret):
        return value
    return Secret(value)


def _check_url(name: str, value: object, *, allow_plain_http: bool = False) -> str:
    example = DEFAULT_PLATFORM_URL if "PLATFORM" in name else DEFAULT_IMS_URL
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str URL such as {example}, not {type(value).__name__}")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(
            f"{name}={value!r} is not an http(s) URL; set it to e.g. {example}"
        )
    try:
        parts.port  # noqa: B018 - raises for a port out of range
    except ValueError:
        raise ConfigurationError(f"{name}={value!r} has an invalid port") from None
    if parts.username is not None or parts.password is not None:
        raise ConfigurationError(f"{name} must not carry credentials (user:password@); use "
                                 "AEP_CLIENT_ID and AEP_CLIENT_SECRET")  # fmt: skip
    if parts.query or parts.fragment or value != value.strip() or not value.isprintable():
        raise ConfigurationError(f"{name}={value!r} must be a plain base URL, e.g. {example} "
                                 "(no spaces, query or fragment)")  # fmt: skip
    if parts.scheme == "http" and not allow_plain_http and not _is_loopback(parts.hostname):
        raise ConfigurationError(
            f"{name}={value!r} would send the client secret and tokens unencrypted to another "
            f"machine: use https://, or set AEP_ALLOW_PLAIN_HTTP=1 if that link is private "
            "(e.g. an emulator in a container network)"
        )
    return value.rstrip("/")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _flag(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("use 1 or 0")


def _check_text(name: str, value: object, what: str) -> None:
    """A header value: a non-empty str without spaces or control characters."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str ({what}), not {type(value).__name__}")
    if not value or value.strip() != value or not value.isprintable() or " " in value:
        raise ConfigurationError(f"{name}={value!r} is not valid: set it to {what}, without "
                                 "spaces or control characters")  # fmt: skip


@dataclass(frozen=True)
class Settings:
    """Everything needed to talk to AEP (or the emulator).

    Build it with :meth:`from_env` to read environment variables, or directly.

    Attributes:
        client_id: the integration's client id, sent as ``x-api-key``.
        client_secret: the integration's client secret (OAuth server-to-server).
        org_id: the IMS org id, sent as ``x-gw-ims-org-id``.
        sandbox: the sandbox name, sent as ``x-sandbox-name``.
        scopes: OAuth scopes requested from IMS.
        platform_url: base URL of the Platform gateway.
        ims_url: base URL of IMS.
        access_token: a static token, used instead of OAuth when given.
        timeout: seconds for connect and for each read of one request.
        ca_bundle: path to a CA bundle for TLS verification (verification is always on).
        allow_plain_http: accept ``http://`` URLs of hosts other than this machine (credentials
            then travel unencrypted); off by default, loopback ``http://`` is always accepted.
    """

    client_id: str
    org_id: str
    client_secret: Secret | None = field(default=None)
    sandbox: str = "prod"
    scopes: tuple[str, ...] = DEFAULT_SCOPES
    platform_url: str = DEFAULT_PLATFORM_URL
    ims_url: str = DEFAULT_IMS_URL
    access_token: Secret | None = field(default=None)
    timeout: float = 60.0
    ca_bundle: str | None = None
    allow_plain_http: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "client_secret", _secret(self.client_secret))
        object.__setattr__(self, "access_token", _secret(self.access_token))
        if not self.client_id:
            raise ConfigurationError(
                "AEP_CLIENT_ID is missing: set it to the integration's client id"
            )
        _check_text("AEP_CLIENT_ID", self.client_id, "the integration's client id")
        if not self.org_id:
            raise ConfigurationError("AEP_ORG_ID is missing: set it to the IMS org, XXXX@AdobeOrg")
        _check_text("AEP_ORG_ID", self.org_id, "the IMS org, XXXX@AdobeOrg")
        token = self.access_token.reveal() if self.access_token else ""
        if token and (token != token.strip() or not token.isprintable() or " " in token):
            raise ConfigurationError("AEP_ACCESS_TOKEN holds spaces or control characters (a "
                                     "copy-paste error?): set it to the bare token")  # fmt: skip
        if not self.client_secret and not self.access_token:
            raise ConfigurationError(
                "AEP_CLIENT_SECRET is missing: set it (OAuth server-to-server), "
                "or set AEP_ACCESS_TOKEN to a token you already have"
            )
        if not self.sandbox:
            raise ConfigurationError("AEP_SANDBOX is empty: set it to a sandbox name, e.g. prod")
        if not isinstance(self.sandbox, str):
            raise TypeError(f"AEP_SANDBOX must be a str, not {type(self.sandbox).__name__}")
        if self.sandbox != self.sandbox.lower():
            raise ConfigurationError(
                f"AEP_SANDBOX={self.sandbox!r}: sandbox names are all lower case, "
                f"use {self.sandbox.lower()!r}"
            )
        if not _SANDBOX.match(self.sandbox):
            raise ConfigurationError(f"AEP_SANDBOX={self.sandbox!r} is not a sandbox name: lower "
                                     "case letters, digits and '-' (e.g. prod)")  # fmt: skip
        scopes = _split_scopes(self.scopes) if isinstance(self.scopes, str) else self.scopes
        if not isinstance(scopes, Iterable) or not all(isinstance(s, str) for s in scopes):
            raise TypeError(f"AEP_SCOPES must be a comma-separated str or a list of str, not "
                            f"{scopes!r:.60}")  # fmt: skip
        object.__setattr__(self, "scopes", tuple(scopes))
        if not self.scopes:
            raise ConfigurationError("AEP_SCOPES names no scope: leave it unset for AEP's usual "
                                     f"scopes ({','.join(DEFAULT_SCOPES)})")  # fmt: skip
        plain = self.allow_plain_http
        if not isinstance(plain, bool):
            raise TypeError(f"allow_plain_http must be a bool, not {type(plain).__name__}")
        object.__setattr__(self, "platform_url", _check_url(
            "AEP_PLATFORM_URL", self.platform_url, allow_plain_http=plain))
        object.__setattr__(self, "ims_url", _check_url(
            "AEP_IMS_URL", self.ims_url, allow_plain_http=plain))
        timeout = self.timeout
        if isinstance(timeout, bool) or not isinstance(timeout, int | float):
            raise ConfigurationError(f"AEP_TIMEOUT={timeout!r} must be a number of seconds")
        if not math.isfinite(timeout) or timeout <= 0:
            raise ConfigurationError(f"AEP_TIMEOUT={timeout!r} must be a positive number of "
                                     "seconds, e.g. 60")  # fmt: skip
        if self.ca_bundle is not None and not os.path.isfile(self.ca_bundle):
            raise ConfigurationError(f"AEP_CA_BUNDLE={self.ca_bundle!r} is not a file: set it "
                                     "to a PEM file of CA certificates, or unset it to use the "
                                     "system's")  # fmt: skip

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **overrides: Any
    ) -> Settings:
        """Read settings from environment variables; keyword arguments win over the environment.

        Example:
            >>> env = {"AEP_CLIENT_ID": "id", "AEP_ORG_ID": "O@AdobeOrg", "AEP_ACCESS_TOKEN": "t"}
            >>> Settings.from_env(env, sandbox="dev").sandbox
            'dev'
        """
        env = os.environ if environ is None else environ
        known = {f.name for f in fields(cls)}
        unknown = set(overrides) - known
        if unknown:
            raise TypeError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        values: dict[str, Any] = {k: v for k, v in overrides.items() if v is not None}

        def take(name: str, var: str, convert: Any = str) -> None:
            if name not in values and env.get(var):
                try:
                    values[name] = convert(env[var])
                except ValueError as exc:
                    raise ConfigurationError(f"{var}={env[var]!r} is invalid: {exc}") from None

        take("client_id", "AEP_CLIENT_ID")
        take("client_secret", "AEP_CLIENT_SECRET")
        take("access_token", "AEP_ACCESS_TOKEN")
        take("org_id", "AEP_ORG_ID")
        take("sandbox", "AEP_SANDBOX")
        take("scopes", "AEP_SCOPES", _split_scopes)
        take("platform_url", "AEP_PLATFORM_URL")
        take("ims_url", "AEP_IMS_URL")
        take("timeout", "AEP_TIMEOUT", float)
        take("ca_bundle", "AEP_CA_BUNDLE")
        take("allow_plain_http", "AEP_ALLOW_PLAIN_HTTP", _flag)
        values.setdefault("client_id", "")
        values.setdefault("org_id", "")
        return cls(**values)

    def with_(self, **changes: Any) -> Settings:
        """Return a copy with some settings changed."""
        return replace(self, **changes)

    @property
    def uses_oauth(self) -> bool:
        """True when tokens come from IMS (no static access token was given)."""
        return self.access_token is None


def _split_scopes(text: str) -> tuple[str, ...]:
    return tuple(s.strip() for s in text.split(",") if s.strip())

"""Who may call the emulator: registered integrations and the tokens IMS hands them.

An emulator data directory has one or more *integrations* (client id, client secret, IMS org),
kept in ``DIR/emulator.json`` with the secret stored only as a SHA-256 digest. The default
integration uses the well-known development credentials below, so that a fresh emulator works
with no setup; register others (another org, to test isolation) with :meth:`Credentials.add`.

Tokens are stateless and signed (HMAC-SHA256 with a key kept in the data directory), so they
survive a restart of the emulator, expire after ``token_lifetime`` seconds, and can all be
revoked at once (to test a client's refresh-on-401).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_CLIENT_ID",
    "DEFAULT_CLIENT_SECRET",
    "DEFAULT_ORG_ID",
    "Credentials",
    "Integration",
    "TokenClaims",
]

DEFAULT_CLIENT_ID = "aep-io-emulator"
DEFAULT_CLIENT_SECRET = "aep-io-emulator-secret"  # a public development credential
DEFAULT_ORG_ID = "EMULATOR0000000000000000@AdobeOrg"
_TOKEN_PREFIX = "emu1"


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Integration:
    """A registered API integration (an Adobe Developer Console project's credential)."""

    client_id: str
    secret_sha256: str
    org_id: str

    def __repr__(self) -> str:
        return f"Integration(client_id={self.client_id!r}, org_id={self.org_id!r})"


@dataclass(frozen=True)
class TokenClaims:
    """What a valid token says."""

    client_id: str
    org_id: str
    issued_at: float
    expires_at: float


class Credentials:
    """Integrations, the signing key and token issuing/verification for one data directory."""

    def __init__(self, root: str | Path, *, token_lifetime: float = 86399.0) -> None:
        self._path = Path(root) / "emulator.json"
        self._lock = threading.Lock()
        self.token_lifetime = token_lifetime
        if self._path.exists():
            config = json.loads(self._path.read_text())
        else:
            config = {
                "signing_key": secrets.token_hex(32),
                "integrations": {
                    DEFAULT_CLIENT_ID: {
                        "secret_sha256": _digest(DEFAULT_CLIENT_SECRET),
                        "org_id": DEFAULT_ORG_ID,
                    }
                },
                "not_before": 0.0,
            }
            self._write(config)
        self._config: dict[str, Any] = config
        self._key = bytes.fromhex(config["signing_key"])
        self._verified: dict[str, TokenClaims] = {}  # signature checks are the hot path

    def _write(self, config: dict[str, Any]) -> None:
        tmp = self._path.with_suffix(".tmp")
        tmp.write_text(json.dumps(config, indent=2))
        tmp.chmod(0o600)
        tmp.replace(self._path)

    def add(self, client_id: str, client_secret: str, org_id: str) -> Integration:
        """Register (or replace) an integration."""
        with self._lock:
            self._config["integrations"][client_id] = {
                "secret_sha256": _digest(client_secret),
                "org_id": org_id,
            }
            self._write(self._config)
        return self.integration(client_id)  # type: ignore[return-value]

    def integration(self, client_id: str) -> Integration | None:
        """The integration with this client id, if registered."""
        entry = self._config["integrations"].get(client_id)
        if entry is None:
            return None
        return Integration(client_id, entry["secret_sha256"], entry["org_id"])

    def check_secret(self, integration: Integration, client_secret: str) -> bool:
        """Constant-time comparison of a presented secret with the stored digest."""
        return hmac.compare_digest(_digest(client_secret), integration.secret_sha256)

    def issue(self, integration: Integration) -> tuple[str, float]:
        """A new signed token for ``integration`` and its lifetime in seconds."""
        now = time.time()
        claims = {
            "cid": integration.client_id,
            "org": integration.org_id,
            "iat": now,
            "exp": now + self.token_lifetime,
            "jti": secrets.token_hex(8),
        }
        payload = _b64(json.dumps(claims, separators=(",", ":")).encode())
        signature = _b64(hmac.new(self._key, payload.encode(), hashlib.sha256).digest())
        return f"{_TOKEN_PREFIX}.{payload}.{signature}", self.token_lifetime

    def verify(self, token: str) -> TokenClaims | None:
        """The claims of a valid, unexpired, unrevoked token; None otherwise."""
        claims = self._verified.get(token)
        if claims is None:
            claims = self._check_signature(token)
            if claims is None:
                return None
            if len(self._verified) > 10_000:
                self._verified.clear()
            self._verified[token] = claims
        if time.time() >= claims.expires_at or claims.issued_at < self._config["not_before"]:
            return None
        return claims

    def _check_signature(self, token: str) -> TokenClaims | None:
        parts = token.split(".")
        if len(parts) != 3 or parts[0] != _TOKEN_PREFIX:
            return None
        expected = _b64(hmac.new(self._key, parts[1].encode(), hashlib.sha256).digest())
        if not hmac.compare_digest(expected, parts[2]):
            return None
        try:
            claims = json.loads(_unb64(parts[1]))
            result = TokenClaims(
                str(claims["cid"]), str(claims["org"]), float(claims["iat"]), float(claims["exp"])
            )
        except (ValueError, KeyError, TypeError):
            return None
        return result

    def revoke_all(self) -> None:
        """Invalidate every token issued so far (clients must fetch new ones)."""
        with self._lock:
            self._config["not_before"] = time.time()
            self._write(self._config)

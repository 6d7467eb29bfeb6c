"""Who may call the emulator: registered integrations and the tokens IMS hands them.

An emulator data directory has one or more *integrations* (client id, client secret, IMS org),
kept in ``DIR/emulator.json`` with the secret stored only as a SHA-256 digest. The default
integration uses the well-known development credentials below, so that a fresh emulator works
with no setup; register others (another org, to test isolation) with :meth:`Credentials.add`.

Tokens are stateless and signed (HMAC-SHA256 with a key kept in the data directory), so they
survive a restart of the emulator, and expire after ``token_lifetime`` seconds. To test a
client's refresh-on-401, they can all be revoked at once (:meth:`Credentials.revoke_all`), or one
at a time (:meth:`Credentials.revoke`, what the ``expire_token`` fault does): the emulator then
answers every request carrying it with 401, as for an expired token, until the token's own expiry.
Revocations are kept in the data directory too, at most :data:`MAX_REVOKED` of them (the oldest
are forgotten first; expired tokens need no revocation and are dropped).
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
    "MAX_REVOKED",
    "Credentials",
    "Integration",
    "TokenClaims",
]

DEFAULT_CLIENT_ID = "aep-io-emulator"
DEFAULT_CLIENT_SECRET = "aep-io-emulator-secret"  # a public development credential
DEFAULT_ORG_ID = "EMULATOR0000000000000000@AdobeOrg"
_TOKEN_PREFIX = "emu1"
MAX_REVOKED = 10_000  # revoked token ids kept (each is dropped anyway once its token expires)


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
    """What a valid token says (``token_id``: its unique ``jti``)."""

    client_id: str
    org_id: str
    issued_at: float
    expires_at: float
    token_id: str = ""


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
        # token id -> its expiry; replaced (never mutated) under the lock, so that verify()
        # reads it without locking
        self._revoked: dict[str, float] = {
            str(k): float(v) for k, v in config.get("revoked", {}).items()
        }

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
        if claims.token_id in self._revoked:
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
                str(claims["cid"]), str(claims["org"]), float(claims["iat"]), float(claims["exp"]),
                str(claims.get("jti") or ""),
            )
        except (ValueError, KeyError, TypeError):
            return None
        return result

    def revoke(self, token: str) -> bool:
        """Expire one token now: every later request carrying it gets 401; others are unaffected.

        Returns False (and does nothing) for a string that is not a token this emulator signed.
        Thread-safe; at most :data:`MAX_REVOKED` revocations are kept (expired ones are dropped
        first, then the oldest).
        """
        claims = self._check_signature(token)
        if claims is None or not claims.token_id:
            return False
        now = time.time()
        with self._lock:
            revoked = {jti: exp for jti, exp in self._revoked.items() if exp > now}
            revoked[claims.token_id] = claims.expires_at
            for jti in list(revoked)[: max(0, len(revoked) - MAX_REVOKED)]:
                del revoked[jti]
            self._revoked = revoked
            self._config["revoked"] = revoked
            self._write(self._config)
        return True

    def revoke_all(self) -> None:
        """Invalidate every token issued so far (clients must fetch new ones)."""
        with self._lock:
            self._config["not_before"] = time.time()
            self._write(self._config)

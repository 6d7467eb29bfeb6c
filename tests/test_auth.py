"""IMS tokens and the AEP headers, against the emulator over loopback."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from aep_io import AEPClient, AuthenticationError, Service, Settings, TokenError
from aep_io.emulator import Emulator, EmulatorServer


def _batches(client: AEPClient) -> object:
    return client.get_json(client.url(Service.CATALOG, "/batches"))


def test_token_fetched_once_and_reused(client: AEPClient, emulator: Emulator) -> None:
    for _ in range(3):
        _batches(client)
    assert emulator.counters.requests("token") == 1
    assert emulator.counters.requests("catalog") == 3
    assert client.tokens.fetch_count == 1


def test_401_refreshes_once_and_replays(client: AEPClient, emulator: Emulator) -> None:
    _batches(client)
    emulator.credentials.revoke_all()  # the cached token is now refused with 401
    time.sleep(0.01)
    _batches(client)
    assert client.tokens.fetch_count == 2
    log = emulator.counters.log("catalog")
    assert [r.status for r in log] == [200, 401, 200]


def test_a_revoked_replacement_token_is_replaced_again(client: AEPClient,
                                                       emulator: Emulator) -> None:
    from aep_io.emulator import Fault

    _batches(client)
    emulator.counters.reset()
    # the request's token and then its first replacement are both revoked in flight
    emulator.faults.add(Fault(kind="expire_token", route="catalog", times=2))
    _batches(client)
    assert [r.status for r in emulator.counters.log("catalog")] == [401, 401, 200]
    assert emulator.counters.requests("token") == 2


def test_refreshing_stops_after_max_token_refreshes(client: AEPClient,
                                                    emulator: Emulator) -> None:
    from aep_io.auth import MAX_TOKEN_REFRESHES
    from aep_io.emulator import Fault

    _batches(client)
    emulator.counters.reset()
    emulator.faults.add(Fault(kind="expire_token", route="catalog", times=None))
    try:
        with pytest.raises(AuthenticationError):
            _batches(client)
    finally:
        emulator.faults.clear()
    assert emulator.counters.requests("catalog") == 1 + MAX_TOKEN_REFRESHES
    assert emulator.counters.requests("token") == MAX_TOKEN_REFRESHES


def test_every_request_carries_the_four_headers(settings: Settings) -> None:
    import httpx

    seen: list[httpx.Request] = []
    with AEPClient(settings) as c:
        c.http.event_hooks["request"].append(seen.append)
        _batches(c)
    headers = seen[-1].headers
    assert headers["authorization"].startswith("Bearer ")
    assert headers["x-api-key"] == settings.client_id
    assert headers["x-gw-ims-org-id"] == settings.org_id
    assert headers["x-sandbox-name"] == "prod"


@pytest.fixture
def short_lived(tmp_path: Path) -> Iterator[EmulatorServer]:
    emu = Emulator(tmp_path, token_lifetime=1.0)
    with EmulatorServer(emu) as srv:
        yield srv
    emu.close()


def test_token_refreshed_before_expiry(short_lived: EmulatorServer) -> None:
    with AEPClient(Settings.from_env(short_lived.client_env())) as c:
        _batches(c)
        time.sleep(1.05)
        _batches(c)
        assert c.tokens.fetch_count == 2
    statuses = [r.status for r in short_lived.emulator.counters.log("catalog")]
    assert statuses == [200, 200]  # refreshed ahead of expiry: no 401 seen


def test_wrong_secret_is_a_clear_token_error(server: EmulatorServer) -> None:
    env = {**server.client_env(), "AEP_CLIENT_SECRET": "not-the-secret"}
    with AEPClient(Settings.from_env(env)) as c, pytest.raises(TokenError) as info:
        _batches(c)
    assert "invalid client_secret" in str(info.value)
    assert "not-the-secret" not in str(info.value)
    assert isinstance(info.value, PermissionError)


def test_unknown_client_id(server: EmulatorServer) -> None:
    env = {**server.client_env(), "AEP_CLIENT_ID": "nobody"}
    with AEPClient(Settings.from_env(env)) as c, pytest.raises(TokenError, match="client_id"):
        _batches(c)


def test_bad_static_token_is_an_authentication_error(server: EmulatorServer) -> None:
    env = {**server.client_env(), "AEP_ACCESS_TOKEN": "emu1.forged.token"}
    env.pop("AEP_CLIENT_SECRET")
    with AEPClient(Settings.from_env(env)) as c, pytest.raises(AuthenticationError) as info:
        _batches(c)
    assert "401013" in str(info.value)
    assert "forged" not in str(info.value)

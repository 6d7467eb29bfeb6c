"""No secret (client secret, access token, Authorization header) ever shows up anywhere."""

from __future__ import annotations

import logging
import pickle

import pytest

from aep_io import AEPClient, AEPFileSystem, Service, Settings, plan_files
from aep_io.cli import main
from aep_io.emulator import EmulatorServer, ExportBatch, Fault
from aep_io.emulator.credentials import DEFAULT_CLIENT_SECRET


def test_nothing_leaks_through_logs_reprs_errors_and_cli(
    server: EmulatorServer, export: ExportBatch, caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    settings = Settings.from_env(server.client_env())
    with AEPClient(settings) as client:
        files = plan_files(export.batch_id, client=client)
        fs = AEPFileSystem(client, files=files)
        fs.cat_file(files[0].path, 0, 4)
        server.emulator.faults.add(Fault(status=503, route="catalog"))
        client.get_json(client.url(Service.CATALOG, "/dataSets"))
        server.emulator.credentials.revoke_all()
        client.get_json(client.url(Service.CATALOG, "/dataSets"))  # 401, refresh, replay
        tokens = [client.tokens.token().reveal()]
        for call in (lambda: fs.ls("01NOSUCHBATCH0000000000000"),
                     lambda: client.get_json(client.url(Service.CATALOG, "/batches/x"))):
            with pytest.raises(Exception) as info:
                call()
            texts += [str(info.value), repr(info.value)]
        texts += [repr(settings), str(settings), repr(client), repr(fs), repr(client.tokens),
                  repr(client.http.auth), str(pickle.dumps(settings)[:0])]
    bad = Settings.from_env({**server.client_env(), "AEP_CLIENT_SECRET": "wrong-secret-123"})
    with AEPClient(bad) as c, pytest.raises(Exception) as info:
        c.get_json(c.url(Service.CATALOG, "/dataSets"))
    texts += [str(info.value), repr(info.value)]

    for key, value in server.client_env().items():
        monkeypatch.setenv(key, value)
    assert main(["--verbose", "files", export.batch_id]) == 0
    monkeypatch.setenv("AEP_CLIENT_SECRET", "wrong-secret-123")
    assert main(["files", export.batch_id]) == 1
    out = capsys.readouterr()
    texts += [out.out, out.err, caplog.text]
    assert "aep-io-emulator" in out.out + out.err + caplog.text or export.batch_id in out.out

    secrets = [DEFAULT_CLIENT_SECRET, "wrong-secret-123", *tokens, "Bearer "]
    for text in texts:
        for secret in secrets:
            assert secret not in text, f"{secret[:6]}... leaked in {text[:200]!r}"

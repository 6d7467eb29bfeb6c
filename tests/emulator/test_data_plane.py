"""The emulator's HTTP surface, spoken to with plain httpx (no aep_io client code)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from aep_io.emulator import Emulator, EmulatorServer, ExportBatch, Tenant
from aep_io.emulator.credentials import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_ORG_ID


def _token(url: str, client_id: str = DEFAULT_CLIENT_ID,
           secret: str = DEFAULT_CLIENT_SECRET) -> str:
    r = httpx.post(f"{url}/ims/token/v3", data={
        "grant_type": "client_credentials", "client_id": client_id, "client_secret": secret,
        "scope": "openid,AdobeID"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 86399
    return body["access_token"]


@pytest.fixture(scope="module")
def headers(server: EmulatorServer) -> dict[str, str]:
    return {"Authorization": f"Bearer {_token(server.url)}", "x-api-key": DEFAULT_CLIENT_ID,
            "x-gw-ims-org-id": DEFAULT_ORG_ID, "x-sandbox-name": "prod"}


def test_token_client_id_in_query_string(server: EmulatorServer) -> None:
    r = httpx.post(f"{server.url}/ims/token/v3?client_id={DEFAULT_CLIENT_ID}",
                   data={"grant_type": "client_credentials",
                         "client_secret": DEFAULT_CLIENT_SECRET})
    assert r.status_code == 200


@pytest.mark.parametrize(
    ("drop", "status", "code"),
    [("Authorization", 403, "403010"), ("x-api-key", 403, "403000"),
     ("x-gw-ims-org-id", 400, "400003"), ("x-sandbox-name", 400, "400003")],
)
def test_gateway_header_checks(server: EmulatorServer, headers: dict[str, str], drop: str,
                               status: int, code: str, export: ExportBatch) -> None:
    sent = {k: v for k, v in headers.items() if k != drop}
    r = httpx.get(f"{server.url}/data/foundation/catalog/batches/{export.batch_id}", headers=sent)
    assert r.status_code == status
    assert r.json()["error_code"] == code


@pytest.mark.parametrize(
    ("header", "value", "status", "code"),
    [("Authorization", "Bearer emu1.x.y", 401, "401013"),
     ("Authorization", "Basic abc", 401, "401013"),
     ("x-api-key", "someone-else", 403, "403003"),
     ("x-gw-ims-org-id", "OTHER@AdobeOrg", 403, "403025")],
)
def test_gateway_rejects_wrong_credentials(server: EmulatorServer, headers: dict[str, str],
                                           header: str, value: str, status: int,
                                           code: str) -> None:
    r = httpx.get(f"{server.url}/data/foundation/catalog/dataSets",
                  headers={**headers, header: value})
    assert (r.status_code, r.json()["error_code"]) == (status, code)


def test_get_with_content_type_is_accepted(server: EmulatorServer,
                                           headers: dict[str, str]) -> None:
    r = httpx.get(f"{server.url}/data/foundation/catalog/dataSets",
                  headers={**headers, "Content-Type": "application/json"})
    assert r.status_code == 200


def test_other_sandbox_and_other_org_see_nothing(server: EmulatorServer, emulator: Emulator,
                                                 headers: dict[str, str],
                                                 export: ExportBatch) -> None:
    path = f"/data/foundation/catalog/batches/{export.batch_id}"
    dev = httpx.get(server.url + path, headers={**headers, "x-sandbox-name": "dev"})
    assert dev.status_code == 404
    emulator.credentials.add("other-client", "other-secret", "OTHER@AdobeOrg")
    other = {"Authorization": f"Bearer {_token(server.url, 'other-client', 'other-secret')}",
             "x-api-key": "other-client", "x-gw-ims-org-id": "OTHER@AdobeOrg",
             "x-sandbox-name": "prod"}
    assert httpx.get(server.url + path, headers=other).status_code == 404
    dsf = export.files[0][0]
    r = httpx.get(f"{server.url}/data/foundation/export/files/{dsf}", headers=other)
    assert r.status_code == 404
    assert r.json()["title"] == "Not found"


def test_catalog_shapes(server: EmulatorServer, headers: dict[str, str],
                        export: ExportBatch) -> None:
    batch = httpx.get(f"{server.url}/data/foundation/catalog/batches/{export.batch_id}",
                      headers=headers).json()
    record = batch[export.batch_id]
    assert record["status"] == "success"
    assert record["recordCount"] == record["metrics"]["outputRecordCount"] == 20_000
    assert {"type": "dataSet", "id": export.dataset_id} in record["relatedObjects"]
    ds = httpx.get(f"{server.url}/data/foundation/catalog/dataSets/{export.dataset_id}",
                   headers=headers).json()
    assert ds[export.dataset_id]["schemaRef"]["id"].endswith("profile__union")
    listed = httpx.get(f"{server.url}/data/foundation/catalog/batches",
                       params={"dataSet": export.dataset_id}, headers=headers).json()
    assert list(listed) == [export.batch_id]


def test_create_dataset(server: EmulatorServer, headers: dict[str, str]) -> None:
    body = {"name": "Audience export", "schemaRef": {
        "id": "https://ns.adobe.com/xdm/context/profile__union",
        "contentType": "application/vnd.adobe.xed+json;version=1"}}
    r = httpx.post(f"{server.url}/data/foundation/catalog/dataSets", json=body, headers=headers)
    assert r.status_code == 201
    (ref,) = r.json()
    assert ref.startswith("@/dataSets/") and len(ref.rsplit("/", 1)[1]) == 24
    assert r.headers["location"].endswith(ref[2:])


@pytest.mark.parametrize(
    ("content", "ctype", "status", "needle"),
    [(b"{not json", "application/json", 400, "malformed JSON"),
     (b"[]", "application/json", 400, "JSON object"),
     (b'{"name": "x"}', "application/json", 400, "schemaRef.id"),
     (b'{"name": 5, "schemaRef": {"id": "s"}}', "application/json", 400, "name"),
     (b'{"name": "x"}', "text/plain", 415, "content-type"),
     (b"x" * (1024 * 1024 + 1), "application/json", 413, "larger")],
)
def test_bad_dataset_bodies_get_4xx(server: EmulatorServer, headers: dict[str, str],
                                    content: bytes, ctype: str, status: int,
                                    needle: str) -> None:
    r = httpx.post(f"{server.url}/data/foundation/catalog/dataSets", content=content,
                   headers={**headers, "Content-Type": ctype})
    assert r.status_code == status
    assert needle in r.json()["detail"]


def test_file_listing_and_ranges(server: EmulatorServer, headers: dict[str, str],
                                 emulator: Emulator, export: ExportBatch) -> None:
    base = f"{server.url}/data/foundation/export"
    files = httpx.get(f"{base}/batches/{export.batch_id}/files", headers=headers).json()
    entry = files["data"][0]
    assert isinstance(entry["size"], str) and isinstance(entry["created"], str)
    assert entry["records"] == "5000"
    listing = httpx.get(entry["_links"]["self"]["href"], headers=headers).json()
    physical = listing["data"][0]
    size = int(physical["length"])
    href = physical["_links"]["self"]["href"]
    local = emulator.store.physical_file(entry["dataSetFileId"], physical["name"])
    assert local is not None
    data = local.path.read_bytes()

    full = httpx.get(href, headers=headers)
    assert full.status_code == 200 and full.content == data
    part = httpx.get(href, headers={**headers, "Range": "bytes=10-19"})
    assert part.status_code == 206
    assert part.headers["content-range"] == f"bytes 10-19/{size}"
    assert part.content == data[10:20]
    tail = httpx.get(href, headers={**headers, "Range": "bytes=-8"})
    assert tail.status_code == 206 and tail.content == data[-8:]
    clamp = httpx.get(href, headers={**headers, "Range": f"bytes={size - 4}-{size + 100}"})
    assert clamp.content == data[-4:]
    bad = httpx.get(href, headers={**headers, "Range": f"bytes={size}-"})
    assert bad.status_code == 416 and bad.headers["content-range"] == f"bytes */{size}"
    head = httpx.head(href, headers=headers)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-length"] == str(size)
    assert head.headers["accept-ranges"] == "bytes"


@pytest.mark.parametrize(
    "path",
    ["../../catalog.sqlite", "/etc/passwd", "..%2F..%2Femulator.json", "00000.bin"],
)
def test_path_cannot_escape_the_dataset_file(server: EmulatorServer, headers: dict[str, str],
                                             export: ExportBatch, path: str) -> None:
    dsf = export.files[0][0]
    r = httpx.get(f"{server.url}/data/foundation/export/files/{dsf}", params={"path": path},
                  headers=headers)
    assert r.status_code == 404


@pytest.mark.parametrize("params", [{"limit": "0"}, {"limit": "101"}, {"start": "x"}])
def test_bad_paging_parameters(server: EmulatorServer, headers: dict[str, str],
                               export: ExportBatch, params: dict[str, str]) -> None:
    r = httpx.get(f"{server.url}/data/foundation/export/batches/{export.batch_id}/files",
                  params=params, headers=headers)
    assert r.status_code == 400
    assert "query parameter" in r.json()["detail"]


def test_state_survives_a_restart(tmp_path: Path) -> None:
    emu = Emulator(tmp_path)
    export = emu.add_synthetic_export(500, parts=2)
    emu.close()
    again = Emulator(tmp_path)
    with EmulatorServer(again) as srv:
        token = _token(srv.url)
        hdrs = {"Authorization": f"Bearer {token}", "x-api-key": DEFAULT_CLIENT_ID,
                "x-gw-ims-org-id": DEFAULT_ORG_ID, "x-sandbox-name": "prod"}
        r = httpx.get(f"{srv.url}/data/foundation/export/batches/{export.batch_id}/files",
                      headers=hdrs)
        assert len(r.json()["data"]) == 2
    again.close()
    assert Tenant(DEFAULT_ORG_ID, "prod") == again.default_tenant


def test_server_refuses_non_loopback(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="loopback"):
        EmulatorServer(Emulator(tmp_path), host="0.0.0.0")


def test_listening_socket_lets_asyncio_disable_nagle(server: EmulatorServer) -> None:
    # asyncio sets TCP_NODELAY on accepted sockets only when proto is IPPROTO_TCP; without it
    # every small response stalls ~40 ms (Nagle + delayed ACK).
    import socket

    assert server._socket.proto == socket.IPPROTO_TCP

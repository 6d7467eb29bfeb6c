"""The three paging styles, over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from aep_io import AEPClient, Service, Settings
from aep_io.emulator import Emulator, EmulatorServer, ExportBatch
from aep_io.paging import PagingLoopError, iter_catalog, iter_cursor_pages, iter_linked_pages
from aep_io.planning import plan_files


@pytest.fixture(scope="module")
def many_files(emulator: Emulator, tmp_path_factory: pytest.TempPathFactory) -> ExportBatch:
    """250 one-row parquet files: 240 top-level dataset files + 1 directory holding 10."""
    root = tmp_path_factory.mktemp("many")
    paths = []
    for i in range(250):
        path = Path(root) / f"part-{i:05d}.parquet"
        pq.write_table(pa.table({"i": [i]}), path)
        paths.append(path)
    return emulator.add_export_batch(paths, directory_groups=10)


def test_linked_pages_cover_a_250_file_batch(client: AEPClient, emulator: Emulator,
                                             many_files: ExportBatch) -> None:
    url = client.url(Service.DATA_ACCESS, f"/batches/{many_files.batch_id}/files")
    pages = list(iter_linked_pages(client, url))
    assert [len(p["data"]) for p in pages] == [100, 100, 41]  # 240 files + 1 directory
    ids = [e["dataSetFileId"] for p in pages for e in p["data"]]
    assert len(set(ids)) == 241


def test_plan_finds_every_file_once_including_nested(client: AEPClient, emulator: Emulator,
                                                     many_files: ExportBatch) -> None:
    files = plan_files([many_files.batch_id], client=client)
    assert sorted(f.name for f in files) == [f"part-{i:05d}.parquet" for i in range(250)]
    assert len({f.path for f in files}) == 250
    # 3 pages of the batch; one listing per dataset file: 240 files, the directory, its 10
    assert emulator.counters.requests("batch_files") == 3
    assert emulator.counters.requests("listing") == 240 + 1 + 10
    assert emulator.counters.requests("catalog") == 1
    assert sum(f.size for f in files) == many_files.size


def test_catalog_paging(client: AEPClient, emulator: Emulator) -> None:
    tenant = emulator.default_tenant
    for i in range(7):
        emulator.create_dataset(f"paging-{i}", tenant=tenant)
    expected = {i for i, _ in emulator.store.list("dataSet", tenant)}
    got = list(iter_catalog(client, client.url(Service.CATALOG, "/dataSets"), limit=3))
    assert {i for i, _ in got} == expected
    assert len(got) == len(expected)
    assert emulator.counters.requests("catalog") == len(expected) // 3 + 1


def test_catalog_limit_is_checked(client: AEPClient) -> None:
    with pytest.raises(ValueError, match="1 to 100"):
        next(iter_catalog(client, client.url(Service.CATALOG, "/dataSets"), limit=500))


# -- export-jobs style cursor paging, against a small server speaking that shape -------------
_JOBS = [{"id": n, "creationTime": 1_700_000_000_000 + n} for n in range(7, 0, -1)]


async def _export_jobs(request: Request) -> JSONResponse:
    limit = int(request.query_params.get("limit", "3"))
    offset = request.query_params.get("offset")
    start = 0
    if offset:
        start = next(i for i, j in enumerate(_JOBS) if f"{j['creationTime']}_{j['id']}" == offset)
        start += 1
    page = _JOBS[start : start + limit]
    more = start + limit < len(_JOBS)
    cursor = f"{page[-1]['creationTime']}_{page[-1]['id']}" if page else ""
    return JSONResponse({
        "records": page,
        "page": {"sortField": "createdTime", "sort": "desc", "pageOffset": cursor,
                 "pageSize": len(page)},
        "link": {"next": f"/export/jobs/?limit={limit}&offset={cursor}" if more else ""},
    })


async def _loop(request: Request) -> JSONResponse:
    return JSONResponse({"records": [{"id": 1}], "link": {"next": "/loop"}})


@pytest.fixture(scope="module")
def cursor_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AEPClient]:
    emu = Emulator(tmp_path_factory.mktemp("cursor"))
    emu._app = Starlette(routes=[Route("/data/core/ups/export/jobs", _export_jobs),
                                 Route("/data/core/ups/export/jobs/", _export_jobs),
                                 Route("/data/core/ups/loop", _loop)])
    with EmulatorServer(emu) as srv:
        settings = Settings(client_id="c", org_id="o", access_token="t", platform_url=srv.url,
                            ims_url=srv.url)
        with AEPClient(settings) as c:
            yield c


def test_cursor_paging_follows_link_next(cursor_server: AEPClient) -> None:
    c = cursor_server
    items = list(iter_cursor_pages(c, c.url(Service.SEGMENTATION, "/export/jobs"),
                                   params={"limit": 3}))
    assert [j["id"] for j in items] == [7, 6, 5, 4, 3, 2, 1]


def test_a_looping_next_link_is_refused(cursor_server: AEPClient) -> None:
    c = cursor_server
    with pytest.raises(PagingLoopError):
        list(iter_cursor_pages(c, c.url(Service.SEGMENTATION, "/loop")))

"""Exports delivered to S3 (a dataset-export destination) read with the same API as ``aep://``.

A real S3 protocol implementation, not a mock object: moto's S3 server on 127.0.0.1 (an
ephemeral port), spoken to over HTTP by s3fs. The emulator delivers an export job's parts to
the bucket; ``scan_batches``, ``to_duckdb`` and the Dask reader then read them from ``s3://``
and must give the rows read through ``aep://``, row for row, moving as few bytes. Bytes are
counted on the server side of both: the emulator's counters and a WSGI middleware around moto.
"""

from __future__ import annotations

import json
import logging
import os
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("moto.server", reason="the S3 tests need moto's server mode: moto[server]")
s3fs = pytest.importorskip("s3fs", reason="reading s3:// needs s3fs: aep_io[s3]")

import duckdb  # noqa: E402
import polars as pl  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.compute as pc  # noqa: E402
from moto.core.authorization import enable_iam_authentication  # noqa: E402

from aep_io import (  # noqa: E402
    AEPClient,
    AEPFileSystem,
    Settings,
    create_dataset,
    create_export_job,
    flatten_membership,
    scan_batches,
    to_duckdb,
    wait_for_export_job,
)
from aep_io.duckdb_io import to_dataset  # noqa: E402
from aep_io.emulator import Emulator, EmulatorServer  # noqa: E402
from aep_io.emulator.destinations import (  # noqa: E402
    AEP_FOLDER_TEMPLATE,
    Delivery,
    S3Destination,
)
from aep_io.emulator.s3 import FAKE_SECRET_KEY, S3Endpoint, moto_s3  # noqa: E402
from aep_io.export_jobs import ExportJob  # noqa: E402
from aep_io.sources import Source  # noqa: E402

PROFILES = 3_000
PREFIX = "aep/dataset-exports"
BAD_SECRET = "not-the-secret-" + "q" * 25
US = pl.col("homeAddress").struct.field("countryCode") == "US"
_AWS_VARS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
             "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION",
             "AWS_DEFAULT_REGION")  # fmt: skip


@pytest.fixture(scope="module", autouse=True)
def _aws_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """No AWS settings of the machine leak in, and botocore never probes a metadata service."""
    home = tmp_path_factory.mktemp("aws")
    with pytest.MonkeyPatch.context() as mp:
        for name in _AWS_VARS:
            mp.delenv(name, raising=False)
        mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
        mp.setenv("AWS_CONFIG_FILE", str(home / "config"))
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", str(home / "credentials"))
        s3fs.S3FileSystem.clear_instance_cache()
        yield
        s3fs.S3FileSystem.clear_instance_cache()


@pytest.fixture(scope="module")
def s3(_aws_env: None) -> Iterator[S3Endpoint]:
    with moto_s3("aep-io-exports") as endpoint:
        yield endpoint


@pytest.fixture(scope="module")
def emu(s3: S3Endpoint, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    emulator = Emulator(tmp_path_factory.mktemp("s3-emulator"), job_step_delay=0,
                        s3_destination=s3.destination(prefix=PREFIX))  # fmt: skip
    emulator.export_part_rows = 1_000  # type: ignore[attr-defined]  # 3 parts
    emulator.export_row_group_rows = 256  # type: ignore[attr-defined]  # 4 row groups each
    emulator.profiles.load_synthetic(emulator.default_tenant, profiles=PROFILES, seed=13)
    yield emulator
    emulator.close()


@pytest.fixture(scope="module")
def aep(emu: Emulator) -> Iterator[AEPClient]:
    with EmulatorServer(emu) as srv, AEPClient(Settings.from_env(srv.client_env())) as client:
        yield client


@pytest.fixture(scope="module")
def dataset(aep: AEPClient) -> str:
    return create_dataset(aep, "exports delivered to S3")


@pytest.fixture(scope="module")
def job(aep: AEPClient, dataset: str) -> ExportJob:
    created = create_export_job(aep, dataset)
    done = wait_for_export_job(aep, created.id, timeout=60)
    assert done.status == "SUCCEEDED", done.errors
    return done


@pytest.fixture(scope="module")
def delivery(emu: Emulator, job: ExportJob) -> Delivery:
    (only,) = emu.destinations.for_job(job.id)
    assert only.status == "delivered", only.error
    return only


def _key(table: pa.Table) -> pa.Array:
    """The primary identity (the ECID) of each profile."""
    column = table.column("identityMap")
    ids = pc.map_lookup(column, pa.scalar("ECID", column.type.key_type), "first")
    return pc.struct_field(pc.list_element(ids, 0), "id")


def _by_identity(frame: pl.DataFrame) -> pa.Table:
    table = frame.to_arrow()
    return table.append_column("__k", _key(table)).sort_by("__k").drop_columns(["__k"])


def _sorted(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.sort(frame.columns, nulls_last=True)


def _secret_free(text: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in text


# -- delivery -----------------------------------------------------------------------------------


def test_export_job_parts_land_in_the_bucket_byte_for_byte(
    emu: Emulator, s3: S3Endpoint, job: ExportJob, delivery: Delivery
) -> None:
    assert delivery.url == s3.url(PREFIX, job.id, job.batch_ids[0])
    assert delivery.batch_id == job.batch_ids[0]
    fs = s3.filesystem()
    found = sorted(fs.find(delivery.url))
    assert found == sorted(f"{s3.bucket}/{k}" for k in delivery.keys)
    assert len(found) == 3 and all(p.endswith("-c000.snappy.parquet") for p in found)
    local = dict((name, path) for path, name in emu.destinations.batch_parts(job.batch_ids[0]))
    for path in found:
        assert fs.cat_file(path) == Path(local[path.rsplit("/", 1)[1]]).read_bytes()
    assert delivery.bytes == sum(Path(p).stat().st_size for p in local.values())


def test_a_failed_delivery_is_recorded_not_fatal_and_shows_no_secret(
    emu: Emulator, s3: S3Endpoint, aep: AEPClient, dataset: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    broken = emu.destinations.add(S3Destination(
        "no-such-bucket-here", endpoint_url=s3.endpoint_url, key=s3.access_key,
        secret=BAD_SECRET, region=s3.region, name="broken"))  # fmt: skip
    try:
        with caplog.at_level(logging.DEBUG):
            done = wait_for_export_job(aep, create_export_job(aep, dataset).id, timeout=60)
    finally:
        emu.destinations.remove(broken)
    assert done.status == "SUCCEEDED"  # as at AEP: the dataflow run fails, not the export job
    by_name = {d.destination: d for d in emu.destinations.for_job(done.id)}
    assert by_name["s3"].status == "delivered"
    assert by_name["broken"].status == "failed" and by_name["broken"].error
    assert "no-such-bucket-here" in caplog.text
    _secret_free(caplog.text + repr(by_name) + repr(emu.destinations) + repr(broken),
                 BAD_SECRET, s3.secret_key)


def test_large_parts_go_up_as_multipart_uploads(s3: S3Endpoint, tmp_path: Path) -> None:
    part = tmp_path / "part-00000-big-c000.snappy.parquet"
    part.write_bytes(os.urandom(11 * 2**20))
    dest = s3.destination(prefix="multipart", multipart_chunksize=5 * 2**20)
    s3.traffic.reset()
    (key,) = dest.upload([(part, part.name)], dest.folder(exportJobId="7", batchId="B"))
    assert key == f"multipart/7/B/{part.name}"
    info = s3.filesystem().info(f"{s3.bucket}/{key}")
    assert info["size"] == part.stat().st_size
    assert info["ETag"].strip('"').endswith("-3")  # 5 + 5 + 1 MiB: a multipart ETag
    puts = [r for r in s3.traffic.log() if r.method == "PUT"]  # UploadPart x 3
    assert len(puts) == 3 and sum(r.received for r in puts) == info["size"]
    assert s3.traffic.requests("POST") == 2  # CreateMultipartUpload, CompleteMultipartUpload


def test_folder_templates() -> None:
    fields = {"exportJobId": "42", "batchId": "01BATCH", "datasetId": "ds1",
              "exportTime": "202601020304"}  # fmt: skip
    assert S3Destination("b", prefix="/a/b/").folder(**fields) == "a/b/42/01BATCH"
    aep_like = S3Destination("b", prefix="mine", folder_template=AEP_FOLDER_TEMPLATE)
    assert aep_like.folder(**fields) == "mine/ds1/exportTime=202601020304"
    assert S3Destination("b").url(42, "01BATCH", "*.parquet") == "s3://b/42/01BATCH/*.parquet"
    with pytest.raises(ValueError, match="unknown placeholder"):
        S3Destination("b", folder_template="{jobId}")
    with pytest.raises(ValueError, match="minimum part size"):
        S3Destination("b", multipart_chunksize=1024)
    shown = repr(S3Destination("b", key="AKIAEXAMPLE", secret=BAD_SECRET))
    assert "credentials=explicit" in shown
    _secret_free(shown, BAD_SECRET, "AKIAEXAMPLE")


# -- reading: same rows, same bytes ------------------------------------------------------------


def test_scan_batches_from_s3_equals_aep_row_for_row(
    aep: AEPClient, s3: S3Endpoint, job: ExportJob, delivery: Delivery
) -> None:
    from_s3 = scan_batches(delivery.glob, storage_options=s3.storage_options()).collect()
    from_aep = scan_batches(job.batch_ids, client=aep).collect()
    assert from_s3.height == from_aep.height == PROFILES
    assert from_s3.equals(from_aep)  # same files in the same order
    assert _by_identity(from_s3).equals(_by_identity(from_aep))


def test_projection_and_predicate_same_rows_and_no_more_bytes(
    emu: Emulator, aep: AEPClient, s3: S3Endpoint, job: ExportJob, delivery: Delivery
) -> None:
    def query(lf: pl.LazyFrame) -> pl.DataFrame:
        return lf.select("identityMap", "homeAddress").filter(US).collect()

    s3.traffic.reset()
    got = query(scan_batches(delivery.glob, storage_options=s3.storage_options()))
    s3_bytes, s3_gets = s3.traffic.object_bytes(), len(s3.traffic.object_gets())
    emu.counters.reset()
    want = query(scan_batches(job.batch_ids, client=aep))
    aep_bytes, aep_gets = emu.counters.bytes_sent("file"), emu.counters.requests("file")
    assert 0 < got.height < PROFILES and got.columns == ["identityMap", "homeAddress"]
    assert _by_identity(got).equals(_by_identity(want))
    assert all(r.range for r in s3.traffic.object_gets())  # ranged GETs only
    assert s3_bytes <= aep_bytes * 1.10 and s3_gets <= aep_gets * 1.10
    # segmentMembership, over half of every part, is not fetched (each file's 64 KiB footer
    # read is, with some column chunks inside it)
    assert s3_bytes < delivery.bytes * 0.6


def test_flattening_identical(
    aep: AEPClient, s3: S3Endpoint, job: ExportJob, delivery: Delivery
) -> None:
    from_s3 = flatten_membership(
        scan_batches(delivery.glob, storage_options=s3.storage_options()), namespace="ups")
    from_aep = flatten_membership(scan_batches(job.batch_ids, client=aep), namespace="ups")
    got, want = from_s3.collect(), from_aep.collect()
    assert got.height == want.height > PROFILES
    assert _sorted(got).equals(_sorted(want))


def test_to_duckdb_over_s3_same_result_and_bytes(
    emu: Emulator, aep: AEPClient, s3: S3Endpoint, job: ExportJob, delivery: Delivery
) -> None:
    sql = ("SELECT homeAddress.countryCode AS country, count(*) AS n, "
           "round(sum(_acme.lifetimeValue), 2) AS value FROM audience "
           "WHERE _acme.loyaltyTier IN ('gold', 'platinum') GROUP BY 1 ORDER BY 1")  # fmt: skip
    s3.traffic.reset()
    got = to_duckdb(delivery.glob, storage_options=s3.storage_options()).sql(sql).fetchall()
    s3_bytes = s3.traffic.object_bytes()
    # The same kind of view over the AEP batch, on the same terms: a pyarrow dataset (to_duckdb
    # over aep:// uses DuckDB's own reader, which reads single leaves) without the footers
    # that AEPFileSystem keeps (s3fs keeps none).
    emu.counters.reset()
    fs = AEPFileSystem(aep)
    fs.tails.max_tail = 0
    con = duckdb.connect()
    con.register("audience", to_dataset(Source.of(job.batch_ids, filesystem=fs)))
    want = con.sql(sql).fetchall()
    aep_bytes = emu.counters.bytes_sent("file")
    assert got == want and got
    assert to_duckdb(job.batch_ids, client=aep).sql(sql).fetchall() == want
    # without aep_io's default_cache_type="none", s3fs's 50 MB read-ahead moved whole parts
    assert s3_bytes <= aep_bytes * 1.10 and s3_bytes < delivery.bytes / 2


def test_dask_reader_over_s3(
    aep: AEPClient, s3: S3Endpoint, job: ExportJob, delivery: Delivery
) -> None:
    pytest.importorskip("dask.dataframe", reason="Dask is an optional extra: aep_io[dask]")
    from aep_io.dask_io import read_batches

    flt = pc.field("homeAddress", "countryCode") == "US"
    kwargs: dict[str, Any] = {"columns": ["identityMap", "segmentMembership", "homeAddress"],
                              "filters": flt}  # fmt: skip
    got = read_batches(delivery.glob, storage_options=s3.storage_options(), **kwargs)
    want = read_batches(job.batch_ids, client=aep, **kwargs)
    assert got.npartitions == want.npartitions == 3
    got_df = pl.from_arrow(pa.Table.from_pandas(got.compute(scheduler="sync"),
                                                preserve_index=False))  # fmt: skip
    want_df = pl.from_arrow(pa.Table.from_pandas(want.compute(scheduler="sync"),
                                                 preserve_index=False))  # fmt: skip
    assert isinstance(got_df, pl.DataFrame) and isinstance(want_df, pl.DataFrame)
    assert 0 < got_df.height < PROFILES
    assert _by_identity(got_df).equals(_by_identity(want_df))
    flat = read_batches(delivery.glob, storage_options=s3.storage_options(), flatten=True,
                        namespace="ups").compute(scheduler="threads")  # fmt: skip
    flat_want = flatten_membership(scan_batches(job.batch_ids, client=aep),
                                   namespace="ups").collect()  # fmt: skip
    flat_got = pl.from_arrow(pa.Table.from_pandas(flat, preserve_index=False))
    assert isinstance(flat_got, pl.DataFrame)
    assert _sorted(flat_got).equals(_sorted(flat_want))
    _secret_free(" ".join(str(k) for k in got.dask) + repr(got) + repr(list(got.dask.values())),
                 s3.secret_key)


# -- credentials: the usual places, never printed ------------------------------------------------


@pytest.fixture(scope="module")
def iam_key(s3: S3Endpoint) -> dict[str, str]:
    """A real access key of an IAM user on the moto server, allowed every S3 action: with
    moto's IAM authentication on, only correctly signed requests with it get through."""
    import botocore.session

    iam = botocore.session.Session().create_client(
        "iam", region_name=s3.region, endpoint_url=s3.endpoint_url,
        aws_access_key_id=s3.access_key, aws_secret_access_key=s3.secret_key)  # fmt: skip
    iam.create_user(UserName="aep-io-reader")
    iam.put_user_policy(UserName="aep-io-reader", PolicyName="s3", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))  # fmt: skip
    key = iam.create_access_key(UserName="aep-io-reader")["AccessKey"]
    return {"id": key["AccessKeyId"], "secret": key["SecretAccessKey"]}


def test_credentials_from_the_environment(
    s3: S3Endpoint, delivery: Delivery, iam_key: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {**s3.env(), "AWS_ACCESS_KEY_ID": iam_key["id"],
           "AWS_SECRET_ACCESS_KEY": iam_key["secret"]}  # fmt: skip
    for name, value in env.items():
        monkeypatch.setenv(name, value)  # endpoint from AWS_ENDPOINT_URL_S3 too
    s3fs.S3FileSystem.clear_instance_cache()
    s3.traffic.reset()
    try:
        with enable_iam_authentication():
            got = scan_batches(delivery.glob).select("identityMap").collect()
            assert got.height == PROFILES
            assert s3.traffic.object_gets()  # the endpoint came from AWS_ENDPOINT_URL_S3
            monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", BAD_SECRET)
            s3fs.S3FileSystem.clear_instance_cache()
            with pytest.raises(Exception) as failed:  # whatever surfaces
                scan_batches(delivery.glob).select("identityMap").collect()
    finally:
        s3fs.S3FileSystem.clear_instance_cache()
    text = "".join(traceback.format_exception(failed.value))
    assert "signature" in text.lower()
    _secret_free(text, BAD_SECRET, iam_key["secret"])


def test_credentials_from_a_profile(
    s3: S3Endpoint, delivery: Delivery, iam_key: dict[str, str]
) -> None:
    creds = Path(os.environ["AWS_SHARED_CREDENTIALS_FILE"])
    creds.write_text(f"[aep-io-test]\naws_access_key_id = {iam_key['id']}\n"
                     f"aws_secret_access_key = {iam_key['secret']}\n")  # fmt: skip
    options = s3.storage_options(credentials=False, profile="aep-io-test")
    with enable_iam_authentication():
        got = scan_batches(delivery.glob, storage_options=options).select("person").collect()
        assert got.height == PROFILES
        with pytest.raises(Exception):  # noqa: B017 - without credentials: refused
            scan_batches(delivery.glob, storage_options={**options, "profile": None,
                                                         "skip_instance_cache": True}).collect()


def test_a_bad_secret_is_never_printed(
    s3: S3Endpoint, delivery: Delivery, iam_key: dict[str, str],
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str],
) -> None:
    options = s3.storage_options(key=iam_key["id"], secret=BAD_SECRET)
    with caplog.at_level(logging.DEBUG), enable_iam_authentication():
        lf = scan_batches(delivery.glob, storage_options=options)
        shown = repr(lf)
        with pytest.raises(Exception) as failed:  # whatever surfaces
            lf.select("identityMap").collect()
        with pytest.raises(Exception) as failed_duck:
            to_duckdb(delivery.glob, storage_options=options).sql(
                "SELECT count(*) FROM audience").fetchall()
    out = capsys.readouterr()
    text = "".join(traceback.format_exception(failed.value)) + "".join(
        traceback.format_exception(failed_duck.value))
    assert "PermissionError" in text or "signature" in text.lower()
    _secret_free(text + shown + caplog.text + out.out + out.err + repr(s3), BAD_SECRET,
                 s3.secret_key)


@pytest.mark.slow
def test_demo_s3_flag(capsys: pytest.CaptureFixture[str]) -> None:
    from aep_io.cli import main

    assert main(["demo", "--profiles", "2000", "--s3"]) == 0
    out = capsys.readouterr().out
    assert "identical to aep://" in " ".join(out.split())
    assert "s3://aep-io-demo/aep-demo/" in out
    _secret_free(out, FAKE_SECRET_KEY)

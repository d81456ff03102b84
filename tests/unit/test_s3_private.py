"""The session's S3 answers only requests signed with the session's own key (a real moto server, no Docker)."""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from pytest_sagemaker_contract.platform.s3 import S3Server


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    with S3Server() as server:
        client = server.client()
        client.create_bucket(Bucket="data")
        client.put_object(Bucket="data", Key="dir/a b+c.csv", Body=b"1,2\n")
        yield server


def stranger(s3: S3Server, key: str = "testing", secret: str = "testing") -> object:
    return boto3.session.Session(aws_access_key_id=key, aws_secret_access_key=secret, region_name="us-east-1").client(
        "s3", endpoint_url=s3.endpoint_url, config=Config(retries={"max_attempts": 1})
    )


def test_the_session_reads_and_writes_with_its_own_key(s3: S3Server) -> None:
    client = s3.client()
    assert client.get_object(Bucket="data", Key="dir/a b+c.csv")["Body"].read() == b"1,2\n"
    client.put_object(Bucket="data", Key="dir/new?x=1&y.txt", Body=b"x" * 70_000)
    keys = [o["Key"] for o in client.list_objects_v2(Bucket="data", Prefix="dir/")["Contents"]]
    assert keys == ["dir/a b+c.csv", "dir/new?x=1&y.txt"]
    url = client.generate_presigned_url("get_object", Params={"Bucket": "data", "Key": "dir/a b+c.csv"})
    with urllib.request.urlopen(url) as response:
        assert response.read() == b"1,2\n"


@pytest.mark.parametrize(
    ("key", "secret"),
    [("testing", "testing"), ("sagemaker-contract", "sagemaker-contract"), (None, "wrong-secret")],
    ids=["dummy-keys", "old-container-keys", "right-key-wrong-secret"],
)
@pytest.mark.parametrize("operation", ["list_buckets", "list_objects", "get_object", "put_object", "create_bucket"])
def test_any_other_client_is_denied(s3: S3Server, key: str | None, secret: str, operation: str) -> None:
    client = stranger(s3, key or s3.keys.access_key_id, secret)
    calls = {
        "list_buckets": lambda: client.list_buckets(),  # type: ignore[attr-defined]
        "list_objects": lambda: client.list_objects_v2(Bucket="data"),  # type: ignore[attr-defined]
        "get_object": lambda: client.get_object(Bucket="data", Key="dir/a b+c.csv"),  # type: ignore[attr-defined]
        "put_object": lambda: client.put_object(Bucket="data", Key="evil", Body=b"x"),  # type: ignore[attr-defined]
        "create_bucket": lambda: client.create_bucket(Bucket="mine"),  # type: ignore[attr-defined]
    }
    with pytest.raises(ClientError) as caught:
        calls[operation]()
    # as S3 answers: a key it does not know is denied, the right key signed with another secret does not match
    expected = "AccessDenied" if key else "SignatureDoesNotMatch"
    assert caught.value.response["Error"]["Code"] == expected
    assert "evil" not in [o["Key"] for o in s3.client().list_objects_v2(Bucket="data").get("Contents", [])]


def test_an_unsigned_request_is_denied(s3: S3Server) -> None:
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(f"{s3.endpoint_url}/data/dir/a%20b%2Bc.csv")
    assert caught.value.code == 403
    assert b"AccessDenied" in caught.value.read()


def test_each_session_has_its_own_key() -> None:
    assert S3Server().keys != S3Server().keys


def test_uploads_go_straight_into_the_store_and_read_back_through_s3(s3: S3Server, tmp_path: Path) -> None:
    """model.tar.gz is written into moto's store in chunks (no whole-object copy); S3 clients see a normal object."""
    data = os.urandom(3 * 2**20 + 17)
    path = tmp_path / "model.tar.gz"
    path.write_bytes(data)
    s3.upload_file(path, "s3://data/out/model.tar.gz")
    head = s3.client().head_object(Bucket="data", Key="out/model.tar.gz")
    assert head["ContentLength"] == len(data)
    assert head["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
    assert s3.client().get_object(Bucket="data", Key="out/model.tar.gz")["Body"].read() == data
    assert s3.get_bytes("s3://data/out/model.tar.gz") == data


@pytest.mark.parametrize("size", [1000, 40 * 2**20], ids=["in-memory", "spooled-to-disk"])
def test_open_streams_an_object_from_the_store(s3: S3Server, tmp_path: Path, size: int) -> None:
    """Pipe mode reads objects through `open`: independent readers, the whole object, nothing else."""
    data = os.urandom(size)
    path = tmp_path / "part.bin"
    path.write_bytes(data)
    s3.upload_file(path, "s3://data/pipe/part.bin")
    obj = s3.head("s3://data/pipe/part.bin")
    assert obj is not None
    first, second = s3.open(obj), s3.open(obj)
    try:
        assert first.read(10) == data[:10]
        assert second.read() == data
        assert first.read() == data[10:]
    finally:
        first.close()
        second.close()

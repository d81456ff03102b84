"""Pipe input mode on the real Docker engine: a busybox reader in a container, the feeder on the host, moto S3.

Driven with the platform's parts (Engine, S3Server, HostLayout, pipe_feeder) rather than a whole job, so
what is proven is the FIFO protocol itself: `<channel>_0` there at start, the next one appearing after
each epoch, the bytes of each epoch exactly what SageMaker would stream.
"""

from __future__ import annotations

import gzip
import json
import os
import struct
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pytest_sagemaker_contract.platform import Engine, S3Server
from pytest_sagemaker_contract.platform.engine import LABEL_RUN
from pytest_sagemaker_contract.platform.layout import HostLayout
from pytest_sagemaker_contract.platform.pipes import PipeFeeder, epoch_items
from pytest_sagemaker_contract.spec import ChannelSpec

from ..unit.pipe_helpers import feeder_for, host
from .conftest_helpers import IMAGES

BUCKET = "pipe-mode-tests"
MAGIC = bytes.fromhex("0a23d7ce")


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Server]:
    server = S3Server().start()
    server.ensure_bucket(BUCKET)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def reader(example_image: Callable[[str | Path], str]) -> str:
    return example_image(IMAGES / "pipe-reader")


@pytest.fixture
def engine(docker_client: Any) -> Engine:
    return Engine(docker_client)


def seed(s3: S3Server, objects: dict[str, bytes]) -> str:
    """Put `objects` under a fresh prefix; return its URI."""
    prefix = f"p{uuid.uuid4().hex[:8]}"
    for key, body in objects.items():
        s3.client().put_object(Bucket=BUCKET, Key=f"{prefix}/{key}", Body=body)
    return f"s3://{BUCKET}/{prefix}"


def parse_recordio(data: bytes) -> list[bytes]:
    """A small dmlc-style reader (parts joined by the magic word, padding skipped)."""
    records: list[bytes] = []
    parts: list[bytes] = []
    pos = 0
    while pos < len(data):
        assert data[pos : pos + 4] == MAGIC, f"no RecordIO magic at byte {pos}"
        (lrec,) = struct.unpack_from("<I", data, pos + 4)
        length = lrec & ((1 << 29) - 1)
        parts.append(data[pos + 8 : pos + 8 + length])
        pos += 8 + (length + 3) // 4 * 4
        if lrec >> 29 in (0, 3):
            records.append(MAGIC.join(parts))
            parts = []
    return records


def run_reader(
    engine: Engine,
    image: str,
    layout: HostLayout,
    feeder: PipeFeeder,
    run_id: str,
    env: dict[str, str] | None = None,
) -> tuple[int, str]:
    """Create the container over `layout`, start the feeder then the container, wait; (exit code, logs)."""
    container = engine.create(
        image=image,
        name=f"sm-pipe-{uuid.uuid4().hex[:8]}",
        hostname="algo-1",
        entrypoint=None,
        command=None,
        environment=env or {},
        binds=layout.binds(),
        labels={LABEL_RUN: run_id},
        network="none",
    )
    try:
        assert feeder.fifo(0).is_fifo(), "<channel>_0 must exist before the container starts"
        feeder.start()
        assert engine.start(container).error is None
        code = engine.wait(container, timeout=300)
        # The writer must end once told to, whatever the reader did; the bound is generous (a busy machine),
        # a writer blocked on a FIFO nobody reads would never end.
        assert feeder.stop(timeout=60), "the feeder did not end"
        assert not feeder.running
        return code if code is not None else -1, engine.logs(container)
    finally:
        feeder.stop()
        engine.remove(container)


def epochs(layout: HostLayout, count: int = 3) -> list[bytes]:
    return [(layout.model / f"epoch{i}").read_bytes() for i in range(count)]


def test_three_epochs_each_the_concatenation_in_key_order(
    s3: S3Server, engine: Engine, reader: str, tmp_path: Path, no_leftovers: str
) -> None:
    big = os.urandom((1 << 20) + 12345)  # more than one 1 MiB chunk
    uri = seed(s3, {"b.csv": b"2,b\n", "a.csv": b"1,a\n", "c/big.bin": big})
    layout = host(tmp_path)
    feeder = feeder_for(s3, layout, ChannelSpec("train", uri, input_mode="Pipe"), max_epochs=3)
    code, logs = run_reader(engine, reader, layout, feeder, no_leftovers)
    assert code == 0, logs
    assert epochs(layout) == [b"1,a\n2,b\n" + big] * 3
    assert feeder.epochs_completed == 3
    assert feeder.error is None
    assert not (layout.data / "train").exists()


def test_gzip_objects_arrive_decompressed(
    s3: S3Server, engine: Engine, reader: str, tmp_path: Path, no_leftovers: str
) -> None:
    uri = seed(s3, {"x1.gz": gzip.compress(b"first\n" * 1000), "x2.gz": gzip.compress(b"second\n")})
    layout = host(tmp_path)
    feeder = feeder_for(s3, layout, ChannelSpec("train", uri, input_mode="Pipe", compression="Gzip"))
    code, logs = run_reader(engine, reader, layout, feeder, no_leftovers)
    assert code == 0, logs
    assert epochs(layout) == [b"first\n" * 1000 + b"second\n"] * 3


def test_recordio_wraps_each_object_in_one_record(
    s3: S3Server, engine: Engine, reader: str, tmp_path: Path, no_leftovers: str
) -> None:
    bodies = {"r1": b"abc", "r2": b"wxyz" + MAGIC + b"tail", "r3": b""}
    uri = seed(s3, bodies)
    layout = host(tmp_path)
    feeder = feeder_for(s3, layout, ChannelSpec("train", uri, input_mode="Pipe", record_wrapper="RecordIO"))
    code, logs = run_reader(engine, reader, layout, feeder, no_leftovers)
    assert code == 0, logs
    for data in epochs(layout):
        assert data[:8] == MAGIC + struct.pack("<I", 3)  # the first record: cflag 0, length 3
        assert len(data) % 4 == 0
        assert parse_recordio(data) == list(bodies.values())


def test_shuffle_config_changes_the_order_per_epoch_deterministically(
    s3: S3Server, engine: Engine, reader: str, tmp_path: Path, no_leftovers: str
) -> None:
    bodies = {f"k{i:02d}": f"<{i}>".encode() for i in range(12)}
    uri = seed(s3, bodies)
    layout = host(tmp_path)
    feeder = feeder_for(s3, layout, ChannelSpec("train", uri, input_mode="Pipe"), shuffle_seed=5)
    code, logs = run_reader(engine, reader, layout, feeder, no_leftovers)
    assert code == 0, logs
    seen = epochs(layout)
    by_key = {f"{uri.split('/', 3)[3]}/{k}": v for k, v in bodies.items()}
    expected = [b"".join(by_key[i.object.key] for i in epoch_items(feeder.items, e, seed=5)) for e in range(3)]
    assert seen == expected  # Seed + epoch decides each epoch's order ...
    assert len(set(seen)) == 3  # ... a different one each epoch
    assert all(sorted(s) == sorted(b"".join(bodies.values())) for s in seen)


def test_augmented_manifest_streams_attributes_as_records(
    s3: S3Server, engine: Engine, reader: str, tmp_path: Path, no_leftovers: str
) -> None:
    images = seed(s3, {"1.jpg": b"\xff\xd8jpeg-one", "2.jpg": b"\xff\xd8jpeg-two!"})
    lines = [
        {"image-ref": f"{images}/1.jpg", "is-a-cat": 1, "ignored": "x"},
        {"image-ref": f"{images}/2.jpg", "is-a-cat": 0},
    ]
    manifest = seed(s3, {"aug.jsonl": "\n".join(json.dumps(line) for line in lines).encode() + b"\n"})
    layout = host(tmp_path)
    channel = ChannelSpec(
        "train",
        f"{manifest}/aug.jsonl",
        s3_data_type="AugmentedManifestFile",
        input_mode="Pipe",
        record_wrapper="RecordIO",
    )
    feeder = feeder_for(s3, layout, channel, attribute_names=("image-ref", "is-a-cat"), max_epochs=3)
    code, logs = run_reader(engine, reader, layout, feeder, no_leftovers)
    assert code == 0, logs
    for data in epochs(layout):
        assert parse_recordio(data) == [b"\xff\xd8jpeg-one", b"1", b"\xff\xd8jpeg-two!", b"0"]


def test_a_container_that_never_opens_the_pipe_does_not_hang(
    s3: S3Server, engine: Engine, reader: str, tmp_path: Path, no_leftovers: str
) -> None:
    uri = seed(s3, {"a": b"never read"})
    layout = host(tmp_path)
    feeder = feeder_for(s3, layout, ChannelSpec("train", uri, input_mode="Pipe"))
    code, logs = run_reader(engine, reader, layout, feeder, no_leftovers, env={"MODE": "never"})
    assert code == 0, logs
    assert "not reading" in logs
    assert feeder.epochs_completed == 0
    assert not feeder.running


# -- through the whole platform: the job creates, feeds and stops the pipes itself ------------------


def test_pipe_mode_through_the_platform(s3: S3Server, reader: str, tmp_path: Path) -> None:
    from pytest_sagemaker_contract.jobs import job_name, with_overrides
    from pytest_sagemaker_contract.platform import TrainingPlatform
    from pytest_sagemaker_contract.spec import parse_request

    uri = seed(s3, {"a.rec": b"first,", "b.rec": b"second"})
    platform = TrainingPlatform(Engine(), s3, tmp_path / "jobs", grace_s=5)
    try:
        request = with_overrides(
            None, name=job_name("pipe"), image=reader, channel_uris={"train": uri}, input_mode="Pipe"
        )
        result = platform.run(parse_request(request), timeout=300)
        assert result.TrainingJobStatus == "Completed", result.log_tail()
        assert result.model_files == ["epoch0", "epoch1", "epoch2"]
        members = result.model_tar()
        import io
        import tarfile

        with tarfile.open(fileobj=io.BytesIO(members), mode="r:gz") as tar:
            assert {m.name: tar.extractfile(m).read() for m in tar if m.isfile()} == {  # type: ignore[union-attr]
                f"epoch{i}": b"first,second" for i in range(3)
            }
        assert "channel directory exists" not in result.logs

        never = with_overrides(
            None,
            name=job_name("pipe-never"),
            image=reader,
            channel_uris={"train": uri},
            input_mode="Pipe",
            environment={"MODE": "never"},
        )
        # Ends at all (a hang would be the job never finishing); how fast is a benchmark's business.
        assert platform.run(parse_request(never), timeout=300).TrainingJobStatus == "Completed"
    finally:
        platform.close()

"""Pipe mode without Docker: RecordIO framing, manifests, per-epoch shuffling, and the feeder on a host FIFO."""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import struct
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_sagemaker_contract.platform.channels import (
    ChannelError,
    ChannelItem,
    parse_augmented_line,
    parse_manifest,
)
from pytest_sagemaker_contract.platform.pipes import (
    PipeFeeder,
    PipeOptions,
    epoch_items,
    recordio_frames,
    recordio_record,
)

MAGIC = bytes.fromhex("0a23d7ce")  # 0xced7230a, little-endian


def header(cflag: int, length: int) -> bytes:
    return MAGIC + struct.pack("<I", cflag << 29 | length)


def parse_recordio(data: bytes) -> list[bytes]:
    """dmlc's reader, written independently: parts joined with the magic word, padding skipped."""
    records: list[bytes] = []
    parts: list[bytes] = []
    pos = 0
    while pos < len(data):
        assert data[pos : pos + 4] == MAGIC, f"no magic at {pos}"
        (lrec,) = struct.unpack_from("<I", data, pos + 4)
        cflag, length = lrec >> 29, lrec & ((1 << 29) - 1)
        parts.append(data[pos + 8 : pos + 8 + length])
        pos += 8 + (length + 3) // 4 * 4
        if cflag in (0, 3):
            records.append(MAGIC.join(parts))
            parts = []
    assert not parts, "a record was left unfinished"
    return records


# -- RecordIO framing --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "framed"),
    [
        pytest.param(b"", header(0, 0), id="empty"),
        pytest.param(b"abc", header(0, 3) + b"abc\0", id="padded"),
        pytest.param(b"abcd", header(0, 4) + b"abcd", id="aligned"),
        pytest.param(b"a" + MAGIC, header(0, 5) + b"a" + MAGIC + b"\0\0\0", id="unaligned-magic-kept"),
        pytest.param(b"abcd" + MAGIC + b"ef", header(1, 4) + b"abcd" + header(3, 2) + b"ef\0\0", id="split"),
        pytest.param(MAGIC + b"xyz", header(1, 0) + header(3, 3) + b"xyz\0", id="magic-first"),
        pytest.param(
            b"ab\0\0" + MAGIC + MAGIC + b"z",
            header(1, 4) + b"ab\0\0" + header(2, 0) + header(3, 1) + b"z\0\0\0",
            id="two-magics",
        ),
        pytest.param(b"abcd" + MAGIC, header(1, 4) + b"abcd" + header(3, 0), id="magic-last"),
    ],
)
def test_recordio_bytes_exactly(data: bytes, framed: bytes) -> None:
    """dmlc-core RecordIOWriter: magic, cflag<<29|length, data, zero padding; split at aligned magic words."""
    assert recordio_record(data) == framed
    assert parse_recordio(framed) == [data]


class Trickle(io.BytesIO):
    """A stream that returns at most 3 bytes per read, as a network body may."""

    def read(self, size: int | None = -1) -> bytes:
        return super().read(3 if size is None or size < 0 else min(size, 3))


@given(st.lists(st.sampled_from([b"a", b"bc", b"\0", MAGIC, b"\xce\xd7"]), max_size=30).map(b"".join))
def test_recordio_round_trips_whatever_the_read_sizes(data: bytes) -> None:
    framed = b"".join(recordio_frames(lambda: contextlib.nullcontext(Trickle(data))))
    assert framed == recordio_record(data)
    assert len(framed) % 4 == 0
    assert parse_recordio(framed) == [data]


def test_recordio_magic_on_a_chunk_boundary() -> None:
    """The scan reads 1 MiB chunks; a magic word right at and right before the boundary still splits."""
    mib = 1 << 20
    data = b"\1" * (mib - 4) + MAGIC + MAGIC + b"\2" * 10
    framed = recordio_record(data)
    assert framed.count(MAGIC) == 3  # three headers, the two data magic words dropped
    assert parse_recordio(framed) == [data]


# -- manifests ---------------------------------------------------------------------------------


def test_manifest_file_parses() -> None:
    prefix, names = parse_manifest('[{"prefix": "s3://b/p/"}, "a.csv", "sub/b.csv"]', "s3://b/m.json")
    assert (prefix, names) == ("s3://b/p/", ["a.csv", "sub/b.csv"])


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("[{", "is not valid JSON"),
        ('{"prefix": "s3://b/p/"}', "must be a JSON array"),
        ('["a.csv"]', "must be a JSON array"),
        ("[]", "must be a JSON array"),
        ('[{"prefix": "b/p/"}, "a"]', "is not an s3://bucket/... URI"),
        ('[{"prefix": "s3:///p/"}, "a"]', "is not an s3://bucket/... URI"),
        ('[{"prefix": "s3://b/p/"}]', "lists no objects"),
        ('[{"prefix": "s3://b/p/"}, "a", 3]', "entry 2 is 3, not a relative key"),
        ('[{"prefix": "s3://b/p/"}, ""]', 'entry 1 is "", not a relative key'),
        ('[{"prefix": "s3://b/p/"}, "../x"]', "leaves the channel directory"),
        ('[{"prefix": "s3://b/p/"}, "a/../../x"]', "leaves the channel directory"),
        ('[{"prefix": "s3://b/p/"}, "/etc/passwd"]', "leaves the channel directory"),
    ],
)
def test_manifest_file_errors_are_client_error_lines(text: str, says: str) -> None:
    with pytest.raises(ChannelError) as info:
        parse_manifest(text, "s3://b/m.json", "train")
    message = str(info.value)
    assert message.startswith("ClientError: channel 'train': manifest file s3://b/m.json")
    assert says in message
    assert "\n" not in message


def test_augmented_manifest_line() -> None:
    line = '{"image-ref": "s3://b/i/1.jpg", "class": "0", "box": {"x": [1, 2]}, "is-a-cat": 1, "other": "x"}'
    values = parse_augmented_line(line, 1, ["image-ref", "class", "box", "is-a-cat"], "s3://b/aug.jsonl")
    assert values == ("s3://b/i/1.jpg", b"0", b'{"x":[1,2]}', b"1")


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("{nope", "line 7 is not valid JSON"),
        ("[1]", "line 7 is not a JSON object"),
        ('{"image-ref": "s3://b/x"}', "line 7 has no attribute 'class'"),
        ('{"image-ref": "b/x", "class": 1}', "'image-ref' is \"b/x\", not an s3:// URI"),
        ('{"image-ref": 5, "class": 1}', "'image-ref' is 5, not an s3:// URI"),
    ],
)
def test_augmented_manifest_errors(line: str, says: str) -> None:
    with pytest.raises(
        ChannelError, match=r"^ClientError: channel 'train': augmented manifest s3://b/a\.jsonl"
    ) as info:
        parse_augmented_line(line, 7, ["image-ref", "class"], "s3://b/a.jsonl", "train")
    assert says in str(info.value)


def test_pipe_options_from_request() -> None:
    request = {
        "InputDataConfig": [
            {"ChannelName": "other", "DataSource": {"S3DataSource": {"S3Uri": "s3://b/o"}}},
            {
                "ChannelName": "train",
                "DataSource": {"S3DataSource": {"S3Uri": "s3://b/a", "AttributeNames": ["image-ref", "class"]}},
                "ShuffleConfig": {"Seed": 42},
            },
        ]
    }
    assert PipeOptions.from_request(request, "train") == PipeOptions(("image-ref", "class"), 42)
    assert PipeOptions.from_request(request, "other", max_epochs=3) == PipeOptions((), None, 3)


# -- shuffling ---------------------------------------------------------------------------------


ITEMS = [ChannelItem((f"object {i}".encode(),), f"o{i:02d}") for i in range(20)]


def test_no_seed_keeps_the_order_every_epoch() -> None:
    assert epoch_items(ITEMS, 0, seed=None) == ITEMS
    assert epoch_items(ITEMS, 5, seed=None) == ITEMS


def test_shuffle_is_deterministic_per_seed_and_epoch() -> None:
    first = [epoch_items(ITEMS, e, seed=7) for e in range(3)]
    assert first == [epoch_items(ITEMS, e, seed=7) for e in range(3)]  # same seed, same orders
    assert all(sorted(o, key=lambda i: i.path) == ITEMS for o in first)  # a permutation
    assert first[0] != first[1] != first[2]  # a new order each epoch
    assert epoch_items(ITEMS, 0, seed=8) != first[0]


@given(seed=st.integers(0, 2**31), epoch=st.integers(0, 50), hosts=st.integers(1, 6))
def test_shuffled_shards_stay_disjoint_and_complete(seed: int, epoch: int, hosts: int) -> None:
    parts = [epoch_items(ITEMS, epoch, seed=seed, host_index=h, host_count=hosts) for h in range(hosts)]
    delivered = [item.path for part in parts for item in part]
    assert sorted(delivered) == [i.path for i in ITEMS]


# -- the feeder on a host FIFO -------------------------------------------------------------------


def read_epochs(feeder: PipeFeeder, epochs: int, limit: int | None = None) -> list[bytes]:
    """Read like a training script: wait for each FIFO, read it (all, or `limit` bytes then close)."""
    out: list[bytes] = []
    for epoch in range(epochs):
        path = feeder.fifo(epoch)
        deadline = time.monotonic() + 60  # a generous cap on a condition, not a timing claim
        while not path.exists():
            assert time.monotonic() < deadline, f"{path.name} never appeared"
            time.sleep(0.01)
        with open(path, "rb") as fh:
            out.append(fh.read() if limit is None else fh.read(limit))
    return out


def test_gzip_objects_stream_decompressed(tmp_path: Path) -> None:
    """Gzip objects arrive decompressed, a multi-member file included, across many 1 MiB chunks."""
    big = os.urandom(3 << 20)
    files = []
    for name, content in (("a.gz", big), ("b.gz", b"second\n")):
        path = tmp_path / name
        path.write_bytes(gzip.compress(content))
        files.append(path)
    with open(files[1], "ab") as fh:  # a second gzip member, as `cat x.gz y.gz` makes
        fh.write(gzip.compress(b"member two\n"))
    data = tmp_path / "data"
    feeder = PipeFeeder(data, "train", [ChannelItem((f,)) for f in files], compression="Gzip", max_epochs=2).start()
    try:
        epochs = read_epochs(feeder, 2)
    finally:
        assert feeder.stop()
    assert epochs == [big + b"second\nmember two\n"] * 2
    assert feeder.error is None
    assert feeder.epochs_completed == 2
    assert not feeder.fifo(2).exists()  # max_epochs reached: no third FIFO


def test_fifo_0_exists_before_start_and_is_world_writable(tmp_path: Path) -> None:
    feeder = PipeFeeder(tmp_path, "train", [ChannelItem((b"x",))])
    path = feeder.prepare()
    assert path == tmp_path / "train_0"
    assert path.is_fifo()
    assert path.stat().st_mode & 0o777 == 0o666


def test_stop_is_prompt_when_nobody_reads(tmp_path: Path) -> None:
    """A writer waiting for a reader that never comes ends when told to (a blocking open would never end)."""
    feeder = PipeFeeder(tmp_path, "train", [ChannelItem((b"x" * 100,))]).start()
    assert feeder.running
    assert feeder.stop(timeout=60)
    assert not feeder.running
    assert feeder.bytes_per_epoch == []  # it never got a reader to write to
    assert feeder.epochs_completed == 0
    assert feeder.error is None


def test_stop_is_prompt_when_the_reader_stalls(tmp_path: Path) -> None:
    """A reader that opened the FIFO but stopped reading (pipe buffer full) does not hold the writer."""
    feeder = PipeFeeder(tmp_path, "train", [ChannelItem((b"y" * (4 << 20),))]).start()
    fd = os.open(feeder.fifo(0), os.O_RDONLY)
    try:
        assert len(os.read(fd, 10)) == 10  # the writer is writing: it has filled what the pipe holds, or will
        assert feeder.stop(timeout=60)
        assert not feeder.running
        assert 10 <= feeder.bytes_per_epoch[0] < 4 << 20  # stopped mid-epoch, never finished it
        assert feeder.epochs_completed == 0
    finally:
        os.close(fd)


def test_a_reader_that_closes_early_gets_the_next_epoch(tmp_path: Path) -> None:
    feeder = PipeFeeder(tmp_path, "train", [ChannelItem((b"z" * (1 << 20),))], max_epochs=3).start()
    try:
        epochs = read_epochs(feeder, 3, limit=5)
    finally:
        assert feeder.stop()
    assert epochs == [b"zzzzz"] * 3


def test_a_missing_file_is_reported_not_raised(tmp_path: Path) -> None:
    feeder = PipeFeeder(tmp_path, "train", [ChannelItem((tmp_path / "gone",))]).start()
    result: list[bytes] = []
    reader = threading.Thread(target=lambda: result.extend(read_epochs(feeder, 1)))
    reader.start()
    reader.join(60)
    assert not reader.is_alive()
    assert feeder.stop()
    assert result == [b""]  # EOF at once: the data could not be read
    assert feeder.error is not None
    assert "gone" in feeder.error

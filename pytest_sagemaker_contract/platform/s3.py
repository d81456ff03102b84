"""The platform's S3: a moto server in server mode, and streaming transfers to and from it."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import shutil
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .s3_gate import SessionKeys, SigV4Gate

__all__ = ["S3Object", "S3Server", "parse_s3_uri", "relative_key"]

REGION = "us-east-1"
_CHUNK = 1 << 20


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/some/prefix` -> ("bucket", "some/prefix")."""
    if not uri.startswith("s3://"):
        raise ValueError(f"{uri!r} is not an s3:// URI")
    bucket, _, key = uri[len("s3://") :].partition("/")
    if not bucket:
        raise ValueError(f"{uri!r} has no bucket")
    return bucket, key


def relative_key(prefix: str, key: str) -> str:
    """Where an object lands under a channel directory.

    An S3Prefix is a plain string prefix, so `data/train` matches `data/train-1.csv` (staged as
    `train-1.csv`: relative to the prefix's last `/`, contract.md §3) as well as `data/train/x.csv`.
    A key under the prefix taken as a folder lands relative to that folder (`x.csv`): this is how
    AWS's own examples (`upload_data(key_prefix=...)` then reading the channel root) work.
    """
    folder = prefix.rstrip("/") + "/" if prefix else ""
    if folder and key.startswith(folder):
        return key[len(folder) :]
    return key[prefix.rfind("/") + 1 :]


@dataclass(frozen=True)
class S3Object:
    bucket: str
    key: str
    size: int


#: Connections the S3 listener serves at once; more are closed at once (it faces the Docker bridge, where any
#: container can open them: the relay has the same bound). Jobs' clients stay far below it.
MAX_CONNECTIONS = 128
#: A connection idle this long is closed, so idle ones cannot hold the slots.
IDLE_S = 60.0


def _bounded_server(host: str, app: Any, handler: Any) -> Any:
    """werkzeug's threaded server with at most MAX_CONNECTIONS connections (threads) at once and an idle
    timeout on each: without them, a container opening connections and never sending grew a thread each."""
    from werkzeug.serving import ThreadedWSGIServer

    class Handler(handler):  # type: ignore[misc]
        timeout = IDLE_S

    class Server(ThreadedWSGIServer):
        slots = threading.BoundedSemaphore(MAX_CONNECTIONS)

        def process_request(self, request: Any, client_address: Any) -> None:
            if not self.slots.acquire(blocking=False):
                self.shutdown_request(request)
                return
            try:
                super().process_request(request, client_address)
            except BaseException:
                self.slots.release()
                raise

        def process_request_thread(self, request: Any, client_address: Any) -> None:
            try:
                super().process_request_thread(request, client_address)
            finally:
                self.slots.release()

    return Server(host, 0, app, Handler)


class S3Server:
    """moto in server mode on a random local port, with boto3 clients bound to it.

    One per pytest session (or xdist worker): channels are read from it and artifacts uploaded to it.
    """

    def __init__(self, host: str = "127.0.0.1", *, private: bool = True) -> None:
        self._host = host
        #: The session's own credentials; with `private`, requests signed with anything else are denied.
        self.keys = SessionKeys.generate()
        self.private = private
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._client: Any = None
        self._lock = threading.Lock()
        self._buckets: set[str] = set()
        #: Copy object bytes straight from the in-process moto store when staging (see `download`).
        self.direct_reads = True
        self.endpoint_url = ""

    def start(self) -> S3Server:
        # lazy: moto takes seconds to import; only sessions that run jobs need it
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        app: Any = DomainDispatcherApplication(create_backend_app)
        if self.private:
            app = SigV4Gate(app, self.keys)
        self._server = _bounded_server(self._host, app, MotoRequestHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="sm-s3", daemon=True)
        self._thread.start()
        host, port = self._server.server_address[:2]
        self.endpoint_url = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> S3Server:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return int(self.endpoint_url.rsplit(":", 1)[1])

    def session_kwargs(self) -> dict[str, str]:
        return {
            "aws_access_key_id": self.keys.access_key_id,
            "aws_secret_access_key": self.keys.secret_access_key,
            "region_name": REGION,
        }

    def client(self) -> Any:
        """A boto3 S3 client bound to this server (shared; boto3 clients are thread-safe)."""
        with self._lock:
            if self._client is None:
                import boto3  # lazy: boto3 is slow to import; sessions that run no job never need it
                from botocore.config import Config

                self._client = boto3.session.Session(**self.session_kwargs()).client(
                    "s3",
                    endpoint_url=self.endpoint_url,
                    config=Config(max_pool_connections=32, retries={"max_attempts": 2}),
                )
            return self._client

    def resource(self) -> Any:
        import boto3  # lazy: as in client()

        return boto3.session.Session(**self.session_kwargs()).resource("s3", endpoint_url=self.endpoint_url)

    # ---------------------------------------------------------------------------------------

    def ensure_bucket(self, bucket: str) -> None:
        if bucket in self._buckets:
            return
        client = self.client()
        try:
            client.head_bucket(Bucket=bucket)
        except Exception:
            client.create_bucket(Bucket=bucket)
        self._buckets.add(bucket)

    def objects(self, uri: str) -> Iterator[S3Object]:
        """Every object whose key starts with the URI's prefix (directory markers skipped)."""
        bucket, prefix = parse_s3_uri(uri)
        paginator = self.client().get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
                for obj in page.get("Contents", []):
                    if not obj["Key"].endswith("/"):
                        yield S3Object(bucket, obj["Key"], int(obj["Size"]))
        except self.client().exceptions.NoSuchBucket:
            return

    def download(self, obj: S3Object, dest: Path) -> None:
        """Stream one object to `dest` (never the whole object in memory on our side).

        When moto runs in this process, the bytes are copied straight out of its object store (a file
        on disk for large objects) instead of through HTTP, where moto would first read the whole
        object into memory; which objects and which paths were already decided through the S3 API.
        """
        dest.parent.mkdir(parents=True, exist_ok=True)
        if self._copy_from_store(obj, dest):
            return
        body = self.client().get_object(Bucket=obj.bucket, Key=obj.key)["Body"]
        with open(dest, "wb") as out:
            shutil.copyfileobj(body, out, _CHUNK)

    def _store_key(self, obj: S3Object) -> tuple[Any, Any] | None:
        """(the object's spooled value buffer, its lock) in moto's in-process store, or None (use HTTP)."""
        if self._server is None or not self.direct_reads:
            return None
        try:
            import moto.core  # lazy: as in start(); optional fast path into moto's internals
            from moto.s3.models import s3_backends

            account = moto.core.DEFAULT_ACCOUNT_ID  # type: ignore[attr-defined]
            key = s3_backends[account]["aws"].buckets[obj.bucket].keys[obj.key]
            return key._value_buffer, key.lock
        except Exception:  # another moto layout, a delete marker, a version: the HTTP path handles it
            return None

    def _copy_from_store(self, obj: S3Object, dest: Path) -> bool:
        found = self._store_key(obj)
        if found is None:
            return False
        buffer, lock = found
        with lock, open(dest, "wb") as out:
            buffer.seek(0)
            if getattr(buffer, "_rolled", False):
                size = os.fstat(buffer.fileno()).st_size
                sent = 0
                while sent < size:
                    sent += os.sendfile(out.fileno(), buffer.fileno(), sent, size - sent)
            else:
                shutil.copyfileobj(buffer, out, _CHUNK)
        return True

    def open(self, obj: S3Object) -> Any:
        """A readable stream of one object's bytes (close it when done): for pipes that never hold it whole.

        With moto in this process, a large object is read from its spooled file through a descriptor of
        our own (moto's GET would first read the whole object into memory); small ones are copied out.
        """
        stream = self._open_from_store(obj)
        if stream is not None:
            return stream
        return self.client().get_object(Bucket=obj.bucket, Key=obj.key)["Body"]

    def _open_from_store(self, obj: S3Object) -> Any:
        found = self._store_key(obj)
        if found is None:
            return None
        buffer, lock = found
        with lock:
            if getattr(buffer, "_rolled", False):
                # Our own open file description: its offset is independent of moto's and of other readers.
                try:
                    return open(f"/proc/self/fd/{buffer.fileno()}", "rb")
                except OSError:  # no /proc: the HTTP path
                    return None
            buffer.seek(0)
            return io.BytesIO(buffer.read())

    def head(self, uri: str) -> S3Object | None:
        """The object at `uri` with its size, or None when there is none (or no bucket)."""
        bucket, key = parse_s3_uri(uri)
        if not key:
            return None
        from botocore.exceptions import ClientError  # lazy: as in client()

        try:
            size = self.client().head_object(Bucket=bucket, Key=key)["ContentLength"]
        except ClientError:  # 404 and 403 alike: SageMaker's role could not read it either
            return None
        return S3Object(bucket, key, int(size))

    def download_many(self, pairs: list[tuple[S3Object, Path]], workers: int = 8) -> None:
        if len(pairs) <= 1:
            for obj, dest in pairs:
                self.download(obj, dest)
            return
        with ThreadPoolExecutor(max_workers=min(workers, len(pairs))) as pool:
            for future in [pool.submit(self.download, obj, dest) for obj, dest in pairs]:
                future.result()

    def upload_file(self, path: Path, uri: str) -> None:
        bucket, key = parse_s3_uri(uri)
        self.ensure_bucket(bucket)
        if self._write_to_store(path, bucket, key):
            return
        self.client().upload_file(str(path), bucket, key)

    def _write_to_store(self, path: Path, bucket: str, key: str) -> bool:
        """Put a file's bytes straight into the in-process moto store, streamed (the mirror of direct reads).

        Through HTTP, moto holds a whole PUT body in memory and copies every part of a multipart upload
        on completion (2.9 GB of peak memory for a 1 GiB model.tar.gz); here the bytes go into the key's
        own spooled file in 1 MiB chunks. Any surprise in moto's layout: the HTTP path does it.
        """
        if self._server is None or not self.direct_reads:
            return False
        try:
            import moto.core  # lazy: as in start()
            from moto.s3.models import s3_backends

            backend = s3_backends[moto.core.DEFAULT_ACCOUNT_ID]["aws"]  # type: ignore[attr-defined]
            created = backend.put_object(bucket, key, b"")
            buffer = created._value_buffer
            lock = created.lock
        except Exception:
            return False
        digest = hashlib.md5(usedforsecurity=False)
        size = 0
        with lock, open(path, "rb") as source:
            buffer.seek(0)
            buffer.truncate()
            while chunk := source.read(_CHUNK):
                buffer.write(chunk)
                digest.update(chunk)
                size += len(chunk)
            created.contentsize = size
            created._etag = digest.hexdigest()
        return True

    def upload_path(self, local: Path, uri: str) -> int:
        """Upload a file (to `<uri>/<name>`) or a directory's files (keys relative to it) under `uri`.

        Returns the number of objects written.
        """
        bucket, prefix = parse_s3_uri(uri.rstrip("/"))
        self.ensure_bucket(bucket)
        base = f"{prefix}/" if prefix else ""
        if local.is_file():
            self.upload_file(local, f"s3://{bucket}/{base}{local.name}")
            return 1
        count = 0
        for root, _dirs, files in os.walk(local):
            for name in sorted(files):
                path = Path(root, name)
                if not path.is_file():  # a FIFO, socket or device has no end to upload (reading a FIFO blocks)
                    continue
                self.upload_file(path, f"s3://{bucket}/{base}{path.relative_to(local).as_posix()}")
                count += 1
        return count

    def get_bytes(self, uri: str) -> bytes:
        bucket, key = parse_s3_uri(uri)
        data: bytes = self.client().get_object(Bucket=bucket, Key=key)["Body"].read()
        return data

    def exists(self, uri: str) -> bool:
        bucket, key = parse_s3_uri(uri)
        try:
            self.client().head_object(Bucket=bucket, Key=key)
        except Exception:
            return False
        return True

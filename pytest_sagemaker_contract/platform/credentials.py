"""The job role's credentials as SageMaker gives them: a container credentials endpoint, not static keys.

contract.md §11. Real jobs find their role's credentials through `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`
(served at 169.254.170.2); boto3, the AWS CLI and every SDK read them from there with no configuration.
169.254.170.2 cannot be reached from a container here, and botocore takes a full URI over plain HTTP only
from a loopback address (or 169.254.170.2/.23, `localhost`), so the platform serves the document on the
container's own loopback: each host's container joins the network namespace of a small "pod" container
(the helper image's busybox httpd on 127.0.0.1, like a Kubernetes pod's sandbox) that holds the host's
name, its job network and its algo-N alias, and the container gets `AWS_CONTAINER_CREDENTIALS_FULL_URI`.
Under EnableNetworkIsolation no endpoint and no credentials exist, as on SageMaker.
"""

from __future__ import annotations

import io
import json
import secrets
import tarfile
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from .engine import Engine, EngineError

__all__ = [
    "CREDENTIALS_PORT",
    "CredentialsEndpoint",
    "credentials_endpoint",
    "serve_document",
    "start_credentials_pod",
]

#: The port the pod serves on, on the container's loopback (the ECS agent's credentials port).
CREDENTIALS_PORT = 51679
#: Where the document lives inside the pod (served as the httpd root).
_ROOT = "/sm-credentials"
#: How long a served document claims to be valid (SageMaker's role sessions are refreshed well before).
LIFETIME_S = 6 * 3600
#: How long the pod's listener may take to answer before the job fails with an engine fault.
READY_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class CredentialsEndpoint:
    """One job's credentials document and the path it is served at."""

    relative_uri: str
    document: Mapping[str, str]

    @property
    def full_uri(self) -> str:
        return f"http://127.0.0.1:{CREDENTIALS_PORT}{self.relative_uri}"

    def environment(self) -> dict[str, str]:
        """What the container gets instead of static keys."""
        return {"AWS_CONTAINER_CREDENTIALS_FULL_URI": self.full_uri}


def credentials_endpoint(access_key_id: str, secret_access_key: str, role_arn: str, now: float) -> CredentialsEndpoint:
    """The document a container credentials endpoint returns (AccessKeyId, SecretAccessKey, Token,
    Expiration), at a random `/v2/credentials/<id>` path as the ECS/SageMaker agent serves it."""
    expiration = datetime.fromtimestamp(now + LIFETIME_S, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    document = {
        "RoleArn": role_arn,
        "AccessKeyId": access_key_id,
        "SecretAccessKey": secret_access_key,
        "Token": secrets.token_urlsafe(48),
        "Expiration": expiration,
    }
    return CredentialsEndpoint(f"/v2/credentials/{uuid.uuid4()}", document)


def _document_tar(endpoint: CredentialsEndpoint) -> bytes:
    data = json.dumps(endpoint.document).encode()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        path = f"{_ROOT.lstrip('/')}{endpoint.relative_uri}"
        parts = path.split("/")
        for depth in range(1, len(parts)):
            info = tarfile.TarInfo("/".join(parts[:depth]))
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        info = tarfile.TarInfo(path)
        info.size, info.mode = len(data), 0o444
        tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def start_credentials_pod(
    engine: Engine,
    image: str,
    *,
    name: str,
    hostname: str,
    network: str,
    aliases: Sequence[str],
    labels: Mapping[str, str],
    endpoint: CredentialsEndpoint,
) -> str:
    """Create and start one host's pod container (its network namespace is the host's), serving `endpoint`
    on 127.0.0.1; returns once the document is served. The job container joins it with
    `network_mode=container:<id>`."""
    try:
        pod = engine.create_utility(
            image,
            command=["/bin/busybox", "httpd", "-f", "-p", f"127.0.0.1:{CREDENTIALS_PORT}", "-h", _ROOT],
            name=name,
            labels=labels,
            network_mode=network,
            hostname=hostname,
            aliases=aliases,
        )
    except Exception as exc:
        raise EngineError(f"the engine refused to create the credentials pod {name}: {exc}") from None
    engine.put_archive(pod, "/", _document_tar(endpoint))
    try:
        engine.start_or_raise(pod)
    except Exception as exc:
        raise EngineError(f"the engine refused to start the credentials pod {name}: {exc}") from None
    probe = ["/bin/busybox", "wget", "-q", "-O", "/dev/null", endpoint.full_uri]
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:  # the listener binds right after the start: the first probe almost always answers
        code, out = engine.exec(pod, probe)
        if code == 0:
            return pod
        if time.monotonic() > deadline:
            raise EngineError(
                f"the credentials pod {name} did not serve its endpoint within {READY_TIMEOUT_S:g} s: {out}"
            )


def serve_document(engine: Engine, pod: str, endpoint: CredentialsEndpoint) -> None:
    """Serve another job's document from a running pod (a warm slot, platform/slots.py): the httpd reads its
    files per request, so the new path answers as soon as the copy returns."""
    engine.put_archive(pod, "/", _document_tar(endpoint))

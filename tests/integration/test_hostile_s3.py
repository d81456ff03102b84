"""A container the platform did not start attacks the session's S3 (issue 22, items 3 and 4): a real moto behind
the gate, on the bridge address containers reach and through the relay over the Docker API; a busybox `nc` sends
the raw requests, signed here by botocore (or forged), and prints S3's raw answers."""

from __future__ import annotations

import base64
import datetime
import threading
import time
import urllib.parse
from collections.abc import Iterator
from unittest import mock

import docker
import pytest
from botocore.auth import HmacV1Auth, HmacV1QueryAuth, S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from pytest_sagemaker_contract.platform.engine import LABEL_RUN, Engine
from pytest_sagemaker_contract.platform.helper import helper_image
from pytest_sagemaker_contract.platform.s3 import MAX_CONNECTIONS, S3Server
from pytest_sagemaker_contract.platform.s3_gate import SessionKeys
from pytest_sagemaker_contract.platform.s3_relay import RELAY_PORT, S3Relay

BUCKET = "session-data"
SECRET = b"the session's own object"


@pytest.fixture(scope="module")
def engine(docker_client: docker.DockerClient) -> Engine:
    return Engine(docker.from_env(timeout=120))


@pytest.fixture(scope="module")
def helper(engine: Engine) -> str:
    image, why = helper_image(engine)
    assert image is not None, why
    return image


def serve(host: str) -> S3Server:
    s3 = S3Server(host=host).start()
    s3.client().create_bucket(Bucket=BUCKET)
    s3.client().put_object(Bucket=BUCKET, Key="secret.txt", Body=SECRET)
    return s3


@pytest.fixture(scope="module")
def bridge_s3(engine: Engine) -> Iterator[S3Server]:
    gateway = engine.bridge_gateway()
    if gateway is None:
        pytest.skip("this engine's bridge has no address of this machine: its containers reach S3 only by the relay")
    s3 = serve(gateway)
    yield s3
    s3.stop()


@pytest.fixture(scope="module")
def relayed(engine: Engine, helper: str) -> Iterator[tuple[S3Server, S3Relay, str]]:
    s3 = serve("127.0.0.1")
    run_id = f"hostile{time.monotonic_ns() % 10**8}"
    relay = S3Relay(
        engine,
        helper,
        ("127.0.0.1", s3.port),
        f"sm-s3-relay-{run_id}",
        {LABEL_RUN: run_id},
        max_connections=6,
        idle_s=2,
    ).start()
    try:
        yield s3, relay, relay.endpoint(None).removeprefix("http://")
    finally:
        relay.close()
        s3.stop()


def raw(method: str, host: str, target: str, headers: dict[str, str] | None = None) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items() if k.lower() != "host"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def attack(docker_client: docker.DockerClient, image: str, host: str, requests: dict[str, bytes]) -> dict[str, str]:
    """Send each raw request from a foreign container (no platform labels); S3's raw answer per name."""
    env = {f"REQ_{name}": base64.b64encode(data).decode() for name, data in requests.items()}
    address, _, port = host.partition(":")
    # nc -e: the request goes out and the answer is read to the server's end (nc alone quits at its stdin's end)
    script = (
        "exec 1>&2; /bin/busybox --install -s /bin; mkdir -p /tmp; echo 'cat /tmp/req; cat >&2' > /tmp/talk; "
        f'for name in {" ".join(requests)}; do eval "r=\\$REQ_$name"; echo "=== $name"; '
        f'echo "$r" | base64 -d > /tmp/req; nc -w 20 {address} {port} -e sh /tmp/talk; echo; done'
    )
    output = docker_client.containers.run(
        image, ["/bin/busybox", "sh", "-c", script], environment=env, remove=True, stdout=False, stderr=True
    )
    answers = {}
    for part in output.decode(errors="replace").split("=== ")[1:]:
        name, _, answer = part.partition("\n")
        answers[name.strip()] = answer
    return answers


def status(answer: str) -> str:
    return answer.partition("\r\n")[0].split(" ", 2)[1] if answer.startswith("HTTP/") else f"no answer: {answer!r}"


def requests_for(keys: SessionKeys, host: str) -> dict[str, bytes]:
    """Every way a stranger tries the session's S3, and one presigned URL the session gave out (must pass)."""
    creds = Credentials(keys.access_key_id, keys.secret_access_key)
    other = SessionKeys.generate()
    url = f"http://{host}/{BUCKET}/secret.txt"

    def presign(c: Credentials, expires: int = 600) -> str:
        request = AWSRequest(method="GET", url=url)
        S3SigV4QueryAuth(c, "s3", "us-east-1", expires=expires).add_auth(request)
        return str(urllib.parse.urlsplit(request.url)._replace(scheme="", netloc="").geturl())

    def header(c: Credentials, method: str = "GET", target: str = f"/{BUCKET}/secret.txt") -> dict[str, str]:
        request = AWSRequest(method=method, url=f"http://{host}{target}")
        S3SigV4Auth(c, "s3", "us-east-1").add_auth(request)
        return dict(request.headers.items())

    with mock.patch(
        "botocore.auth.get_current_datetime", return_value=datetime.datetime(2001, 1, 1, tzinfo=datetime.timezone.utc)
    ):
        dated_2001 = header(creds, "PUT", "/planted-2001")
        presigned_2001 = presign(creds, 604800)
    v2_header = AWSRequest(method="GET", url=url)
    HmacV1Auth(creds).add_auth(v2_header)
    v2_query = AWSRequest(method="GET", url=url)
    HmacV1QueryAuth(creds).add_auth(v2_query)
    forged_v4 = (
        f"/?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={keys.access_key_id}%2F20000101%2Fus-east-1%2Fs3%2F"
        "aws4_request&X-Amz-Date=20000101T000000Z&X-Amz-Expires=1&X-Amz-SignedHeaders=host&X-Amz-Signature=" + "0" * 64
    )
    return {
        "given_presigned_url": raw("GET", host, presign(creds)),
        "forged_query": raw("GET", host, forged_v4),
        "forged_query_create_bucket": raw("PUT", host, forged_v4.replace("/?", "/planted-forged?")),
        "sigv2_forged_query": raw(
            "GET", host, f"/?AWSAccessKeyId={keys.access_key_id}&Signature=AAAA&Expires=9999999999"
        ),
        "sigv2_header": raw("GET", host, f"/{BUCKET}/secret.txt", dict(v2_header.headers.items())),
        "sigv2_valid_query_as_put": raw(
            "PUT", host, urllib.parse.urlsplit(v2_query.url)._replace(scheme="", netloc="").geturl()
        ),
        "header_signed_2001": raw("PUT", host, "/planted-2001", dated_2001),
        "presigned_2001": raw("GET", host, presigned_2001),
        "other_session_presigned": raw("GET", host, presign(Credentials(other.access_key_id, other.secret_access_key))),
        "other_session_header": raw(
            "GET", host, "/", header(Credentials(other.access_key_id, other.secret_access_key))
        ),
        "right_key_wrong_secret": raw("GET", host, "/", header(Credentials(keys.access_key_id, "guessed"))),
        "unsigned": raw("GET", host, f"/{BUCKET}/secret.txt"),
    }


EXPECTED = {
    "forged_query": ("403", "SignatureDoesNotMatch"),
    "forged_query_create_bucket": ("403", "SignatureDoesNotMatch"),
    "sigv2_forged_query": ("403", "SignatureDoesNotMatch"),
    "sigv2_header": ("400", "InvalidRequest"),
    "sigv2_valid_query_as_put": ("403", "SignatureDoesNotMatch"),
    "header_signed_2001": ("403", "RequestTimeTooSkewed"),
    "presigned_2001": ("403", "Request has expired"),
    "other_session_presigned": ("403", "AccessDenied"),
    "other_session_header": ("403", "AccessDenied"),
    "right_key_wrong_secret": ("403", "SignatureDoesNotMatch"),
    "unsigned": ("403", "AccessDenied"),
}


def assert_only_the_session_got_in(s3: S3Server, answers: dict[str, str]) -> None:
    assert status(answers["given_presigned_url"]) == "200", answers["given_presigned_url"]
    assert answers["given_presigned_url"].endswith(SECRET.decode() + "\n")
    for name, (code, text) in EXPECTED.items():
        assert (name, status(answers[name])) == (name, code), answers[name]
        assert text in answers[name], answers[name]
        assert SECRET.decode() not in answers[name]
    # moto's store is one per process, shared with every other test's server: look for the attacks' own buckets
    names = [b["Name"] for b in s3.client().list_buckets()["Buckets"]]
    assert BUCKET in names
    assert [n for n in names if n.startswith("planted")] == []


def test_a_foreign_container_on_the_bridge_gets_only_what_s3_would_give_it(
    docker_client: docker.DockerClient, helper: str, bridge_s3: S3Server
) -> None:
    host = urllib.parse.urlsplit(bridge_s3.endpoint_url).netloc
    answers = attack(docker_client, helper, host, requests_for(bridge_s3.keys, host))
    assert_only_the_session_got_in(bridge_s3, answers)


def test_a_foreign_container_through_the_relay_gets_only_what_s3_would_give_it(
    docker_client: docker.DockerClient, helper: str, relayed: tuple[S3Server, S3Relay, str]
) -> None:
    s3, _relay, host = relayed
    answers = attack(docker_client, helper, host, requests_for(s3.keys, host))
    assert_only_the_session_got_in(s3, answers)


def test_the_relay_bounds_idle_connections_and_drops_them(
    docker_client: docker.DockerClient, helper: str, relayed: tuple[S3Server, S3Relay, str]
) -> None:
    """60 connections at once that never send a byte (measured before: 200 took pytest to 547 threads): at most 6
    are served at once, each with 2 relay threads here and 1 of moto's; the sidecar closes the rest at once (what
    its listen queue overflows the kernel drops); the served ones are closed after 2 idle seconds; then the relay
    serves S3 again."""
    s3, relay, host = relayed
    address = host.partition(":")[0]
    baseline = threading.active_count()
    script = (
        "/bin/busybox --install -s /bin; mkdir -p /tmp; mkfifo /tmp/never; exec 3<>/tmp/never; "
        f"for i in $(seq 60); do (nc {address} {RELAY_PORT} <&3 >/dev/null; echo closed) & done; wait"
    )
    container = docker_client.containers.run(helper, ["/bin/busybox", "sh", "-c", script], detach=True)
    peak = baseline
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            peak = max(peak, threading.active_count())
            if relay.idle_closed >= relay.max_connections and relay.active == 0:
                break
            time.sleep(0.05)  # sampling the thread count while the connections are held, not synchronising
        closed = container.logs().decode().count("closed")
    finally:
        container.remove(force=True)
    deadline = time.monotonic() + 30
    while relay.active and time.monotonic() < deadline:
        time.sleep(0.05)  # the container's end closes what it still held; the serving threads end after that
    assert relay.peak == relay.max_connections
    assert peak - baseline <= 3 * relay.max_connections + 2, f"{peak - baseline} threads for 60 idle connections"
    assert relay.idle_closed >= relay.max_connections, "idle connections were not dropped"
    assert relay.active == 0
    assert closed >= relay.max_connections + relay.refused + 10, "connections over the limit were not closed"
    request = AWSRequest(method="GET", url=f"http://{host}/{BUCKET}/secret.txt")
    S3SigV4QueryAuth(Credentials(s3.keys.access_key_id, s3.keys.secret_access_key), "s3", "us-east-1").add_auth(request)
    target = urllib.parse.urlsplit(request.url)._replace(scheme="", netloc="").geturl()
    answers = attack(docker_client, helper, host, {"after": raw("GET", host, target)})
    assert status(answers["after"]) == "200", answers["after"]


def test_the_direct_listener_bounds_idle_connections(
    docker_client: docker.DockerClient, helper: str, bridge_s3: S3Server
) -> None:
    """200 connections from a foreign container on the bridge that never send a byte: moto's listener serves at
    most MAX_CONNECTIONS at once (a thread each) and closes the rest at once; then it serves S3 again."""
    host = urllib.parse.urlsplit(bridge_s3.endpoint_url).netloc
    address, _, port = host.partition(":")
    baseline = threading.active_count()
    script = (
        "/bin/busybox --install -s /bin; mkdir -p /tmp; mkfifo /tmp/never; exec 3<>/tmp/never; "
        f"for i in $(seq 200); do (nc {address} {port} <&3 >/dev/null; echo closed) & done; wait"
    )
    container = docker_client.containers.run(helper, ["/bin/busybox", "sh", "-c", script], detach=True)
    peak, closed = baseline, 0
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and closed < 200 - MAX_CONNECTIONS:
            peak = max(peak, threading.active_count())
            closed = container.logs().decode().count("closed")
            time.sleep(0.05)  # sampling the thread count while the connections are held, not synchronising
        peak = max(peak, threading.active_count())
    finally:
        container.remove(force=True)
    assert closed >= 200 - MAX_CONNECTIONS, f"only {closed} connections over the limit were closed"
    assert peak - baseline <= MAX_CONNECTIONS + 4, f"{peak - baseline} threads for 200 idle connections"
    request = AWSRequest(method="GET", url=f"http://{host}/{BUCKET}/secret.txt")
    keys = bridge_s3.keys
    S3SigV4QueryAuth(Credentials(keys.access_key_id, keys.secret_access_key), "s3", "us-east-1").add_auth(request)
    target = urllib.parse.urlsplit(request.url)._replace(scheme="", netloc="").geturl()
    deadline = time.monotonic() + 30
    answers = attack(docker_client, helper, host, {"after": raw("GET", host, target)})
    while status(answers["after"]) != "200" and time.monotonic() < deadline:  # the held slots free as they close
        answers = attack(docker_client, helper, host, {"after": raw("GET", host, target)})
    assert status(answers["after"]) == "200", answers["after"]

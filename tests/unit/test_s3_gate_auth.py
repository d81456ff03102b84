"""The S3 gate checks signatures as S3 does (issue 22, item 3): requests signed by botocore itself, sent over a
real local HTTP connection to the gate in front of a recording app (and, at the end, in front of a real moto).

Each refusal also asserts the app behind the gate never saw the request."""

from __future__ import annotations

import datetime
import hashlib
import http.client
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

import pytest
from botocore.auth import HmacV1Auth, HmacV1QueryAuth, S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from werkzeug.serving import make_server

from pytest_sagemaker_contract.platform.s3 import S3Server
from pytest_sagemaker_contract.platform.s3_gate import MAX_SKEW_S, SessionKeys, SigV4Gate

KEYS = SessionKeys.generate()
OTHER = SessionKeys.generate()
STREAMING = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"


@dataclass
class Served:
    """The gate on a real local port, in front of an app that records what reached it."""

    url: str
    gate: SigV4Gate
    reached: list[tuple[str, str, bytes]] = field(default_factory=list)

    def send(self, method: str, target: str, headers: dict[str, str], body: bytes = b"") -> tuple[int, str]:
        host = urllib.parse.urlsplit(self.url).netloc
        connection = http.client.HTTPConnection(host, timeout=30)
        try:
            connection.request(method, target, body=body or None, headers=headers)
            response = connection.getresponse()
            return response.status, response.read().decode()
        finally:
            connection.close()


@pytest.fixture
def served() -> Iterator[Served]:
    box: list[Served] = []

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        box[0].reached.append((environ["REQUEST_METHOD"], environ.get("RAW_URI", ""), body))
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"served"]

    gate = SigV4Gate(app, KEYS)
    server = make_server("127.0.0.1", 0, gate, threaded=True)
    box.append(Served(f"http://127.0.0.1:{server.server_port}", gate))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield box[0]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def credentials(keys: SessionKeys = KEYS, secret: str | None = None) -> Credentials:
    return Credentials(keys.access_key_id, secret or keys.secret_access_key)


def at(when: datetime.datetime) -> Any:
    """botocore's signing clock set to `when` (the signer's, not the gate's: the gate keeps real time)."""
    return mock.patch("botocore.auth.get_current_datetime", return_value=when)


def header_signed(
    served: Served, method: str, path: str, body: bytes = b"", creds: Credentials | None = None, **headers: str
) -> tuple[str, dict[str, str]]:
    request = AWSRequest(method=method, url=served.url + path, data=body, headers=headers)
    S3SigV4Auth(creds or credentials(), "s3", "us-east-1").add_auth(request)
    split = urllib.parse.urlsplit(request.url)
    return split.path + (f"?{split.query}" if split.query else ""), dict(request.headers.items())


def target(url: str) -> str:
    split = urllib.parse.urlsplit(url)
    return split.path + (f"?{split.query}" if split.query else "")


def presigned(served: Served, path: str, expires: int = 3600, creds: Credentials | None = None) -> str:
    request = AWSRequest(method="GET", url=served.url + path)
    S3SigV4QueryAuth(creds or credentials(), "s3", "us-east-1", expires=expires).add_auth(request)
    return target(request.url)


def refused(served: Served, status: int, text: str, code: str, message: str = "") -> None:
    assert (status, served.reached) == (403 if code in _FORBIDDEN else 400, []), text
    assert f"<Code>{code}</Code>" in text
    assert message in text


_FORBIDDEN = {"AccessDenied", "SignatureDoesNotMatch", "RequestTimeTooSkewed"}


# -- Authorization header --------------------------------------------------------------------------


def test_a_header_signed_request_passes_with_its_body(served: Served) -> None:
    path, headers = header_signed(served, "PUT", "/data/dir/a%20b%2Bc.csv", b"1,2\n", **{"Content-Type": "text/csv"})
    assert served.send("PUT", path, headers, b"1,2\n") == (200, "served")
    assert served.reached == [("PUT", "/data/dir/a%20b%2Bc.csv", b"1,2\n")]
    path, headers = header_signed(served, "GET", "/data?list-type=2&prefix=dir%2F&delimiter=%2F")
    assert served.send("GET", path, headers) == (200, "served")


def test_a_signature_made_with_another_secret_does_not_match(served: Served) -> None:
    path, headers = header_signed(served, "GET", "/data", creds=credentials(secret="not-the-secret"))
    refused(served, *served.send("GET", path, headers), "SignatureDoesNotMatch")


def test_another_sessions_key_is_denied(served: Served) -> None:
    path, headers = header_signed(served, "GET", "/", creds=credentials(OTHER))
    refused(served, *served.send("GET", path, headers), "AccessDenied", "access key is not this session")


def test_a_request_signed_in_2001_is_refused_as_s3_refuses_skew(served: Served) -> None:
    with at(datetime.datetime(2001, 1, 1, tzinfo=datetime.timezone.utc)):
        path, headers = header_signed(served, "GET", "/data")
    assert headers["X-Amz-Date"].startswith("2001")
    refused(served, *served.send("GET", path, headers), "RequestTimeTooSkewed")


@pytest.mark.parametrize(
    ("offset", "passes"), [(-MAX_SKEW_S + 60, True), (-MAX_SKEW_S - 60, False), (MAX_SKEW_S + 60, False)]
)
def test_the_clock_skew_allowed_is_fifteen_minutes(served: Served, offset: int, passes: bool) -> None:
    with at(datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=offset)):
        path, headers = header_signed(served, "GET", "/data")
    status, text = served.send("GET", path, headers)
    if passes:
        assert (status, text) == (200, "served")
    else:
        refused(served, status, text, "RequestTimeTooSkewed")


def test_a_replayed_request_with_another_body_is_refused(served: Served) -> None:
    path, headers = header_signed(served, "PUT", "/data/model", b"the signed bytes")
    refused(
        served, *served.send("PUT", path, headers, b"evil bytes here!"), "XAmzContentSHA256Mismatch", "does not match"
    )


def test_an_added_unsigned_amz_header_is_refused(served: Served) -> None:
    path, headers = header_signed(served, "PUT", "/data/copy")
    headers["x-amz-copy-source"] = "/data/secret"
    refused(served, *served.send("PUT", path, headers), "AccessDenied", "x-amz-copy-source are not signed")


def test_another_path_than_the_signed_one_does_not_match(served: Served) -> None:
    _path, headers = header_signed(served, "GET", "/data/mine")
    refused(served, *served.send("GET", "/data/theirs", headers), "SignatureDoesNotMatch")


def test_signature_version_2_in_the_header_is_refused(served: Served) -> None:
    request = AWSRequest(method="GET", url=served.url + "/data")
    HmacV1Auth(credentials()).add_auth(request)
    assert request.headers["Authorization"].startswith(f"AWS {KEYS.access_key_id}:")
    refused(served, *served.send("GET", "/data", dict(request.headers.items())), "InvalidRequest", "AWS4-HMAC-SHA256")


def test_an_unsigned_request_is_denied(served: Served) -> None:
    refused(served, *served.send("GET", "/data", {}), "AccessDenied")


# -- presigned URLs --------------------------------------------------------------------------------


def test_a_presigned_url_passes(served: Served) -> None:
    assert served.send("GET", presigned(served, "/data/dir/a%20b%2Bc.csv"), {}) == (200, "served")
    assert served.reached[0][1].startswith("/data/dir/a%20b%2Bc.csv?")


def test_an_expired_presigned_url_is_refused(served: Served) -> None:
    with at(datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=120)):
        url = presigned(served, "/data/x", expires=60)
    refused(served, *served.send("GET", url, {}), "AccessDenied", "Request has expired")


def test_a_presigned_url_dated_2001_is_expired(served: Served) -> None:
    with at(datetime.datetime(2001, 1, 1, tzinfo=datetime.timezone.utc)):
        url = presigned(served, "/data/x", expires=604800)
    refused(served, *served.send("GET", url, {}), "AccessDenied", "Request has expired")


@pytest.mark.parametrize(
    ("edit", "code", "message"),
    [
        (lambda q: q.replace("X-Amz-Signature=", "X-Amz-Signature=0"), "SignatureDoesNotMatch", ""),
        (
            lambda q: q.replace("X-Amz-Expires=3600", "X-Amz-Expires=604801"),
            "AuthorizationQueryParametersError",
            "604800",
        ),
        (
            lambda q: q.replace("X-Amz-Expires=3600", "X-Amz-Expires=0"),
            "AuthorizationQueryParametersError",
            "non-negative",
        ),
        (lambda q: q.replace("X-Amz-Expires=3600", "X-Amz-Expires=7200"), "SignatureDoesNotMatch", ""),
        (lambda q: q.replace("%2Fs3%2F", "%2Fiam%2F"), "AuthorizationQueryParametersError", "incorrect service"),
        (lambda q: q.replace("/data/x?", "/data/y?"), "SignatureDoesNotMatch", ""),
    ],
    ids=["forged-signature", "expires-over-a-week", "expires-zero", "expires-stretched", "other-service", "other-key"],
)
def test_a_tampered_presigned_url_is_refused(
    served: Served, edit: Callable[[str], str], code: str, message: str
) -> None:
    refused(served, *served.send("GET", edit(presigned(served, "/data/x")), {}), code, message)


def test_a_presigned_url_whose_scope_date_is_not_its_date_is_refused(served: Served) -> None:
    url = presigned(served, "/data/x")
    date = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["X-Amz-Date"][0][:8]
    refused(
        served,
        *served.send("GET", url.replace(f"%2F{date}%2F", "%2F20000101%2F"), {}),
        "AuthorizationQueryParametersError",
        "Invalid credential date",
    )


def test_a_presigned_url_of_another_session_is_denied(served: Served) -> None:
    refused(served, *served.send("GET", presigned(served, "/data/x", creds=credentials(OTHER)), {}), "AccessDenied")


def test_the_forged_query_of_issue_22_is_refused(served: Served) -> None:
    """Measured on the old gate: a session key id with any signature got 200."""
    forged = (
        f"/?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={KEYS.access_key_id}%2F20000101%2Fus-east-1%2Fs3%2F"
        "aws4_request&X-Amz-Date=20000101T000000Z&X-Amz-Expires=1&X-Amz-SignedHeaders=host&X-Amz-Signature=" + "0" * 64
    )
    refused(served, *served.send("GET", forged, {}), "SignatureDoesNotMatch")
    refused(
        served,
        *served.send("GET", forged.replace("&X-Amz-Date=20000101T000000Z", ""), {}),
        "AuthorizationQueryParametersError",
    )


def test_a_presigned_url_and_an_authorization_header_together_are_refused(served: Served) -> None:
    _path, headers = header_signed(served, "GET", "/data/x")
    refused(served, *served.send("GET", presigned(served, "/data/x"), headers), "InvalidArgument", "Only one auth")


# -- Signature Version 2 presigned URLs (boto3's default for generate_presigned_url) ---------------


def v2_presigned(served: Served, path: str, expires: int = 3600, creds: Credentials | None = None) -> str:
    request = AWSRequest(method="GET", url=served.url + path)
    HmacV1QueryAuth(creds or credentials(), expires=expires).add_auth(request)
    return target(request.url)


def test_a_signature_version_2_presigned_url_made_with_the_session_key_passes(served: Served) -> None:
    url = v2_presigned(served, "/data/dir/a%20b%2Bc.csv")
    assert "AWSAccessKeyId=" in url
    assert served.send("GET", url, {}) == (200, "served")


@pytest.mark.parametrize(
    "edit",
    [
        lambda q: q.split("Signature=")[0] + "Signature=AAAA" + "&Expires" + q.split("&Expires")[1],
        lambda q: q.replace("/data/x?", "/data/y?"),
    ],
    ids=["forged-signature", "other-key"],
)
def test_a_forged_signature_version_2_query_is_refused(served: Served, edit: Callable[[str], str]) -> None:
    refused(served, *served.send("GET", edit(v2_presigned(served, "/data/x")), {}), "SignatureDoesNotMatch")


def test_an_expired_signature_version_2_query_is_refused(served: Served) -> None:
    with mock.patch("botocore.auth.time.time", return_value=time.time() - 7200):
        url = v2_presigned(served, "/data/x")
    refused(served, *served.send("GET", url, {}), "AccessDenied", "Request has expired")


def test_a_signature_version_2_query_of_another_key_is_denied(served: Served) -> None:
    refused(served, *served.send("GET", v2_presigned(served, "/data/x", creds=credentials(OTHER)), {}), "AccessDenied")
    refused(served, *served.send("GET", f"/?AWSAccessKeyId={KEYS.access_key_id}&Signature=AAAA", {}), "AccessDenied")


# -- streaming (aws-chunked) uploads with chunk signatures -----------------------------------------


class StreamingAuth(S3SigV4Auth):  # type: ignore[misc]  # botocore has no type hints
    """botocore's signer with the seed's payload declared as signed chunks (what aws-cli and the Java SDK send)."""

    def payload(self, request: AWSRequest) -> str:
        return STREAMING


class TrailerAuth(StreamingAuth):
    def payload(self, request: AWSRequest) -> str:
        return STREAMING + "-TRAILER"


def streaming(
    served: Served,
    path: str,
    chunks: list[bytes],
    creds: Credentials | None = None,
    trailers: dict[str, str] | None = None,
) -> tuple[dict[str, str], bytes]:
    """Headers and an aws-chunked body, each chunk signed over the previous signature with botocore's key;
    with `trailers`, the -TRAILER form: those headers after the last chunk, signed over its signature."""
    size = sum(len(c) for c in chunks)
    headers = {"Content-Encoding": "aws-chunked", "X-Amz-Decoded-Content-Length": str(size)}
    if trailers is not None:
        headers["X-Amz-Trailer"] = ",".join(trailers)
    request = AWSRequest(method="PUT", url=served.url + path, headers=headers)
    auth = (StreamingAuth if trailers is None else TrailerAuth)(creds or credentials(), "s3", "us-east-1")
    auth.add_auth(request)
    previous = request.headers["Authorization"].rpartition("Signature=")[2]
    scope = auth.credential_scope(request)
    body = b""
    for chunk in [*chunks, b""]:
        to_sign = "\n".join(
            [
                "AWS4-HMAC-SHA256-PAYLOAD",
                request.context["timestamp"],
                scope,
                previous,
                hashlib.sha256(b"").hexdigest(),
                hashlib.sha256(chunk).hexdigest(),
            ]
        )
        previous = auth.signature(to_sign, request)
        body += f"{len(chunk):x};chunk-signature={previous}\r\n".encode() + chunk
        if chunk or trailers is None:
            body += b"\r\n"
    if trailers is not None:
        canonical = "".join(f"{k.lower()}:{v}\n" for k, v in sorted(trailers.items()))
        to_sign = "\n".join(
            [
                "AWS4-HMAC-SHA256-TRAILER",
                request.context["timestamp"],
                scope,
                previous,
                hashlib.sha256(canonical.encode()).hexdigest(),
            ]
        )
        for name, value in trailers.items():
            body += f"{name}:{value}\r\n".encode()
        body += f"x-amz-trailer-signature:{auth.signature(to_sign, request)}\r\n\r\n".encode()
    return dict(request.headers.items()), body


def test_a_streaming_upload_with_valid_chunk_signatures_passes(served: Served) -> None:
    headers, body = streaming(served, "/data/big", [b"a" * 70_000, b"b" * 10])
    assert served.send("PUT", "/data/big", headers, body) == (200, "served")
    assert served.reached == [("PUT", "/data/big", body)]


def test_a_streaming_upload_with_a_changed_chunk_is_refused(served: Served) -> None:
    headers, body = streaming(served, "/data/big", [b"a" * 70_000, b"b" * 10])
    refused(served, *served.send("PUT", "/data/big", headers, body.replace(b"bbbb", b"cccc")), "SignatureDoesNotMatch")


CHECKSUM = {"x-amz-checksum-crc32": "AAAAAA=="}


def test_signed_trailing_headers_pass(served: Served) -> None:
    headers, body = streaming(served, "/data/t", [b"a" * 70_000, b"b" * 10], trailers=CHECKSUM)
    assert served.send("PUT", "/data/t", headers, body) == (200, "served")
    assert served.reached == [("PUT", "/data/t", body)]


def test_a_changed_trailing_header_is_refused(served: Served) -> None:
    headers, body = streaming(served, "/data/t", [b"a" * 100], trailers=CHECKSUM)
    forged = body.replace(b"AAAAAA==", b"BBBBBB==")
    refused(served, *served.send("PUT", "/data/t", headers, forged), "SignatureDoesNotMatch")


def test_trailing_headers_without_their_signature_are_refused(served: Served) -> None:
    headers, body = streaming(served, "/data/t", [b"a" * 100], trailers=CHECKSUM)
    unsigned = body[: body.index(b"x-amz-trailer-signature:")] + b"\r\n"
    refused(served, *served.send("PUT", "/data/t", headers, unsigned), "SignatureDoesNotMatch")


def test_trailing_headers_cut_short_are_refused(served: Served) -> None:
    headers, body = streaming(served, "/data/t", [b"a" * 100], trailers=CHECKSUM)
    refused(served, *served.send("PUT", "/data/t", headers, body[:-2]), "IncompleteBody")


# -- legitimate clients of a real moto behind the gate -----------------------------------------------


@pytest.fixture(scope="module")
def moto() -> Iterator[S3Server]:
    with S3Server() as server:
        server.client().create_bucket(Bucket="data")
        yield server


@pytest.mark.parametrize("signature_version", ["s3v4", None], ids=["sigv4", "boto3-default-sigv2"])
def test_boto3_presigned_urls_of_the_session_work_on_moto(moto: S3Server, signature_version: str | None) -> None:
    import boto3
    from botocore.config import Config

    client = boto3.session.Session(**moto.session_kwargs()).client(
        "s3", endpoint_url=moto.endpoint_url, config=Config(signature_version=signature_version)
    )
    client.put_object(Bucket="data", Key="p/a b.txt", Body=b"presigned")
    put = client.generate_presigned_url("put_object", Params={"Bucket": "data", "Key": "p/up.txt"})
    get = client.generate_presigned_url("get_object", Params={"Bucket": "data", "Key": "p/a b.txt"})
    host = urllib.parse.urlsplit(moto.endpoint_url).netloc
    for method, url, body in (("PUT", put, b"uploaded"), ("GET", get, b"")):
        connection = http.client.HTTPConnection(host, timeout=30)
        connection.request(method, target(url), body=body or None)
        response = connection.getresponse()
        assert response.status == 200, response.read()
        assert response.read() == (b"presigned" if method == "GET" else b"")
        connection.close()
    assert moto.get_bytes("s3://data/p/up.txt") == b"uploaded"


def test_unsigned_payloads_and_signed_chunks_reach_moto(moto: S3Server) -> None:
    import boto3
    from botocore.config import Config

    unsigned = boto3.session.Session(**moto.session_kwargs()).client(
        "s3", endpoint_url=moto.endpoint_url, config=Config(s3={"payload_signing_enabled": False})
    )
    unsigned.put_object(Bucket="data", Key="u/x", Body=b"unsigned payload")
    assert moto.get_bytes("s3://data/u/x") == b"unsigned payload"
    direct = Served(moto.endpoint_url, SigV4Gate(lambda e, s: [], moto.keys))
    chunks = [b"x" * 70_000, b"y" * 5]
    headers, body = streaming(direct, "/data/s/big", chunks, credentials(moto.keys))
    assert direct.send("PUT", "/data/s/big", headers, body)[0] == 200
    assert moto.get_bytes("s3://data/s/big") == b"".join(chunks)

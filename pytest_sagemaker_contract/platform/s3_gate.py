"""The session's S3 answers only its own clients: S3's own SigV4 checks in front of moto.

moto in server mode answers anyone who reaches its port (another local user, any container on the
Docker bridge, another session). The gate lets a request through only when it is signed (AWS
Signature Version 4, in the Authorization header or as a presigned URL) with this session's random
key, checked the way S3 checks it: the signature recomputed with the session's secret, the credential
scope, the request time (15 minutes of clock skew for a signed header, `X-Amz-Date` + `X-Amz-Expires`
for a presigned URL), every `x-amz-*` header signed, and a signed payload hash (or each chunk's
signature of a streaming upload) matching the body that came. Signature Version 2 is refused, as S3
refuses it in every region opened since 2014. Refusals carry S3's error codes, so clients report them
as S3 would. moto's own IAM authentication would do part of this, but it is a process-wide switch
that would also break a user's in-process `mock_aws` tests in the same pytest run.
"""

from __future__ import annotations

import base64
import calendar
import hashlib
import hmac
import re
import secrets
import string
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import IO, Any
from urllib.parse import quote, unquote, urlsplit

__all__ = ["MAX_SKEW_S", "Refusal", "SessionKeys", "SigV4Gate"]

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
_ALGORITHM = "AWS4-HMAC-SHA256"
#: S3's allowed difference between a signed request's time and the server's.
MAX_SKEW_S = 15 * 60
#: S3's longest presigned URL: seven days.
MAX_EXPIRES_S = 7 * 24 * 3600
UNSIGNED = "UNSIGNED-PAYLOAD"
_STREAMING_SIGNED = ("STREAMING-AWS4-HMAC-SHA256-PAYLOAD", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER")
_STREAMING_UNSIGNED = ("STREAMING-UNSIGNED-PAYLOAD-TRAILER",)
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
#: Trailing headers one aws-chunked body may carry (a checksum or two; more is no client's).
_MAX_TRAILERS = 8
_HEX64 = re.compile(r"[0-9a-f]{64}")
_AMZ_DATE = re.compile(r"(\d{8})T\d{6}Z")
#: WSGI keys of the headers that are not under HTTP_.
_PLAIN_HEADERS = {"content-type": "CONTENT_TYPE", "content-length": "CONTENT_LENGTH"}
#: Bodies up to this size are checked in memory; larger ones spool to a temporary file.
_SPOOL_MEMORY = 1 << 20
_CHUNK = 1 << 16
#: Longest line of an aws-chunked header (`<hex size>;chunk-signature=<64 hex>`) or trailer.
_MAX_LINE = 4096

_NOT_SUPPORTED = "The authorization mechanism you have provided is not supported. Please use AWS4-HMAC-SHA256."
_ONE_MECHANISM = (
    "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string "
    "parameter or the Authorization header should be specified"
)
_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. Check your key and signing method."
)


@dataclass(frozen=True)
class SessionKeys:
    access_key_id: str
    secret_access_key: str

    @classmethod
    def generate(cls) -> SessionKeys:
        alphabet = string.ascii_uppercase + string.digits
        return cls("SMC" + "".join(secrets.choice(alphabet) for _ in range(17)), secrets.token_urlsafe(30))


@dataclass(frozen=True)
class Refusal:
    """S3's answer to a request it does not serve: HTTP status, S3 error code and message, and why here."""

    status: str
    code: str
    message: str
    reason: str

    def body(self) -> bytes:
        message = f"{self.message} ({self.reason}; this S3 serves one sagemaker-contract session)"
        escaped = message.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        return (
            f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{self.code}</Code>'
            f"<Message>{escaped}</Message></Error>"
        ).encode()


def _denied(reason: str, message: str = "Access Denied") -> Refusal:
    return Refusal("403 Forbidden", "AccessDenied", message, reason)


def _mismatch(reason: str) -> Refusal:
    return Refusal("403 Forbidden", "SignatureDoesNotMatch", _MISMATCH, reason)


def _bad_request(code: str, message: str, reason: str = "") -> Refusal:
    return Refusal("400 Bad Request", code, message, reason or message)


@dataclass(frozen=True)
class _Signed:
    """What a SigV4 request claims: who signed, when, for which scope, which headers, with what signature."""

    key_id: str
    scope: list[str]
    amz_date: str
    signed_headers: list[str]
    signature: str
    payload: str
    presigned: bool


def _params(query: str) -> list[tuple[str, str]]:
    """The query's (name, value) pairs, decoded as S3 decodes them."""
    pairs = []
    for pair in query.split("&"):
        if pair:
            name, _, value = pair.partition("=")
            pairs.append((unquote(name), unquote(value)))
    return pairs


def _canonical_query(query: str, presigned: bool) -> list[str]:
    """The canonical query string: S3's encoding, and the encoding as sent (a client may sign either)."""
    raw = [p.partition("=") for p in query.split("&") if p]
    if presigned:
        raw = [p for p in raw if unquote(p[0]) != "X-Amz-Signature"]
    as_sent = "&".join(f"{k}={v}" for k, _, v in sorted(raw))
    normal = "&".join(sorted(f"{quote(unquote(k), safe='-_.~')}={quote(unquote(v), safe='-_.~')}" for k, _, v in raw))
    return list(dict.fromkeys([normal, as_sent]))


def _canonical_paths(path: str) -> list[str]:
    return list(dict.fromkeys([quote(unquote(path), safe="/~"), path or "/"]))


def _raw_target(environ: dict[str, Any]) -> tuple[str, str]:
    """The request's path and query as the client sent them (encoded)."""
    raw = str(environ.get("RAW_URI") or environ.get("REQUEST_URI") or "")
    if raw.startswith(("http://", "https://")):
        parts = urlsplit(raw)
        return parts.path, parts.query
    if raw:
        path, _, query = raw.partition("?")
        return path, query
    return quote(str(environ.get("PATH_INFO", "/")), safe="/~"), str(environ.get("QUERY_STRING", ""))


def _signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = ("AWS4" + secret).encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def _hmac_hex(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def _epoch(amz_date: str) -> float:
    return float(calendar.timegm(time.strptime(amz_date, "%Y%m%dT%H%M%SZ")))


class SigV4Gate:
    """WSGI middleware: pass requests signed with `keys` as S3 would accept them, refuse the rest as S3 would."""

    def __init__(self, app: WsgiApp, keys: SessionKeys, clock: Callable[[], float] = time.time) -> None:
        self.app = app
        self.keys = keys
        self.clock = clock

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        refusal = self.check(environ)
        if refusal is None:
            return self.app(environ, start_response)
        body = refusal.body()
        start_response(refusal.status, [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))])
        return [body]

    def problem(self, environ: dict[str, Any]) -> str | None:
        """Why the request is not this session's, or None when it is (the body is not read)."""
        claim = self._claim(environ)
        if claim is None:
            return None
        if isinstance(claim, Refusal):
            return f"{claim.code}: {claim.reason}"
        refusal = self._verify(environ, claim)
        return None if refusal is None else f"{refusal.code}: {refusal.reason}"

    def check(self, environ: dict[str, Any]) -> Refusal | None:
        """None when the request is this session's (its body then verified and replaced by a rewound copy)."""
        claim = self._claim(environ)
        if claim is None or isinstance(claim, Refusal):
            return claim
        refusal = self._verify(environ, claim)
        if refusal is None and not claim.presigned:
            refusal = self._verify_body(environ, claim)
        return refusal

    # -- what the request claims --------------------------------------------------------------------

    def _claim(self, environ: dict[str, Any]) -> _Signed | Refusal | None:
        """What a SigV4 request claims, or the refusal; None for a verified Signature Version 2 presigned URL."""
        params = dict(_params(environ.get("QUERY_STRING", "")))
        authorization = str(environ.get("HTTP_AUTHORIZATION", "")).strip()
        if authorization.startswith("AWS "):
            return _bad_request("InvalidRequest", _NOT_SUPPORTED, "AWS Signature Version 2 is not accepted")
        if "AWSAccessKeyId" in params or "Signature" in params:
            if authorization or "X-Amz-Algorithm" in params:
                return _bad_request("InvalidArgument", _ONE_MECHANISM)
            return self._verify_v2_query(environ, params)
        if "X-Amz-Algorithm" in params or "X-Amz-Credential" in params or "X-Amz-Signature" in params:
            if authorization:
                return _bad_request("InvalidArgument", _ONE_MECHANISM)
            return self._query_claim(params)
        if not authorization:
            return _denied("the request is not signed")
        algorithm, _, fields = authorization.partition(" ")
        if algorithm != _ALGORITHM:
            return _bad_request("InvalidRequest", _NOT_SUPPORTED, f"authorization {algorithm!r} is not accepted")
        parts = {}
        for field in fields.split(","):
            name, _, value = field.strip().partition("=")
            parts[name] = value.strip()
        if not all(parts.get(name) for name in ("Credential", "SignedHeaders", "Signature")):
            return _bad_request(
                "AuthorizationHeaderMalformed",
                "The authorization header is malformed; it needs Credential, SignedHeaders and Signature.",
            )
        payload = str(environ.get("HTTP_X_AMZ_CONTENT_SHA256", ""))
        if not payload:
            return _bad_request("InvalidRequest", "Missing required header for this request: x-amz-content-sha256")
        return _Signed(
            key_id=parts["Credential"].split("/")[0],
            scope=parts["Credential"].split("/")[1:],
            amz_date=str(environ.get("HTTP_X_AMZ_DATE", "")),
            signed_headers=parts["SignedHeaders"].split(";"),
            signature=parts["Signature"],
            payload=payload,
            presigned=False,
        )

    def _query_claim(self, params: dict[str, str]) -> _Signed | Refusal:
        missing = [
            name
            for name in ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature", "X-Amz-Date", "X-Amz-SignedHeaders")
            if not params.get(name)
        ]
        if missing or "X-Amz-Expires" not in params:
            return _bad_request(
                "AuthorizationQueryParametersError",
                "Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, "
                "X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters.",
            )
        if params["X-Amz-Algorithm"] != _ALGORITHM:
            return _bad_request(
                "AuthorizationQueryParametersError",
                'X-Amz-Algorithm only supports "AWS4-HMAC-SHA256"',
            )
        expires = params["X-Amz-Expires"]
        if not expires.isdigit():
            return _bad_request("AuthorizationQueryParametersError", "X-Amz-Expires should be a number")
        if int(expires) > MAX_EXPIRES_S:
            return _bad_request(
                "AuthorizationQueryParametersError",
                "X-Amz-Expires must be less than a week (in seconds) that is; 604800 seconds",
            )
        if int(expires) < 1:
            return _bad_request("AuthorizationQueryParametersError", "X-Amz-Expires must be non-negative")
        credential = params["X-Amz-Credential"].split("/")
        return _Signed(
            key_id=credential[0],
            scope=credential[1:],
            amz_date=params["X-Amz-Date"],
            signed_headers=params["X-Amz-SignedHeaders"].split(";"),
            signature=params["X-Amz-Signature"],
            payload=UNSIGNED,
            presigned=True,
        )

    def _verify_v2_query(self, environ: dict[str, Any], params: dict[str, str]) -> Refusal | None:
        """A presigned URL of Signature Version 2, what boto3's `generate_presigned_url` makes unless told
        `signature_version="s3v4"`: checked (HMAC-SHA1 with the session's secret, `Expires` not past) and, when
        it holds, let through; S3 still takes these in us-east-1, the region this S3 plays."""
        key_id, signature, expires = (params.get(name, "") for name in ("AWSAccessKeyId", "Signature", "Expires"))
        if not key_id or not signature or not expires.isdigit():
            return _denied(
                "a Signature Version 2 query needs AWSAccessKeyId, Signature and Expires",
                "Query-string authentication requires the Signature, Expires and AWSAccessKeyId parameters",
            )
        if not hmac.compare_digest(key_id.encode(), self.keys.access_key_id.encode()):
            return _denied("the access key is not this session's")
        from botocore.auth import HmacV1Auth  # lazy: botocore takes a third of a second to import

        raw_path = _raw_target(environ)[0]
        query = _params(environ.get("QUERY_STRING", ""))
        amz = {name.lower(): value for name, value in query if name.lower().startswith("x-amz-")}
        for key, value in environ.items():
            if key.startswith("HTTP_X_AMZ_"):
                amz.setdefault(key[5:].lower().replace("_", "-"), " ".join(str(value).split()))
        standard = [
            params.get(name) or str(environ.get(wsgi_key, ""))
            for name, wsgi_key in (("content-md5", "HTTP_CONTENT_MD5"), ("content-type", "CONTENT_TYPE"))
        ]
        interesting = sorted((k, v) for k, v in query if k in HmacV1Auth.QSAOfInterest)
        resources = "&".join(f"{k}={v}" if v else k for k, v in interesting)
        custom = "".join(f"{name}:{amz[name]}\n" for name in sorted(amz))
        secret = self.keys.secret_access_key.encode()
        for path in _canonical_paths(raw_path):
            resource = path + (f"?{resources}" if resources else "")
            text = f"{environ['REQUEST_METHOD'].upper()}\n{standard[0]}\n{standard[1]}\n{expires}\n{custom}{resource}"
            expected = base64.b64encode(hmac.new(secret, text.encode(), hashlib.sha1).digest()).decode()
            if hmac.compare_digest(expected.encode(), signature.encode()):
                if self.clock() > int(expires):
                    return _denied(f"valid until {expires} (epoch seconds)", "Request has expired")
                return None
        return _mismatch("the Signature Version 2 signature does not match the session's secret")

    # -- whether the claim holds ----------------------------------------------------------------------

    def _verify(self, environ: dict[str, Any], claim: _Signed) -> Refusal | None:
        malformed = "AuthorizationQueryParametersError" if claim.presigned else "AuthorizationHeaderMalformed"
        if len(claim.scope) != 4:
            return _bad_request(
                malformed,
                'The credential is malformed; expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request".',
            )
        if not hmac.compare_digest(claim.key_id.encode(), self.keys.access_key_id.encode()):
            return _denied("the access key is not this session's")
        date, region, service, terminal = claim.scope
        matched = _AMZ_DATE.fullmatch(claim.amz_date)
        if matched is None:
            if claim.presigned:
                return _bad_request(
                    "AuthorizationQueryParametersError",
                    "X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"",
                )
            return _denied("the request has no valid signed X-Amz-Date", "AWS authentication requires a valid Date.")
        if date != matched.group(1):
            return _bad_request(
                malformed,
                f'Invalid credential date "{date}". This date is not the same as X-Amz-Date: "{matched.group(1)}".',
            )
        if service != "s3":
            return _bad_request(malformed, f'The credential has an incorrect service "{service}"; expecting "s3".')
        if terminal != "aws4_request" or not region:
            return _bad_request(malformed, 'The credential\'s terminal is not "aws4_request" or it names no region.')
        if "host" not in claim.signed_headers:
            return _denied("the Host header is not signed")
        headers: dict[str, str] = {}
        for name in claim.signed_headers:
            value = environ.get(_PLAIN_HEADERS.get(name) or "HTTP_" + name.upper().replace("-", "_"))
            if value is None:
                return _mismatch(f"signed header {name} is missing")
            headers[name] = " ".join(str(value).split())
        unsigned = sorted(
            key[5:].lower().replace("_", "-")
            for key in environ
            if key.startswith("HTTP_X_AMZ_") and key[5:].lower().replace("_", "-") not in headers
        )
        if unsigned:
            return _denied(
                f"headers {', '.join(unsigned)} are not signed",
                "There were headers present in the request which were not signed",
            )
        try:
            signed_at = _epoch(claim.amz_date)
        except ValueError:
            return _denied("X-Amz-Date is not a date", "AWS authentication requires a valid Date.")
        now = self.clock()
        if claim.presigned:
            if signed_at - now > MAX_SKEW_S:
                return _denied("the presigned URL is dated in the future", "Request is not valid yet")
        elif abs(now - signed_at) > MAX_SKEW_S:
            return Refusal(
                "403 Forbidden",
                "RequestTimeTooSkewed",
                "The difference between the request time and the current time is too large.",
                f"signed at {claim.amz_date}, more than {MAX_SKEW_S // 60} minutes from now",
            )
        signature = self._signature(environ, claim, headers)
        if not hmac.compare_digest(signature.encode(), claim.signature.encode()):
            return _mismatch("the signature does not match the session's secret")
        if claim.presigned:
            expires = int(dict(_params(environ.get("QUERY_STRING", "")))["X-Amz-Expires"])
            if now > signed_at + expires:
                return _denied(f"signed at {claim.amz_date}, valid for {expires} s", "Request has expired")
        return None

    def _signature(self, environ: dict[str, Any], claim: _Signed, headers: dict[str, str]) -> str:
        """The signature this session's secret gives the request, or "" when none of its canonical forms match."""
        path, query = _raw_target(environ)
        date, region, service, _ = claim.scope
        key = _signing_key(self.keys.secret_access_key, date, region, service)
        canonical_headers = "".join(f"{name}:{headers[name]}\n" for name in claim.signed_headers)
        scope = "/".join(claim.scope)
        for canonical_path in _canonical_paths(path):
            for canonical_query in _canonical_query(query, claim.presigned):
                request = "\n".join(
                    [
                        str(environ["REQUEST_METHOD"]).upper(),
                        canonical_path,
                        canonical_query,
                        canonical_headers,
                        ";".join(claim.signed_headers),
                        claim.payload,
                    ]
                )
                digest = hashlib.sha256(request.encode()).hexdigest()
                signature = _hmac_hex(key, f"{_ALGORITHM}\n{claim.amz_date}\n{scope}\n{digest}")
                if hmac.compare_digest(signature.encode(), claim.signature.encode()):
                    return signature
        return ""

    # -- the body -----------------------------------------------------------------------------------

    def _verify_body(self, environ: dict[str, Any], claim: _Signed) -> Refusal | None:
        """The body must be what was signed: its SHA-256, or each chunk's signature of a streaming upload."""
        if claim.payload in (UNSIGNED, *_STREAMING_UNSIGNED):
            return None
        if claim.payload not in _STREAMING_SIGNED and not _HEX64.fullmatch(claim.payload):
            return _bad_request(
                "InvalidArgument", "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-... or a SHA-256 value"
            )
        source: IO[bytes] = environ["wsgi.input"]
        length = str(environ.get("CONTENT_LENGTH") or "")
        limit = int(length) if length.isdigit() else (None if environ.get("wsgi.input_terminated") else 0)
        copy = tempfile.SpooledTemporaryFile(max_size=_SPOOL_MEMORY)  # noqa: SIM115 -- handed to moto as wsgi.input
        reader = _Reader(source, copy, limit)
        if claim.payload in _STREAMING_SIGNED:
            date, region, service, _ = claim.scope
            key = _signing_key(self.keys.secret_access_key, date, region, service)
            refusal = _verify_chunks(reader, key, claim)
        else:
            digest = hashlib.sha256()
            while data := reader.read(_CHUNK):
                digest.update(data)
            refusal = None
            if not hmac.compare_digest(digest.hexdigest(), claim.payload):
                refusal = _bad_request(
                    "XAmzContentSHA256Mismatch",
                    "The provided 'x-amz-content-sha256' header does not match what was computed.",
                )
        if refusal is not None:
            copy.close()
            return refusal
        copy.seek(0)
        environ["wsgi.input"] = copy
        return None


class _Reader:
    """Reads the request body (at most `limit` bytes; None: to its end) and keeps a copy of every byte read."""

    def __init__(self, source: IO[bytes], copy: IO[bytes], limit: int | None) -> None:
        self.source = source
        self.copy = copy
        self.left = limit

    def read(self, size: int) -> bytes:
        if self.left is not None:
            size = min(size, self.left)
        if size <= 0:
            return b""
        data = self.source.read(size)
        if self.left is not None:
            self.left -= len(data)
        self.copy.write(data)
        return data

    def read_exactly(self, size: int) -> bytes | None:
        parts = []
        while size > 0:
            data = self.read(min(size, _CHUNK))
            if not data:
                return None
            parts.append(data)
            size -= len(data)
        return b"".join(parts)

    def line(self) -> bytes | None:
        """One CRLF-ended line without its CRLF, or None when the body ends first or it is too long."""
        data = b""
        while not data.endswith(b"\r\n"):
            byte = self.read(1)
            if not byte or len(data) > _MAX_LINE:
                return None
            data += byte
        return data[:-2]


def _verify_chunks(reader: _Reader, key: bytes, claim: _Signed) -> Refusal | None:
    """aws-chunked with chunk signatures: each chunk signed over the previous signature, the last empty.

    The -TRAILER form then sends its trailing headers (a checksum), signed over the last chunk's signature
    (`x-amz-trailer-signature`): verified like the chunks, then copied on for moto to check the checksum."""
    broken = _bad_request("IncompleteBody", "The request body is not a complete aws-chunked body.")
    scope = "/".join(claim.scope)
    previous = claim.signature
    while True:
        line = reader.line()
        if line is None:
            return broken
        size_text, _, extension = line.decode("latin-1").partition(";")
        name, _, signature = extension.partition("=")
        try:
            size = int(size_text, 16)
        except ValueError:
            return broken
        data = b"" if size == 0 else reader.read_exactly(size)
        if data is None or name.strip() != "chunk-signature":
            return broken
        expected = _hmac_hex(
            key,
            f"{_ALGORITHM}-PAYLOAD\n{claim.amz_date}\n{scope}\n{previous}\n{_EMPTY_SHA256}\n"
            f"{hashlib.sha256(data).hexdigest()}",
        )
        if not hmac.compare_digest(expected.encode(), signature.strip().encode()):
            return _mismatch("a chunk's signature does not match")
        previous = expected
        if size == 0:
            break
        if reader.read_exactly(2) != b"\r\n":
            return broken
    if claim.payload.endswith("-TRAILER"):
        refusal = _verify_trailer(reader, key, claim, previous)
        if refusal is not None:
            return refusal
    while reader.read(_CHUNK):
        pass
    return None


def _verify_trailer(reader: _Reader, key: bytes, claim: _Signed, previous: str) -> Refusal | None:
    """The trailing headers, one `name:value` line each up to an empty line, and their signature: an HMAC of
    `AWS4-HMAC-SHA256-TRAILER`, the date, the scope, the last chunk's signature and the SHA-256 of the
    trailing headers as `name:value\n` lines (x-amz-trailer-signature itself left out)."""
    broken = _bad_request("IncompleteBody", "The request body's trailing headers are incomplete.")
    trailers: list[tuple[str, str]] = []
    signature: str | None = None
    for _ in range(_MAX_TRAILERS + 1):
        line = reader.line()
        if line is None:
            return broken
        if not line:
            break
        name, sep, value = line.decode("latin-1").partition(":")
        if not sep:
            return broken
        name, value = name.strip().lower(), value.strip()
        if name == "x-amz-trailer-signature":
            signature = value
        else:
            trailers.append((name, value))
    else:
        return broken
    if signature is None:
        return _mismatch("the trailing headers carry no x-amz-trailer-signature")
    canonical = "".join(f"{name}:{value}\n" for name, value in sorted(trailers))
    expected = _hmac_hex(
        key,
        f"{_ALGORITHM}-TRAILER\n{claim.amz_date}\n{'/'.join(claim.scope)}\n{previous}\n"
        f"{hashlib.sha256(canonical.encode()).hexdigest()}",
    )
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        return _mismatch("the trailing headers' signature does not match")
    return None

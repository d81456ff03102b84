"""The session's S3 answers only its own clients: a SigV4 check in front of moto.

moto in server mode answers anyone who reaches its port (another local user, any container on the
Docker bridge, another session). The gate lets a request through only when it is signed (AWS
Signature Version 4) with this session's random access key; everything else gets S3's own
`AccessDenied`. moto's own IAM authentication would do the same, but it is a process-wide switch
that would also break a user's in-process `mock_aws` tests in the same pytest run.
"""

from __future__ import annotations

import hmac
import secrets
import string
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

__all__ = ["SessionKeys", "SigV4Gate"]

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
_ALGORITHM = "AWS4-HMAC-SHA256"
#: WSGI keys of the headers that are not under HTTP_.
_PLAIN_HEADERS = {"content-type": "CONTENT_TYPE", "content-length": "CONTENT_LENGTH"}


@dataclass(frozen=True)
class SessionKeys:
    access_key_id: str
    secret_access_key: str

    @classmethod
    def generate(cls) -> SessionKeys:
        alphabet = string.ascii_uppercase + string.digits
        return cls("SMC" + "".join(secrets.choice(alphabet) for _ in range(17)), secrets.token_urlsafe(30))


def _between(text: str, start: str, end: str = ",") -> str:
    return text.partition(start)[2].partition(end)[0].strip()


class SigV4Gate:
    """WSGI middleware: pass requests signed with `keys`, deny the rest with 403 AccessDenied."""

    def __init__(self, app: WsgiApp, keys: SessionKeys) -> None:
        self.app = app
        self.keys = keys

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        problem = self.problem(environ)
        if problem is None:
            return self.app(environ, start_response)
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
            f"<Message>Access Denied: {problem} (this S3 serves one sagemaker-contract session)</Message></Error>"
        ).encode()
        start_response("403 Forbidden", [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))])
        return [body]

    def problem(self, environ: dict[str, Any]) -> str | None:
        """Why the request is not this session's, or None when it is."""
        query = parse_qs(environ.get("QUERY_STRING", ""))
        # A presigned URL (SigV4 or SigV2 query auth) names the key that signed it; the key id, random per
        # session and never printed, is what a stranger lacks.
        presigned = query.get("X-Amz-Credential", [""])[0].split("/", 1)[0] or query.get("AWSAccessKeyId", [""])[0]
        if presigned:
            return None if hmac.compare_digest(presigned, self.keys.access_key_id) else "unknown access key"
        authorization = environ.get("HTTP_AUTHORIZATION", "")
        if not authorization.startswith(_ALGORITHM + " "):
            return "the request is not signed with AWS Signature Version 4"
        scope = _between(authorization, "Credential=").split("/")
        if len(scope) != 5 or not hmac.compare_digest(scope[0], self.keys.access_key_id):
            return "unknown access key"
        signed = _between(authorization, "SignedHeaders=").split(";")
        headers = {}
        for name in signed:
            value = environ.get(_PLAIN_HEADERS.get(name) or "HTTP_" + name.upper().replace("-", "_"))
            if value is None:
                return f"signed header {name} is missing"
            headers[name] = str(value)
        if "x-amz-date" not in headers:
            return "the request has no signed X-Amz-Date"
        # lazy: botocore takes a third of a second to import; only a session that runs jobs pays it
        from botocore.auth import S3SigV4Auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        raw = environ.get("RAW_URI") or environ.get("REQUEST_URI") or environ.get("PATH_INFO", "/")
        request = AWSRequest(method=environ["REQUEST_METHOD"], url=f"http://{headers.get('host', 'localhost')}{raw}")
        for name, value in headers.items():
            request.headers[name] = value
        request.context["timestamp"] = headers["x-amz-date"]
        auth = S3SigV4Auth(Credentials(self.keys.access_key_id, self.keys.secret_access_key), scope[3], scope[2])
        expected = auth.signature(auth.string_to_sign(request, auth.canonical_request(request)), request)
        if not hmac.compare_digest(expected, _between(authorization, "Signature=")):
            return "the signature does not match"
        return None

"""Only the session's clients are served: every request is checked as AWS checks SigV4 (the S3 gate's rule).

The signature is recomputed with botocore's own signer from the request as it arrived (the headers it
claims to have signed, the body, the time in X-Amz-Date) and the session's secret; the key id, the
credential scope (date, region, service) and the clock skew are checked as the JSON and query services
check them, with their error codes.
"""

from __future__ import annotations

import calendar
import hmac
import time
from collections.abc import Mapping
from typing import Any

from ..platform.s3_gate import SessionKeys
from .errors import ApiError

__all__ = ["MAX_SKEW_S", "verify"]

#: SageMaker, CloudWatch Logs and STS refuse a signature more than five minutes from their clock.
MAX_SKEW_S = 5 * 60
_ALGORITHM = "AWS4-HMAC-SHA256"


def _refused(code: str, message: str, status: int = 400) -> ApiError:
    return ApiError(code, message, 403 if code == "InvalidClientTokenId" else status)


def verify(
    method: str,
    raw_path: str,
    headers: Mapping[str, str],
    body: bytes,
    keys: SessionKeys,
    service: str,
    *,
    query_protocol: bool = False,
    now: float | None = None,
) -> None:
    """Raise the ApiError AWS answers when the request is not signed with `keys` for `service`.

    `headers` is keyed by lower-case names. The query protocol (STS) names its errors differently.
    """
    bad_key = "InvalidClientTokenId" if query_protocol else "UnrecognizedClientException"
    authorization = headers.get("authorization", "").strip()
    if not authorization:
        raise _refused(
            "MissingAuthenticationToken" if query_protocol else "MissingAuthenticationTokenException",
            "Request is missing Authentication Token",
        )
    algorithm, _, fields = authorization.partition(" ")
    if algorithm != _ALGORITHM:
        raise _refused(
            "IncompleteSignature" if query_protocol else "IncompleteSignatureException",
            f"Unsupported authorization type {algorithm!r}: sign with AWS Signature Version 4",
        )
    parts: dict[str, str] = {}
    for field in fields.split(","):
        name, _, value = field.strip().partition("=")
        parts[name] = value.strip()
    credential = parts.get("Credential", "").split("/")
    signed = [h for h in parts.get("SignedHeaders", "").split(";") if h]
    signature = parts.get("Signature", "")
    amz_date = headers.get("x-amz-date", "")
    if len(credential) != 5 or not signed or not signature or not amz_date:
        raise _refused(
            "IncompleteSignature" if query_protocol else "IncompleteSignatureException",
            "Authorization header requires Credential, SignedHeaders, Signature and an X-Amz-Date header",
        )
    key_id, date, region, scope_service, terminator = credential
    if not hmac.compare_digest(key_id, keys.access_key_id):
        raise _refused(bad_key, "The security token included in the request is invalid.")
    if scope_service != service or terminator != "aws4_request" or date != amz_date[:8]:
        raise _refused(
            "SignatureDoesNotMatch" if query_protocol else "InvalidSignatureException",
            f"Credential should be scoped to a valid region and to the service {service!r}, "
            f"not {'/'.join(credential[1:])!r}",
        )
    try:
        signed_at = calendar.timegm(time.strptime(amz_date, "%Y%m%dT%H%M%SZ"))
    except ValueError:
        raise _refused(
            "IncompleteSignature" if query_protocol else "IncompleteSignatureException",
            f"X-Amz-Date {amz_date!r} is not of the form YYYYMMDDTHHMMSSZ",
        ) from None
    clock = time.time() if now is None else now
    if abs(clock - signed_at) > MAX_SKEW_S:
        raise _refused(
            "SignatureDoesNotMatch" if query_protocol else "InvalidSignatureException",
            f"Signature expired: {amz_date} is more than 5 minutes away from the server's time "
            f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(clock))}",
        )
    missing = [h for h in signed if h not in headers]
    if missing or "host" not in signed:
        raise _refused(
            "SignatureDoesNotMatch" if query_protocol else "InvalidSignatureException",
            f"The request signature we calculated does not match the signature you provided (signed headers "
            f"{'; '.join(missing) or 'without host'} not in the request)",
        )
    expected = _signature(method, raw_path, {h: headers[h] for h in signed}, body, keys, region, service, amz_date)
    if not hmac.compare_digest(expected, signature):
        raise _refused(
            "SignatureDoesNotMatch" if query_protocol else "InvalidSignatureException",
            "The request signature we calculated does not match the signature you provided. Check your AWS "
            "Secret Access Key and signing method.",
        )


def _signature(
    method: str,
    raw_path: str,
    headers: Mapping[str, str],
    body: bytes,
    keys: SessionKeys,
    region: str,
    service: str,
    amz_date: str,
) -> str:
    from botocore.auth import SigV4Auth  # lazy: botocore is slow to import
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request: Any = AWSRequest(
        method=method, url=f"http://{headers['host']}{raw_path}", headers=dict(headers), data=body
    )
    request.context["timestamp"] = amz_date
    signer = SigV4Auth(Credentials(keys.access_key_id, keys.secret_access_key), service, region)
    canonical = signer.canonical_request(request)
    return str(signer.signature(signer.string_to_sign(request, canonical), request))

"""One local HTTP endpoint for SageMaker (training jobs), CloudWatch Logs and STS, beside the session's S3.

botocore's service-specific endpoint variables (AWS_ENDPOINT_URL_SAGEMAKER, ..._LOGS, ..._STS, ..._S3)
route unmodified client code here. The protocol is told by the request itself: `X-Amz-Target` names a
JSON-protocol operation (SageMaker, Logs), a form body with `Action=` a query-protocol one (STS). Every
request must be signed with the session's key; every failure is answered in the service's own error
shape, never as a server traceback.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import uuid
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

from ..platform import TrainingJob, TrainingJobResult, TrainingPlatform
from ..platform.layout import ACCOUNT
from ..spec import validate_input
from .cloudwatch import CloudWatchLogs
from .errors import ApiError, validation
from .sigv4 import verify
from .training import TrainingJobs, warm_up

__all__ = ["MAX_BODY_BYTES", "SERVICES", "ApiServer", "default_bucket"]

#: The JSON-protocol services by their target prefix, and the signing name each is signed for.
_TARGETS = {"SageMaker": "sagemaker", "Logs_20140328": "logs"}
#: The services this server answers, by botocore's service name (S3 is the session's own gated moto).
SERVICES = ("sagemaker", "s3", "logs", "sts", "iam")
#: A CreateTrainingJob request at every API maximum is far smaller.
MAX_BODY_BYTES = 1 << 20
_STS_NS = "https://sts.amazonaws.com/doc/2011-06-15/"


class ApiServer:
    """The served API over `platform`: `start()`, then `endpoints`, `env()` and `client(name)`; `close()`."""

    def __init__(
        self,
        platform: TrainingPlatform,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        max_hosts: int | None = None,
        on_start: Callable[[TrainingJob], None] | None = None,
    ) -> None:
        self.platform = platform
        self.region = platform.region
        self.keys = platform.s3.keys
        self.logs = CloudWatchLogs(self.region)
        self.jobs = TrainingJobs(platform, self.logs, max_hosts=max_hosts, on_start=on_start)
        self._host = host
        self._port = port
        self._http: _Server | None = None
        self._thread: threading.Thread | None = None
        self.url = ""
        #: The SageMaker Python SDK's defaults file (admin level, so a user's own config still wins).
        self.sdk_config: Path | None = None

    def start(self) -> ApiServer:
        # The first callers wait for this under the models' locks, rather than each reading them.
        threading.Thread(target=warm_up, name="sm-api-warm-up", daemon=True).start()
        handler = type("Handler", (_Handler,), {"api": self})
        self._http = _Server((self._host, self._port), handler)
        self._http.daemon_threads = True
        self._thread = threading.Thread(target=self._http.serve_forever, name="sm-api", daemon=True)
        self._thread.start()
        host, port = str(self._http.server_address[0]), int(self._http.server_address[1])
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{port}"
        self.sdk_config = self.platform.workdir / "sagemaker-sdk-defaults.yaml"
        self.sdk_config.write_text(_SDK_DEFAULTS.format(bucket=default_bucket(self.region)))
        return self

    def close(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> ApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def endpoints(self) -> dict[str, str]:
        """The endpoint URL of each served service, by botocore's service name."""
        s3 = self.platform.s3.endpoint_url
        return {"sagemaker": self.url, "s3": s3, "logs": self.url, "sts": self.url, "iam": self.url}

    def env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """`base` (default: this process's environment) with the variables that route AWS clients here."""
        out = dict(os.environ if base is None else base)
        out.update(self.exports())
        return out

    def exports(self) -> dict[str, str]:
        """The variables a shell exports to run unmodified AWS code against this server, in print order."""
        out = {f"AWS_ENDPOINT_URL_{name.upper()}": url for name, url in self.endpoints.items()}
        # botocore names the variable after the service id ("CloudWatch Logs"); _LOGS is the short form.
        out["AWS_ENDPOINT_URL_CLOUDWATCH_LOGS"] = self.url
        out["AWS_ENDPOINT_URL_STS"] = out.pop("AWS_ENDPOINT_URL_STS")
        out["AWS_ENDPOINT_URL_IAM"] = out.pop("AWS_ENDPOINT_URL_IAM")
        out.update(
            AWS_ACCESS_KEY_ID=self.keys.access_key_id,
            AWS_SECRET_ACCESS_KEY=self.keys.secret_access_key,
            AWS_DEFAULT_REGION=self.region,
        )
        if self.sdk_config is not None:
            out["SAGEMAKER_ADMIN_CONFIG_OVERRIDE"] = str(self.sdk_config)
        return out

    def client(self, service_name: str) -> Any:
        """A boto3 client of a served service, signed with the session's key."""
        if service_name not in SERVICES:
            raise ValueError(f"{service_name!r} is not served here; served: {', '.join(SERVICES)}")
        import boto3  # lazy: slow to import

        return boto3.session.Session(
            aws_access_key_id=self.keys.access_key_id,
            aws_secret_access_key=self.keys.secret_access_key,
            region_name=self.region,
        ).client(service_name, endpoint_url=self.endpoints[service_name])

    def result(self, name: str, timeout: float | None = None) -> TrainingJobResult | None:
        """The platform's result of a job created through this server (logs, files, timeline), once ended."""
        return self.jobs.result(name, timeout)

    # -- requests -------------------------------------------------------------------------------

    def answer_json(self, target: str, headers: Mapping[str, str], raw_path: str, body: bytes) -> dict[str, Any]:
        prefix, _, operation = target.partition(".")
        service = _TARGETS.get(prefix)
        if service is None:
            raise ApiError("UnknownOperationException", f"sm-contract serves SageMaker and Logs, not {prefix}")
        verify("POST", raw_path, headers, body, self.keys, service)
        try:
            params = json.loads(body or b"{}")
        except (ValueError, UnicodeDecodeError):
            raise ApiError("SerializationException", "the request body is not JSON") from None
        if not isinstance(params, dict):
            raise ApiError("SerializationException", "the request body is not a JSON object")
        if service == "sagemaker":
            return self.jobs.call(operation, params)
        errors = validate_input("logs", operation, params) if operation in _LOGS_OPERATIONS else []
        if errors:
            raise ApiError("InvalidParameterException", "; ".join(errors[:4]))
        return self.logs.call(operation, params)

    def answer_query(self, headers: Mapping[str, str], raw_path: str, body: bytes) -> str:
        if "/iam/aws4_request" in headers.get("authorization", ""):
            self._refuse_iam(headers, raw_path, body)
        verify("POST", raw_path, headers, body, self.keys, "sts", query_protocol=True)
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        action = form.get("Action", "")
        if action != "GetCallerIdentity":
            raise ApiError("InvalidAction", f"sm-contract serves STS GetCallerIdentity, not {action or 'no Action'}")
        request_id = str(uuid.uuid4())
        return (
            f'<GetCallerIdentityResponse xmlns="{_STS_NS}"><GetCallerIdentityResult>'
            f"<Arn>arn:aws:iam::{ACCOUNT}:user/sm-contract</Arn><UserId>AIDASMCONTRACTLOCAL</UserId>"
            f"<Account>{ACCOUNT}</Account></GetCallerIdentityResult>"
            f"<ResponseMetadata><RequestId>{request_id}</RequestId></ResponseMetadata></GetCallerIdentityResponse>"
        )

    def _refuse_iam(self, headers: Mapping[str, str], raw_path: str, body: bytes) -> NoReturn:
        """IAM is not simulated: every call is AccessDenied, which the SageMaker SDK v3's role check (iam:
        SimulatePrincipalPolicy, iam:GetRole) reads as "cannot verify" and goes on with a warning, as it does
        for a caller without IAM read rights on AWS. Signed requests only, like every other service here."""
        verify("POST", raw_path, headers, body, self.keys, "iam", query_protocol=True)
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        action = form.get("Action", "") or "no Action"
        raise ApiError(
            "AccessDenied",
            f"sm-contract does not simulate IAM ({action}): roles are accepted as given and never checked",
            403,
        )


def default_bucket(region: str) -> str:
    """The bucket the SageMaker SDK's `Session.default_bucket()` uses: `sagemaker-<region>-<account>`."""
    return f"sagemaker-{region}-{ACCOUNT}"


#: The SDK resolves its default bucket through STS at a fixed regional URL (never the endpoint variable) and
#: sends telemetry to an AWS bucket: its defaults file names the bucket and opts out, so nothing leaves this host.
_SDK_DEFAULTS = """SchemaVersion: '1.0'
SageMaker:
  PythonSDK:
    Modules:
      TelemetryOptOut: true
      Session:
        DefaultS3Bucket: {bucket}
"""

_LOGS_OPERATIONS = ("DescribeLogGroups", "DescribeLogStreams", "GetLogEvents", "FilterLogEvents")


class _Server(ThreadingHTTPServer):
    #: Many SDK clients connect at once (a tuning sweep, 50 describe callers): queue them, never drop them.
    request_queue_size = 128


class _Handler(BaseHTTPRequestHandler):
    api: ApiServer
    protocol_version = "HTTP/1.1"
    server_version = "sm-contract"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._send(404, "text/plain", b"sm-contract serves AWS API calls (POST); see `sm-contract serve --help`\n")

    def do_POST(self) -> None:
        headers = {k.lower(): v for k, v in self.headers.items()}
        target = headers.get("x-amz-target", "")
        query = not target
        try:
            length = int(headers.get("content-length", "0"))
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY_BYTES:
            self.close_connection = True
            self._error(validation(f"request body of {length} bytes: at most {MAX_BODY_BYTES} are accepted"), query)
            return
        try:
            body = self.rfile.read(length)
        except OSError:
            self.close_connection = True
            return
        try:
            if query:
                payload = self.api.answer_query(headers, self.path, body).encode()
                self._send(200, "text/xml", payload)
            else:
                answer = self.api.answer_json(target, headers, self.path, body)
                self._send(200, "application/x-amz-json-1.1", json.dumps(answer).encode())
        except ApiError as exc:
            self._error(exc, query)
        except Exception as exc:  # never a traceback to the client: AWS's own shape for its own faults
            self._error(ApiError("InternalFailure", f"{type(exc).__name__}: {exc}", 500), query)

    def _error(self, error: ApiError, query: bool) -> None:
        if query:
            kind = "Receiver" if error.status >= 500 else "Sender"
            body = (
                f'<ErrorResponse xmlns="{_STS_NS}"><Error><Type>{kind}</Type><Code>{escape(error.code)}</Code>'
                f"<Message>{escape(error.message)}</Message></Error><RequestId>{uuid.uuid4()}</RequestId>"
                "</ErrorResponse>"
            ).encode()
            self._send(error.status, "text/xml", body)
            return
        payload = json.dumps({"__type": error.code, "message": error.message}).encode()
        self._send(error.status, "application/x-amz-json-1.1", payload, {"x-amzn-ErrorType": error.code})

    def _send(self, status: int, content_type: str, body: bytes, extra: Mapping[str, str] | None = None) -> None:
        with contextlib.suppress(OSError):  # the client went away: nothing to tell it
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
            for name, value in (extra or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

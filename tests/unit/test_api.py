"""The served API's pure parts: SigV4 checked as AWS checks it, CloudWatch streams and tokens, validation."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from pytest_sagemaker_contract.api.cloudwatch import LOG_GROUP, CloudWatchLogs, JobLog
from pytest_sagemaker_contract.api.errors import ApiError
from pytest_sagemaker_contract.api.sigv4 import verify
from pytest_sagemaker_contract.api.training import _page_start, _page_token
from pytest_sagemaker_contract.platform.s3_gate import SessionKeys
from pytest_sagemaker_contract.spec import validate_input

KEYS = SessionKeys("SMCTESTKEY0000000000", "secret-of-the-session")
URL = "http://127.0.0.1:4000/"


def _signed(body: bytes, keys: SessionKeys = KEYS, service: str = "sagemaker") -> dict[str, str]:
    request: Any = AWSRequest(
        method="POST",
        url=URL,
        data=body,
        headers={"X-Amz-Target": "SageMaker.ListTrainingJobs", "Content-Type": "application/x-amz-json-1.1"},
    )
    SigV4Auth(Credentials(keys.access_key_id, keys.secret_access_key), service, "us-east-1").add_auth(request)
    headers = {k.lower(): v for k, v in request.headers.items()}
    headers["host"] = "127.0.0.1:4000"
    return headers


def _code(body: bytes, headers: dict[str, str], **kw: Any) -> str | None:
    try:
        verify("POST", "/", headers, body, KEYS, "sagemaker", **kw)
    except ApiError as exc:
        return exc.code
    return None


def test_a_request_signed_with_the_session_key_passes() -> None:
    body = b"{}"
    assert _code(body, _signed(body)) is None


def test_a_changed_body_or_another_secret_is_refused_as_aws_refuses_it() -> None:
    assert _code(b'{"MaxResults": 5}', _signed(b"{}")) == "InvalidSignatureException"
    other_secret = SessionKeys(KEYS.access_key_id, "another-secret")
    assert _code(b"{}", _signed(b"{}", other_secret)) == "InvalidSignatureException"
    assert _code(b"{}", _signed(b"{}", SessionKeys("AKIAOTHER", KEYS.secret_access_key))) == (
        "UnrecognizedClientException"
    )
    assert _code(b"{}", _signed(b"{}", service="logs")) == "InvalidSignatureException"
    assert _code(b"{}", {"host": "127.0.0.1:4000"}) == "MissingAuthenticationTokenException"
    assert _code(b"{}", _signed(b"{}", other_secret), query_protocol=True) == "SignatureDoesNotMatch"


def test_a_signature_older_than_five_minutes_is_expired() -> None:
    headers = _signed(b"{}")
    with pytest.raises(ApiError, match="Signature expired") as expired:
        verify("POST", "/", headers, b"{}", KEYS, "sagemaker", now=10**10)
    assert expired.value.status == 400


def _lines(log: JobLog, stream: str) -> list[str]:
    return [m for _, m in log.streams[stream].events]


def test_job_log_splits_hosts_escapes_control_characters_and_takes_only_new_lines() -> None:
    text = ["[algo-1] a", "[algo-2] b\tc"]
    log = JobLog("job", 2, 1_700_000_000.5, lambda: "\n".join(text))
    assert [s.name for s in log.streams.values()] == ["job/algo-1-1700000000", "job/algo-2-1700000000"]
    log.refresh("\n".join(text))
    text.append("[algo-1] d")
    log.refresh("\n".join(text), final=True)
    log.refresh("\n".join([*text, "[algo-1] after the end"]))
    assert _lines(log, "algo-1") == ["a", "d"]
    assert _lines(log, "algo-2") == ["b#011c"]


def test_get_log_events_pages_forward_as_the_sdk_reads_them() -> None:
    logs = CloudWatchLogs("us-east-1")
    log = JobLog("job", 1, 1_700_000_000, lambda: "")
    log.refresh("\n".join(f"line {i}" for i in range(5)), final=True)
    logs.add(log)
    stream = log.streams["algo-1"].name
    first = logs.call(
        "GetLogEvents", {"logGroupName": LOG_GROUP, "logStreamName": stream, "startFromHead": True, "limit": 3}
    )
    assert [e["message"] for e in first["events"]] == ["line 0", "line 1", "line 2"]
    rest = logs.call(
        "GetLogEvents", {"logGroupName": LOG_GROUP, "logStreamName": stream, "nextToken": first["nextForwardToken"]}
    )
    assert [e["message"] for e in rest["events"]] == ["line 3", "line 4"]
    end = logs.call(
        "GetLogEvents", {"logGroupName": LOG_GROUP, "logStreamName": stream, "nextToken": rest["nextForwardToken"]}
    )
    assert end["events"] == []
    assert end["nextForwardToken"] == rest["nextForwardToken"]
    tail = logs.call("GetLogEvents", {"logGroupName": LOG_GROUP, "logStreamName": stream, "limit": 2})
    assert [e["message"] for e in tail["events"]] == ["line 3", "line 4"]
    streams = logs.call("DescribeLogStreams", {"logGroupName": LOG_GROUP, "logStreamNamePrefix": "job/"})
    assert [s["logStreamName"] for s in streams["logStreams"]] == [stream]
    found = logs.call("FilterLogEvents", {"logGroupName": LOG_GROUP, "filterPattern": "4"})
    assert [e["message"] for e in found["events"]] == ["line 4"]
    with pytest.raises(ApiError) as missing:
        logs.call("GetLogEvents", {"logGroupName": LOG_GROUP, "logStreamName": "job/algo-9-1"})
    assert missing.value.code == "ResourceNotFoundException"
    with pytest.raises(ApiError) as no_group:
        logs.call("DescribeLogStreams", {"logGroupName": "/aws/other"})
    assert no_group.value.code == "ResourceNotFoundException"


def test_operations_are_validated_with_the_api_model() -> None:
    assert validate_input("sagemaker", "ListTrainingJobs", {"MaxResults": 10}) == []
    (too_many,) = validate_input("sagemaker", "ListTrainingJobs", {"MaxResults": 101})
    assert too_many == "MaxResults: 101 is above the API maximum 100"
    (name,) = validate_input("sagemaker", "DescribeTrainingJob", {"TrainingJobName": "a b"})
    assert "does not match the API pattern" in name
    (unknown,) = validate_input("sagemaker", "StopTrainingJob", {"TrainingJobName": "a", "Force": True})
    assert "unknown field 'Force'" in unknown
    assert validate_input("logs", "GetLogEvents", {"logGroupName": "g"}) == [
        "logStreamName: required by the API but missing"
    ]


def test_list_tokens_hold_only_for_the_same_filters() -> None:
    params = {"NameContains": "x", "MaxResults": 2}
    token = _page_token(2, params)
    assert _page_start(token, {**params, "NextToken": token}) == 2
    with pytest.raises(ApiError, match="pagination token"):
        _page_start(token, {"NameContains": "y"})
    with pytest.raises(ApiError):
        _page_start("not-a-token", params)
    assert json.loads(json.dumps(params)) == params

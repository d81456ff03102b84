"""§3/§6 Outputs: a Completed run leaves model.tar.gz at <S3OutputPath>/<TrainingJobName>/output/."""

from __future__ import annotations

import io
import tarfile

from .invocation import expected_model
from .model import model_problem
from .suite import CheckContext, check


@check(
    "SM-OUT-MODEL",
    "§3 /opt/ml/model → <S3OutputPath>/<TrainingJobName>/output/model.tar.gz",
    "the default run's model.tar.gz in S3 holds the expected files (--sm-expect-model)",
)
def sm_out_model(sm_contract: CheckContext) -> None:
    result = sm_contract.require_default()
    uri = result.ModelArtifacts["S3ModelArtifacts"]
    if uri.endswith("/"):  # OutputDataConfig.CompressionType NONE: the files themselves under the prefix (§11)
        files, links = sorted(o.key.rsplit("/output/model/", 1)[-1] for o in result.s3.objects(uri)), []
    else:
        try:
            data = result.model_tar()
        except Exception as exc:
            sm_contract.fail(f"no model.tar.gz at {uri} ({exc})", result)
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            members = tar.getmembers()
        files = sorted(m.name for m in members if m.isfile())
        links = sorted(f"{m.name} -> {m.linkname}" for m in members if m.issym())
    problem = model_problem(files, expected_model(sm_contract), links)
    if problem:
        sm_contract.fail(f"{uri}: {problem}; write the model files to /opt/ml/model before exiting", result)
    shown = ", ".join(files[:5]) + (f" (+{len(files) - 5} more)" if len(files) > 5 else "")
    sm_contract.says(f"{uri} holds {len(files)} file(s): {shown}")

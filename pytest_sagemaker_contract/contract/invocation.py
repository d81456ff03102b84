"""§1 Invocation: the image trains under each request shape SageMaker can send.

| request sets | the platform runs |
| nothing | docker run IMAGE train |
| ContainerEntrypoint | docker run --entrypoint CE IMAGE (CMD dropped, no `train`) |
| ContainerArguments | docker run IMAGE CA... |
| both | docker run --entrypoint CE IMAGE CA... |
"""

from __future__ import annotations

import shlex

from ..jobs import JobOverrides, session_uri
from ..platform import TrainingJobResult
from ..platform.instances import engine_capacity, resource_plan
from .model import model_verdict
from .suite import CheckContext, check, external_script, invocation_for

SCRIPT_CHANNEL = "entrypoint"
SCRIPT_NAME = "custom_entrypoint.sh"


def expected_model(sm_contract: CheckContext) -> list[str]:
    return list(sm_contract.settings.expect_model)


def default_model_problem(sm_contract: CheckContext, result: TrainingJobResult) -> str | None:
    """What is wrong with a Completed run's model, with where the files went; None when it is right."""
    return model_verdict(result, expected_model(sm_contract))


def _run_shape(sm_contract: CheckContext, shape: str, invocation: JobOverrides) -> None:
    """Run one request shape (the job file's own ContainerEntrypoint/ContainerArguments dropped first)."""
    invocation["keep_invocation"] = False
    result = sm_contract.run(**invocation)
    if result.TrainingJobStatus != "Completed" and invocation.get("entrypoint") and not invocation.get("arguments"):
        _fail_if_train_argument_needed(sm_contract, shape, result)
    sm_contract.expect_completed(result, shape)
    problem = default_model_problem(sm_contract, result)
    if problem:
        sm_contract.fail(f"{shape}: Completed but {problem}; write the model to /opt/ml/model", result)


def _fail_if_train_argument_needed(sm_contract: CheckContext, shape: str, result: TrainingJobResult) -> None:
    """ContainerEntrypoint alone failed: if `docker run IMAGE train` completed, the difference is the argument."""
    sm_contract.fail_on_engine_fault(result)
    if sm_contract.default_run().TrainingJobStatus != "Completed":
        return  # the image cannot train at all: the default run's failure is the one to report
    sm_contract.fail(
        f"{shape}: TrainingJobStatus {result.TrainingJobStatus}, FailureReason: {result.FailureReason}; but "
        "SM-RUN-DEFAULT (`docker run IMAGE train`) Completed, so the program needs the `train` argument. "
        "SageMaker starts a job that sets ContainerEntrypoint without ContainerArguments as exactly that "
        "entrypoint, with no arguments (no `train`, the image CMD dropped). Fix either: don't require argv "
        '"train" (train when no argument is given), or send ContainerArguments ["train"] together with the '
        "ContainerEntrypoint",
        result,
    )


def _resource_note(sm_contract: CheckContext) -> str:
    """Why the containers' CPU and memory limits differ from the instance type's (capped at this host, off)."""
    platform = sm_contract.platform
    if not platform.resource_limits:
        return "no CPU or memory limits (--sm-resources off)"
    return resource_plan(sm_contract.session.instance_type(), *engine_capacity(platform.engine)).note


def _spec_invocation(sm_contract: CheckContext) -> tuple[tuple[str, ...] | None, tuple[str, ...] | None]:
    request = sm_contract.settings.job_request or {}
    algo = request.get("AlgorithmSpecification") or {}
    ce = algo.get("ContainerEntrypoint")
    ca = algo.get("ContainerArguments")
    return (tuple(ce) if ce else None, tuple(ca) if ca else None)


def _run_derived(sm_contract: CheckContext, key: str, field: str) -> None:
    """One request field set alone, to the job's value or the one derived from the image."""
    sm_contract.depends_on_default()
    shapes = invocation_for(sm_contract.facts(), *_spec_invocation(sm_contract))
    if key == "entrypoint":
        _run_shape(sm_contract, f"{field} {list(shapes.entrypoint)}", {"entrypoint": shapes.entrypoint})
    else:
        _run_shape(sm_contract, f"{field} {list(shapes.arguments)}", {"arguments": shapes.arguments})


@check("SM-RUN-DEFAULT", "§1 nothing set: docker run IMAGE train", "the image trains as `docker run IMAGE train`")
def sm_run_default(sm_contract: CheckContext) -> None:
    result = sm_contract.default_run()
    sm_contract.expect_completed(result, "docker run IMAGE train")
    problem = default_model_problem(sm_contract, result)
    if problem:
        sm_contract.fail(f"docker run IMAGE train: Completed but {problem}; write the model to /opt/ml/model", result)
    limits = _resource_note(sm_contract)
    if limits:
        sm_contract.says(f"{sm_contract.note.message}; {limits}")


@check(
    "SM-RUN-ENTRYPOINT",
    "§1 ContainerEntrypoint only: docker run --entrypoint CE IMAGE",
    "the image trains with ContainerEntrypoint set (CMD dropped, no `train` argument added)",
)
def sm_run_entrypoint(sm_contract: CheckContext) -> None:
    _run_derived(sm_contract, "entrypoint", "ContainerEntrypoint")


@check(
    "SM-RUN-ARGUMENTS",
    "§1 ContainerArguments only: docker run IMAGE CA...",
    "the image trains with ContainerArguments replacing the `train` argument",
)
def sm_run_arguments(sm_contract: CheckContext) -> None:
    _run_derived(sm_contract, "arguments", "ContainerArguments")


@check(
    "SM-RUN-BOTH",
    "§1 both: docker run --entrypoint CE IMAGE CA...",
    "the image trains with ContainerEntrypoint and ContainerArguments both set",
)
def sm_run_both(sm_contract: CheckContext) -> None:
    sm_contract.depends_on_default()
    both = invocation_for(sm_contract.facts(), *_spec_invocation(sm_contract)).both
    if both is None:
        sm_contract.skip(
            "no ENTRYPOINT and no /bin/sh to derive a ContainerEntrypoint+ContainerArguments pair from; "
            "set both in --sm-job to test this shape",
            structural=True,
        )
    ce, ca = both
    _run_shape(
        sm_contract,
        f"ContainerEntrypoint {list(ce)} + ContainerArguments {list(ca)}",
        {"entrypoint": ce, "arguments": ca},
    )


@check(
    "SM-RUN-EXTERNAL-SCRIPT",
    "§1 a script delivered by a channel: ContainerEntrypoint [/bin/sh], ContainerArguments [channel script]",
    "a custom_entrypoint.sh from an S3 channel can start the image's training command",
)
def sm_run_external_script(sm_contract: CheckContext) -> None:
    sm_contract.depends_on_default()
    facts = sm_contract.facts()
    if not facts.has_shell():
        sm_contract.skip(
            "the image has no /bin/sh, so a channel-delivered shell script cannot be its entrypoint", structural=True
        )
    platform = sm_contract.platform
    folder = sm_contract.image.replace("/", "_").replace(":", "_")
    uri = session_uri(platform.run_id, folder, SCRIPT_CHANNEL)
    bucket, _, prefix = uri[len("s3://") :].partition("/")
    platform.s3.ensure_bucket(bucket)
    platform.s3.client().put_object(Bucket=bucket, Key=f"{prefix}/{SCRIPT_NAME}", Body=external_script(facts).encode())
    script = f"/opt/ml/input/data/{SCRIPT_CHANNEL}/{SCRIPT_NAME}"
    _run_shape(
        sm_contract,
        f"ContainerEntrypoint ['/bin/sh'] + ContainerArguments [{shlex.quote(script)}]",
        {"entrypoint": ["/bin/sh"], "arguments": [script], "channels": {SCRIPT_CHANNEL: uri}},
    )

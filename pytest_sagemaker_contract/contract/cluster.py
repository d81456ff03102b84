"""§3/§7/§9 The data plane and the cluster: input modes, several hosts, network isolation."""

from __future__ import annotations

import copy
from typing import Any

from ..jobs import JobOverrides
from .suite import CheckContext, check


def _declared_modes(request: dict[str, Any]) -> list[str]:
    job_mode = (request.get("AlgorithmSpecification") or {}).get("TrainingInputMode", "File")
    modes = [job_mode] + [c.get("InputMode", job_mode) for c in request.get("InputDataConfig") or []]
    return list(dict.fromkeys(modes))


def _with_mode(request: dict[str, Any], mode: str) -> dict[str, Any]:
    """The job with every S3 channel (and the job default) in `mode`; a FileSystemDataSource channel stays a
    File-mode mount (docs/contract.md §11: the other modes are not documented for it)."""
    req = copy.deepcopy(request)
    req.setdefault("AlgorithmSpecification", {})["TrainingInputMode"] = mode
    for channel in req.get("InputDataConfig") or []:
        channel["InputMode"] = "File" if "FileSystemDataSource" in (channel.get("DataSource") or {}) else mode
    return req


@check(
    "SM-DATA-MODES",
    "§3 input modes: File, FastFile (read-only), Pipe (FIFOs <channel>_N)",
    "the image trains with every input mode its job declares (or --sm-input-modes)",
)
def sm_data_modes(sm_contract: CheckContext) -> None:
    settings = sm_contract.settings
    base = settings.job_request or {}
    if not base.get("InputDataConfig") and not settings.channels:
        sm_contract.skip("the job has no input channels, so there is no input mode to exercise", structural=True)
    modes = settings.input_modes or _declared_modes(base)
    if not settings.input_modes and modes == ["File"]:
        sm_contract.depends_on_default()
        sm_contract.says("File: the only mode the job declares, proven by SM-RUN-DEFAULT (try --sm-input-modes)")
        return
    sm_contract.depends_on_default()
    unavailable = ""
    pipes, why = sm_contract.platform.pipe_support() if "Pipe" in modes else (True, "")
    if not pipes:
        modes = [m for m in modes if m != "Pipe"]
        unavailable = f"; Pipe not tried: {why}"
        if not modes:
            sm_contract.skip(f"Pipe: {why}")
    done = []
    runs: list[JobOverrides] = []
    for mode in modes:
        job = _with_mode(base, mode) if base else None
        overrides: JobOverrides = {"input_mode": mode}
        if job is not None:
            overrides["job"] = job
        runs.append(overrides)
    for mode, result in zip(modes, sm_contract.run_all(runs), strict=True):  # the modes train concurrently
        if result.TrainingJobStatus != "Completed":
            hint = {
                "FastFile": "FastFile channels are read-only: write scratch files elsewhere",
                "Pipe": "Pipe mode delivers each epoch through the FIFO /opt/ml/input/data/<channel>_<epoch>, "
                "not a directory; read the FIFOs or declare File mode",
                "File": "",
            }[mode]
            sm_contract.fail(
                f"{mode} mode: {result.TrainingJobStatus}, FailureReason: {result.FailureReason}"
                + (f". {hint}" if hint else ""),
                result,
            )
        done.append(f"{mode} {result.timeline.training_seconds or 0:.1f} s")
    sm_contract.says("Completed under " + ", ".join(done) + unavailable)


@check(
    "SM-HOSTS-MULTI",
    "§7 hosts algo-1..N: per-host resourceconfig, names resolvable, model dirs merged",
    "the image trains on N hosts and its hosts' model files don't clash in the merged model.tar.gz",
)
def sm_hosts_multi(sm_contract: CheckContext) -> None:
    settings = sm_contract.settings
    resource = (settings.job_request or {}).get("ResourceConfig") or {}
    job_count = int(resource.get("InstanceCount", 1)) if not resource.get("InstanceGroups") else 0
    count = settings.instance_count or (job_count if job_count > 1 else 0)
    if resource.get("InstanceGroups") and not settings.instance_count:
        count = sum(int(g.get("InstanceCount", 0)) for g in resource["InstanceGroups"])
    if count < 2:
        sm_contract.skip(
            "a single-host job; pass --sm-instance-count 2 (or more) to train on several hosts", structural=True
        )
    sm_contract.depends_on_default()
    overrides: JobOverrides = (
        {} if resource.get("InstanceGroups") and not settings.instance_count else {"instance_count": count}
    )
    result = sm_contract.run(**overrides)
    if result.TrainingJobStatus != "Completed":
        sm_contract.fail(
            f"on {count} hosts: {result.TrainingJobStatus}, FailureReason: {result.FailureReason}. Every host "
            "runs the same image with its own resourceconfig.json (current_host); make non-leader hosts train "
            "or wait rather than fail",
            result,
        )
    if result.model_clashes:
        shown = ", ".join(result.model_clashes[:5])
        sm_contract.fail(
            f"on {count} hosts, hosts wrote different files under the same model names ({shown}): their "
            "/opt/ml/model dirs are merged into one model.tar.gz, so one host's file silently replaces another's. "
            "Write the model only on the leader (current_host == hosts[0]) or use host-specific names",
            result,
        )
    sm_contract.says(f"Completed on {count} hosts; model files: {', '.join(result.model_files[:5])}")


@check(
    "SM-NET-ISOLATION",
    "§9 EnableNetworkIsolation: no traffic in or out, not even S3; no AWS credentials inside",
    "the image trains with network isolation on (skipped with --sm-allow-network)",
)
def sm_net_isolation(sm_contract: CheckContext) -> None:
    if sm_contract.settings.allow_network:
        sm_contract.skip("--sm-allow-network: the job needs the network, so it cannot run isolated", structural=True)
    sm_contract.depends_on_default()
    result = sm_contract.run(network_isolation=True)
    if result.TrainingJobStatus != "Completed":
        sm_contract.fail(
            f"with EnableNetworkIsolation: {result.TrainingJobStatus}, FailureReason: {result.FailureReason}. "
            "Under isolation the container reaches nothing (no S3, no package index, no AWS credentials); "
            "read inputs from the channels, ship dependencies in the image, or pass --sm-allow-network if "
            "your jobs never enable isolation",
            result,
        )
    sm_contract.says("Completed with EnableNetworkIsolation (host names resolve, no route out, no credentials)")

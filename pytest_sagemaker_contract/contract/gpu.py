"""§8 GPU: the container of a GPU instance type sees each of the instance's GPUs.

Visibility means `/dev/nvidia<N>` device nodes, and `nvidia-smi -L` where it runs: `/proc/driver/nvidia`
shows up in containers without any GPU device, so it proves nothing. The check keeps one container of
the image up (a sleeping shell instead of training: it tests what the platform gives the image, not the
training) and looks from inside with `docker exec`.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping

from ..gpu_support import plan_skip_reason, session_detection
from ..platform import TrainingJob
from ..platform.gpu import GpuPlan, gpu_plan, parse_smi_list
from .suite import CheckContext, check

#: PID 1 of the probe container: exits at once on SIGTERM so the stop costs no grace period.
_SLEEPER = ["/bin/sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"]
_GPU_NODE = re.compile(r"nvidia\d+")


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:]) or "(no output)"


def _exec(job: TrainingJob, cmd: list[str]) -> tuple[int, str]:
    """`docker exec`; an exec the runtime cannot start is exit code 127 with the engine's words."""
    try:
        code, output = job.exec(cmd)
    except Exception as exc:
        return 127, f"{type(exc).__name__}: {exc}"
    return int(code), str(output)


@check(
    "SM-GPU-VISIBLE",
    "§8 GPU: every GPU of the instance is visible as /dev/nvidia<N> (and to nvidia-smi -L)",
    "a container of the image on a GPU instance type sees each of its GPUs as /dev/nvidia<N> and in nvidia-smi -L",
)
def sm_gpu_visible(sm_contract: CheckContext) -> None:
    settings = sm_contract.settings
    config = sm_contract.item.config
    detection = session_detection(config)
    facts = sm_contract.facts()
    instance_type = sm_contract.session.instance_type()
    plan = gpu_plan(instance_type, settings.gpus, detection)
    control = plan.mode == "none" and plan.count > 0
    reason = plan_skip_reason(plan, detection)
    if reason is not None and not control:
        sm_contract.skip(reason, structural=plan.count == 0)
    shell = facts.has_shell()
    if shell:
        entrypoint = _SLEEPER
    elif (sleep := facts.find_on_path("sleep")) is not None:
        entrypoint = [sleep, "3600"]
    else:
        sm_contract.skip(
            "the image has neither /bin/sh nor sleep to keep a probe container running; GPU visibility is "
            "then only seen by your own training code (add a @pytest.mark.sagemaker_gpu test)"
        )
    if settings.gpu_probe and not shell:
        sm_contract.fail(f"cannot run --sm-gpu-probe {settings.gpu_probe!r}: the image has no /bin/sh")
    # `gpus` is the factory's per-job override of --sm-gpus (the platform turns it into a GpuPlan per host).
    job = sm_contract.start(entrypoint=entrypoint, keep_invocation=False, gpus=plan.mode)
    try:
        findings = _look(sm_contract, job, plan, facts.env, shell)
    finally:
        job.stop(grace=2)
        job.wait(120)
    how = "control run without GPUs (--sm-gpus none)" if control else f"{plan.given} given ({plan.mode})"
    note = f"; {plan.note}" if plan.note and not control else ""
    sm_contract.says(f"{instance_type}: {how}; {findings}{note}")


def _look(sm_contract: CheckContext, job: TrainingJob, plan: GpuPlan, env: Mapping[str, str], shell: bool) -> str:
    """Count the nodes, ask nvidia-smi, run the probe; fail on the first disagreement, else a summary."""
    code, listing = _exec(job, ["sh", "-c", "ls /dev"] if shell else ["ls", "/dev"])
    if code != 0:
        sm_contract.fail(f"cannot list /dev in the container (exit {code}): {_tail(listing, 3)}")
    nodes = sorted((n for n in listing.split() if _GPU_NODE.fullmatch(n)), key=lambda n: int(n[6:]))
    if len(nodes) != plan.given:
        sm_contract.fail(_nodes_message(plan, nodes, env))
    found = [f"/dev/{', /dev/'.join(nodes)}" if nodes else "no /dev/nvidia<N>"]
    if plan.given:
        found.append(_smi(sm_contract, job, plan, shell))
    probe = sm_contract.settings.gpu_probe
    if probe:
        code, output = _exec(job, ["sh", "-c", probe])
        if code != 0:
            sm_contract.note.sections.append(("--sm-gpu-probe output", _tail(output, 40)))
            sm_contract.fail(
                f"--sm-gpu-probe {probe!r} exited {code} in a container that sees {len(nodes)} GPU node(s) "
                f"({plan.mode}); its output ends:\n{_tail(output)}\nFix the image (or the probe) so the probe "
                "passes where SageMaker gives the instance's GPUs"
            )
        found.append(f"--sm-gpu-probe exited 0: {_tail(output, 1)[:120]}")
    return "; ".join(found)


def _nodes_message(plan: GpuPlan, nodes: list[str], env: Mapping[str, str]) -> str:
    seen = f"{len(nodes)} /dev/nvidia<N> node(s) ({', '.join(nodes) or 'none'})"
    expected = f"{plan.instance_type} has {plan.count} GPU(s) and the platform gave {plan.given} ({plan.mode})"
    visible = dict(env or {}).get("NVIDIA_VISIBLE_DEVICES")
    if visible is not None and len(nodes) > plan.given:
        fix = (
            f"the image's ENV NVIDIA_VISIBLE_DEVICES={visible} makes an NVIDIA default runtime expose GPUs the "
            "platform did not request; SageMaker exposes exactly the instance's GPUs, so do not rely on it: "
            "remove it, or run with --sm-instance-type matching this host's GPU count"
        )
    elif visible is not None:
        fix = (
            f"the image's ENV NVIDIA_VISIBLE_DEVICES={visible} narrows which GPUs the NVIDIA runtime exposes; "
            "remove it so every GPU of the instance is visible"
        )
    else:
        fix = (
            "the nodes were requested but are not in the container; check the engine's GPU support "
            "(`docker info` Runtimes, --sm-gpus) and that the image's entrypoint does not alter /dev"
        )
    return f"the container sees {seen}, but {expected}: {fix}"


def _smi(sm_contract: CheckContext, job: TrainingJob, plan: GpuPlan, shell: bool) -> str:
    """nvidia-smi -L from PATH, else the mounted driver's (devices mode); its GPU count must be plan.given."""
    argv: list[str] | None = None
    if shell:
        code, where = _exec(job, ["sh", "-c", "command -v nvidia-smi"])
        if code == 0 and where.strip():
            argv = [where.strip().splitlines()[0], "-L"]
        elif plan.driver_dir:
            driver = shlex.quote(plan.driver_dir)
            # The probe alone gets the driver's libraries on its loader path; the container's env is untouched.
            argv = [
                "sh",
                "-c",
                f"test -x {driver}/bin/nvidia-smi || exit 127; "
                f"LD_LIBRARY_PATH={driver}/lib64:{driver}/lib${{LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}} "
                f"exec {driver}/bin/nvidia-smi -L",
            ]
    elif plan.driver_dir:
        argv = [f"{plan.driver_dir}/bin/nvidia-smi", "-L"]
    if argv is None:
        return "nvidia-smi not in the container (the toolkit counts GPUs with it: §8)"
    code, output = _exec(job, argv)
    if code == 127:
        return "nvidia-smi not in the container (the toolkit counts GPUs with it: §8)"
    gpus = parse_smi_list(output)
    if code != 0:
        sm_contract.fail(
            f"nvidia-smi -L failed (exit {code}) although the container sees {plan.given} GPU node(s): "
            f"{_tail(output, 5)}. With the nodes present this usually means driver libraries from the image "
            "(libnvidia-ml.so*, libcuda.so*) shadow the host's: ship only the CUDA toolkit (see SM-IMG-NO-DRIVER)"
        )
    if len(gpus) != plan.given:
        sm_contract.fail(
            f"nvidia-smi -L lists {len(gpus)} GPU(s), the container has {plan.given} /dev/nvidia<N> node(s): "
            f"{_tail(output, 5)}. The training toolkit counts GPUs with nvidia-smi; it must see every one"
        )
    return f"nvidia-smi -L lists {len(gpus)}"

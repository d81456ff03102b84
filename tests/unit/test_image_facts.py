"""Static image checks on hand-made ImageFacts: every verdict rule, without Docker."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator, Mapping

import pytest

from pytest_sagemaker_contract.image_facts import (
    DOCKER_DEFAULT_PATH,
    STATIC_CHECKS,
    CheckOutcome,
    FileEntry,
    ImageFacts,
    _read_entries,
    check_exec_form,
    check_no_driver,
    check_no_tini,
    check_opt_ml_empty,
    check_train_on_path,
)

BUSYBOX = {"/bin/busybox": "x", "/bin/sh": "->busybox"}


def facts(
    paths: Mapping[str, str] | None = None,
    *,
    entrypoint: list[str] | None = None,
    cmd: list[str] | None = None,
    env: Mapping[str, str] | None = None,
    workdir: str = "/",
) -> ImageFacts:
    """``paths`` values: ``"x"`` executable file, ``"f"`` plain file, ``"d"`` dir, ``"->target"`` symlink."""
    files: dict[str, FileEntry] = {}
    for path, spec in (paths or {}).items():
        if spec.startswith("->"):
            files[path] = FileEntry(path, "symlink", 0o777, spec[2:])
        elif spec == "d":
            files[path] = FileEntry(path, "dir", 0o755)
        else:
            files[path] = FileEntry(path, "file", 0o755 if spec == "x" else 0o644)
    return ImageFacts(
        image="test:latest",
        image_id="sha256:0",
        entrypoint=tuple(entrypoint) if entrypoint is not None else None,
        cmd=tuple(cmd) if cmd is not None else None,
        env=dict(env or {}),
        user="",
        workdir=workdir,
        files=files,
    )


def assert_one_line(outcome: CheckOutcome) -> None:
    assert "\n" not in outcome.message
    assert all("\n" not in warning for warning in outcome.warnings)


# --- ImageFacts -------------------------------------------------------------------------------


MERGED_USR = {
    "/bin": "->usr/bin",
    "/lib": "->/usr/lib",
    "/usr": "d",
    "/usr/bin": "d",
    "/usr/bin/dash": "x",
    "/usr/bin/sh": "->dash",
    "/usr/lib": "d",
    "/etc/alternatives/python": "->/usr/bin/python3.11",
    "/usr/bin/python3.11": "x",
    "/usr/bin/python3": "->../../etc/alternatives/python",
}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/bin/sh", "/usr/bin/dash"),
        ("/bin/../bin/sh", "/usr/bin/dash"),
        ("/lib", "/usr/lib"),
        ("/usr/bin/python3", "/usr/bin/python3.11"),
        ("/bin/python3", "/usr/bin/python3.11"),
        ("/", "/"),
    ],
)
def test_resolve_follows_relative_absolute_and_directory_symlinks(path: str, expected: str) -> None:
    entry = facts(MERGED_USR).resolve(path)
    assert entry is not None
    assert entry.path == expected


@pytest.mark.parametrize("path", ["/bin/bash", "/nowhere/sh", "/usr/bin/dash/sh", "/usr/bin/dash/.."])
def test_resolve_returns_none_for_missing_paths_and_file_parents(path: str) -> None:
    assert facts(MERGED_USR).resolve(path) is None


def test_resolve_gives_up_on_loops_and_after_forty_hops() -> None:
    loop = facts({"/a": "->b", "/b": "->/a"})
    assert loop.resolve("/a") is None
    chain = {f"/l{i}": f"->l{i + 1}" for i in range(41)} | {"/l41": "x"}
    assert facts(chain).resolve("/l1") is not None
    assert facts(chain).resolve("/l0") is None


def test_resolve_relative_path_starts_at_workdir() -> None:
    entry = facts({"/opt/program/train.sh": "x"}, workdir="/opt/program").resolve("train.sh")
    assert entry is not None
    assert entry.path == "/opt/program/train.sh"


def test_resolve_tolerates_facts_without_parent_directories() -> None:
    assert facts({"/a/b/c": "f"}).resolve("/a/b/c") is not None


def test_find_on_path_uses_docker_default_path_and_skips_what_cannot_run() -> None:
    image = facts(
        {
            "/usr/local/bin/train": "f",
            "/usr/bin/train": "d",
            "/sbin/train": "->/missing",
            "/bin/train": "x",
        }
    )
    assert image.path_variable == DOCKER_DEFAULT_PATH
    assert image.find_on_path("train") == "/bin/train"
    assert image.find_on_path("") is None
    assert image.find_on_path("serve") is None


def test_find_on_path_uses_image_path_in_order_and_ignores_relative_entries() -> None:
    image = facts(
        {"/opt/a/tool": "x", "/opt/b/tool": "x", "/work/tool": "x"},
        env={"PATH": "tool-dir::/opt/b:/opt/a"},
        workdir="/work",
    )
    assert image.find_on_path("tool") == "/opt/b/tool"
    assert image.find_on_path("/opt/a/tool") == "/opt/a/tool"


def test_find_on_path_reaches_through_symlinked_directories() -> None:
    assert facts(MERGED_USR, env={"PATH": "/bin"}).find_on_path("python3") == "/bin/python3"


def test_has_shell() -> None:
    assert facts(BUSYBOX).has_shell()
    assert facts(MERGED_USR).has_shell()
    assert not facts({"/bin/sh": "f"}).has_shell()
    assert not facts({"/bin/sh": "->missing"}).has_shell()
    assert not facts().has_shell()


def test_read_entries_streams_headers_into_normalised_entries() -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, kind, mode, link in [
            ("bin/", tarfile.DIRTYPE, 0o755, ""),
            ("bin/busybox", tarfile.REGTYPE, 0o4755, ""),
            ("bin/sh", tarfile.SYMTYPE, 0o777, "busybox"),
            ("./bin/ash", tarfile.LNKTYPE, 0o755, "bin/busybox"),
            ("dev/null", tarfile.CHRTYPE, 0o666, ""),
        ]:
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.linkname = kind, mode, link
            data = b"#!" * 5000 if kind == tarfile.REGTYPE else b""
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    raw = buffer.getvalue()

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(raw), 777):
            yield raw[start : start + 777]

    files = _read_entries(chunks())
    assert files == {
        "/": FileEntry("/", "dir", 0o755),
        "/bin": FileEntry("/bin", "dir", 0o755),
        "/bin/busybox": FileEntry("/bin/busybox", "file", 0o4755),
        "/bin/sh": FileEntry("/bin/sh", "symlink", 0o777, "busybox"),
        "/bin/ash": FileEntry("/bin/ash", "hardlink", 0o755, "/bin/busybox"),
        "/dev/null": FileEntry("/dev/null", "other", 0o666),
    }
    image = ImageFacts("t", "sha256:0", None, None, {}, "", "/", files)
    assert image.has_shell()
    assert image.find_on_path("ash") == "/bin/ash"


# --- SM-IMG-EXEC-FORM ---------------------------------------------------------------------------


def test_exec_form_passes_without_entrypoint() -> None:
    outcome = check_exec_form(facts(BUSYBOX, cmd=["train"]))
    assert (outcome.id, outcome.outcome) == ("SM-IMG-EXEC-FORM", "passed")
    assert "no ENTRYPOINT" in outcome.message


@pytest.mark.parametrize(
    "entrypoint",
    [["python", "train.py"], ["/bin/sh", "/opt/program/train.sh"], ["/opt/program/train.sh"], ["bash"]],
)
def test_exec_form_passes_exec_form_even_when_it_runs_a_script(entrypoint: list[str]) -> None:
    assert check_exec_form(facts(BUSYBOX, entrypoint=entrypoint)).outcome == "passed"


def test_shell_form_fails_with_the_exec_form_to_use() -> None:
    outcome = check_exec_form(facts(BUSYBOX, entrypoint=["/bin/sh", "-c", "python train.py"]))
    assert outcome.outcome == "failed"
    assert outcome.clause == "contract §1 ENTRYPOINT exec form"
    assert outcome.message == (
        'ENTRYPOINT is shell form (/bin/sh -c "python train.py"): PID 1 is sh, SIGTERM never reaches python '
        'and the "train" argument is dropped. Use exec form: ENTRYPOINT ["python", "train.py"]'
    )
    assert_one_line(outcome)


@pytest.mark.parametrize(
    ("entrypoint", "suggestion"),
    [
        (["sh", "-c", "python -u 'my train.py'"], '["python", "-u", "my train.py"]'),
        (["/bin/bash", "-c", "/opt/program/train"], '["/opt/program/train"]'),
        (["/usr/bin/dash", "-ec", "train.sh --fast"], '["train.sh", "--fast"]'),
        (["/bin/ash", "-c", "python x.py"], '["python", "x.py"]'),
        (["/bin/bash", "-o", "pipefail", "-c", "python x.py"], '["python", "x.py"]'),
    ],
)
def test_shell_form_variants_fail(entrypoint: list[str], suggestion: str) -> None:
    outcome = check_exec_form(facts(BUSYBOX, entrypoint=entrypoint))
    assert outcome.outcome == "failed"
    assert outcome.message.endswith(f"Use exec form: ENTRYPOINT {suggestion}")


def test_shell_form_with_shell_syntax_suggests_a_script() -> None:
    outcome = check_exec_form(facts(BUSYBOX, entrypoint=["/bin/sh", "-c", "cd /opt && python x.py | tee log"]))
    assert outcome.outcome == "failed"
    assert "SIGTERM never reaches your program" in outcome.message
    assert 'exec <program> "$@"' in outcome.message
    assert_one_line(outcome)


def test_sh_c_that_execs_and_forwards_arguments_passes() -> None:
    entrypoint = ["/bin/sh", "-c", 'exec python train.py "$@"', "sh"]
    assert check_exec_form(facts(BUSYBOX, entrypoint=entrypoint)).outcome == "passed"
    without_arg0 = ["/bin/sh", "-c", 'exec python train.py "$@"']
    assert check_exec_form(facts(BUSYBOX, entrypoint=without_arg0)).outcome == "failed"


# --- SM-IMG-NO-TINI -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("entrypoint", "cmd", "suggestion"),
    [
        (["/usr/bin/tini", "--", "python", "x.py"], None, '["python", "x.py"]'),
        (["tini-static", "-s", "-p", "SIGKILL", "/opt/program/train.sh"], None, '["/opt/program/train.sh"]'),
        (["/tini-amd64", "--"], ["python", "serve.py"], '["python", "serve.py"]'),
        (["/usr/bin/docker-init", "--"], None, '["python", "train.py"]'),
        (["/usr/bin/env", "LANG=C", "tini", "--", "x"], None, '["x"]'),
    ],
)
def test_tini_fails_and_suggests_the_real_program(
    entrypoint: list[str], cmd: list[str] | None, suggestion: str
) -> None:
    outcome = check_no_tini(facts(BUSYBOX, entrypoint=entrypoint, cmd=cmd))
    assert (outcome.id, outcome.outcome, outcome.clause) == (
        "SM-IMG-NO-TINI",
        "failed",
        "contract §1 no tini",
    )
    assert '"train"/"serve"' in outcome.message
    assert f"ENTRYPOINT {suggestion}, and handle SIGTERM" in outcome.message
    assert_one_line(outcome)


@pytest.mark.parametrize("entrypoint", [None, ["/usr/bin/dumb-init", "--", "python", "x.py"], ["python"]])
def test_no_tini_passes_without_tini(entrypoint: list[str] | None) -> None:
    assert check_no_tini(facts(BUSYBOX, entrypoint=entrypoint)).outcome == "passed"


# --- SM-IMG-TRAIN-ON-PATH -----------------------------------------------------------------------


def test_train_on_path_is_skipped_with_an_entrypoint() -> None:
    outcome = check_train_on_path(facts(BUSYBOX, entrypoint=["python", "x.py"]))
    assert outcome.outcome == "skipped"
    assert outcome.message.startswith('not applicable: ENTRYPOINT ["python", "x.py"] receives "train"')


def test_train_on_path_agrees_with_exec_form_on_a_shell_form_entrypoint() -> None:
    """A shell-form ENTRYPOINT drops `train`: SM-IMG-TRAIN-ON-PATH must not say it receives it (issue 17, item 6)."""
    entrypoint = ["/bin/sh", "-c", "python /opt/program/train.py"]
    outcome = check_train_on_path(facts(BUSYBOX, entrypoint=entrypoint))
    assert outcome.outcome == "skipped"
    assert 'receives "train"' not in outcome.message
    assert "never reaches its program (see SM-IMG-EXEC-FORM)" in outcome.message
    assert check_exec_form(facts(BUSYBOX, entrypoint=entrypoint)).outcome == "failed"


def test_train_on_path_passes_without_entrypoint_when_train_is_executable() -> None:
    outcome = check_train_on_path(facts(BUSYBOX | {"/usr/local/bin/train": "x"}, cmd=["sh"]))
    assert outcome.outcome == "passed"
    assert "/usr/local/bin/train" in outcome.message


def test_train_on_path_fails_without_entrypoint_or_train() -> None:
    outcome = check_train_on_path(facts(BUSYBOX | {"/opt/program/train": "x"}, env={"PATH": "/bin"}))
    assert outcome.outcome == "failed"
    assert outcome.message.startswith('no ENTRYPOINT and no executable "train" on PATH (PATH=/bin): ')
    assert 'exec: "train": executable file not found in $PATH' in outcome.message
    assert "exec-form ENTRYPOINT" in outcome.message
    assert "/usr/local/bin" in outcome.message
    assert_one_line(outcome)


def test_train_on_path_says_chmod_when_train_is_not_executable() -> None:
    outcome = check_train_on_path(facts(BUSYBOX | {"/usr/local/bin/train": "f"}))
    assert outcome.outcome == "failed"
    assert "chmod +x /usr/local/bin/train" in outcome.message


# --- SM-IMG-OPT-ML-EMPTY ------------------------------------------------------------------------


EMPTY_OPT_ML = {d: "d" for d in ("/opt/ml", "/opt/ml/input", "/opt/ml/input/config", "/opt/ml/model", "/opt/ml/code")}


def test_opt_ml_passes_with_nothing_or_empty_directories() -> None:
    for paths in (BUSYBOX, BUSYBOX | EMPTY_OPT_ML):
        outcome = check_opt_ml_empty(facts(paths))
        assert (outcome.outcome, outcome.warnings) == ("passed", ())


def test_opt_ml_fails_on_files_under_the_mounted_directories() -> None:
    shipped = {
        "/opt/ml/model/pretrained.bin": "f",
        "/opt/ml/input/config/hyperparameters.json": "f",
        "/opt/ml/output/failure": "->/dev/null",
        "/opt/ml/checkpoints/a": "f",
        "/opt/ml/checkpoints/b": "f",
        "/opt/ml/checkpoints/c": "f",
    }
    outcome = check_opt_ml_empty(facts(BUSYBOX | EMPTY_OPT_ML | shipped))
    assert (outcome.id, outcome.outcome) == ("SM-IMG-OPT-ML-EMPTY", "failed")
    assert "ships 6 path(s)" in outcome.message
    assert "/opt/ml/checkpoints/a, /opt/ml/checkpoints/b, /opt/ml/checkpoints/c, " in outcome.message
    assert "/opt/ml/output/failure" not in outcome.message
    assert "and 1 more" in outcome.message
    assert "mounts over these directories" in outcome.message
    assert "/opt/program" in outcome.message
    assert_one_line(outcome)


def test_opt_ml_fails_when_a_mounted_directory_is_itself_a_symlink() -> None:
    outcome = check_opt_ml_empty(facts(BUSYBOX | {"/opt/ml": "d", "/opt/ml/model": "->/tmp"}))
    assert outcome.outcome == "failed"
    assert "(/opt/ml/model)" in outcome.message


def test_opt_ml_code_passes_with_the_reserved_directory_warning() -> None:
    outcome = check_opt_ml_empty(facts(BUSYBOX | EMPTY_OPT_ML | {"/opt/ml/code/train.py": "f"}))
    assert outcome.outcome == "passed"
    (warning,) = outcome.warnings
    assert warning.startswith("SageMaker reserves /opt/ml;")
    assert "/opt/ml/code/train.py" in warning
    assert "only mounts input/model/output/checkpoints" in warning


def test_opt_ml_failure_keeps_the_warning_for_other_content() -> None:
    paths = BUSYBOX | {"/opt/ml/code/train.py": "f", "/opt/ml/model/m.bin": "f"}
    outcome = check_opt_ml_empty(facts(paths))
    assert outcome.outcome == "failed"
    assert len(outcome.warnings) == 1


def test_opt_ml_follows_a_symlinked_opt_ml() -> None:
    paths = BUSYBOX | {
        "/opt/ml": "->/data/ml",
        "/data/ml": "d",
        "/data/ml/model": "d",
        "/data/ml/model/w": "f",
    }
    outcome = check_opt_ml_empty(facts(paths))
    assert outcome.outcome == "failed"
    assert "/opt/ml/model/w" in outcome.message


# --- SM-IMG-NO-DRIVER ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/usr/lib/x86_64-linux-gnu/libcuda.so.1",
        "/usr/lib/x86_64-linux-gnu/libcuda.so",
        "/lib64/libnvidia-ml.so.535.104.05",
        "/usr/lib/aarch64-linux-gnu/libnvidia-ml.so.1",
        "/usr/local/lib/libcuda.so.1",
        "/usr/bin/nvidia-smi",
        "/usr/local/bin/nvidia-smi",
    ],
)
def test_driver_files_where_the_loader_or_path_finds_them_fail(path: str) -> None:
    outcome = check_no_driver(facts(BUSYBOX | {path: "x"}))
    assert (outcome.id, outcome.outcome) == ("SM-IMG-NO-DRIVER", "failed")
    assert path in outcome.message
    assert "ship the CUDA toolkit only" in outcome.message
    assert_one_line(outcome)


def test_driver_symlinks_and_merged_usr_loader_dirs_fail() -> None:
    paths = MERGED_USR | {
        "/usr/lib/x86_64-linux-gnu": "d",
        "/usr/lib/x86_64-linux-gnu/libcuda.so.535.1": "f",
        "/usr/lib/x86_64-linux-gnu/libcuda.so.1": "->libcuda.so.535.1",
    }
    outcome = check_no_driver(facts(paths))
    assert outcome.outcome == "failed"
    assert "/usr/lib/x86_64-linux-gnu/libcuda.so.1, /usr/lib/x86_64-linux-gnu/libcuda.so.535.1" in outcome.message


def test_driver_on_ld_library_path_or_image_path_fails() -> None:
    env = {"LD_LIBRARY_PATH": "/opt/nv/lib:/opt/compat", "PATH": "/opt/nv/bin:/bin"}
    paths = BUSYBOX | {
        "/opt/nv/lib/libcuda.so.1": "f",
        "/opt/nv/bin/nvidia-smi": "x",
        "/opt/compat/libcuda.so.1": "f",
    }
    outcome = check_no_driver(facts(paths, env=env))
    assert outcome.outcome == "failed"
    for path in paths:
        if path.startswith("/opt"):
            assert path in outcome.message


def test_cuda_stubs_and_compat_pass_even_on_ld_library_path() -> None:
    paths = BUSYBOX | {
        "/usr/local/cuda": "->cuda-12.2",
        "/usr/local/cuda-12.2/compat/libcuda.so.1": "f",
        "/usr/local/cuda-12.2/compat/libnvidia-ml.so.1": "f",
        "/usr/local/cuda-12.2/lib64/stubs/libcuda.so": "f",
        "/usr/local/cuda-12.2/targets/x86_64-linux/lib/stubs/libnvidia-ml.so": "f",
    }
    env = {"LD_LIBRARY_PATH": "/usr/local/cuda/compat:/usr/local/cuda/lib64/stubs"}
    outcome = check_no_driver(facts(paths, env=env))
    assert outcome.outcome == "passed"
    assert "/usr/local/cuda-12.2/compat/libcuda.so.1" in outcome.message
    assert "stubs/ are link-time only" in outcome.message
    assert "forward-compatibility" in outcome.message


def test_toolkit_libraries_and_driver_files_elsewhere_pass() -> None:
    paths = BUSYBOX | {
        "/usr/lib/x86_64-linux-gnu/libcudart.so.12": "f",
        "/usr/lib/x86_64-linux-gnu/libnvidia-ml-dev.txt": "f",
        "/opt/driver-installer/libcuda.so.1": "f",
        "/usr/lib/x86_64-linux-gnu/libcuda.so.1.d": "d",
    }
    outcome = check_no_driver(facts(paths))
    assert (outcome.outcome, outcome.message) == (
        "passed",
        "no NVIDIA driver files in loader or PATH directories",
    )


def test_dangling_driver_symlink_passes_with_a_warning() -> None:
    outcome = check_no_driver(facts(BUSYBOX | {"/usr/lib/x86_64-linux-gnu/libcuda.so": "->libcuda.so.1"}))
    assert outcome.outcome == "passed"
    (warning,) = outcome.warnings
    assert "/usr/lib/x86_64-linux-gnu/libcuda.so" in warning


# --- the table -----------------------------------------------------------------------------------


def test_static_checks_are_listed_in_order_under_their_ids() -> None:
    assert list(STATIC_CHECKS) == [
        "SM-IMG-EXEC-FORM",
        "SM-IMG-NO-TINI",
        "SM-IMG-TRAIN-ON-PATH",
        "SM-IMG-OPT-ML-EMPTY",
        "SM-IMG-NO-DRIVER",
    ]
    image = facts(BUSYBOX)
    for check_id, check in STATIC_CHECKS.items():
        outcome = check(image)
        assert outcome.id == check_id
        assert outcome.outcome in ("passed", "failed", "skipped")
        assert outcome.clause.startswith("contract §")


def test_shell_form_that_execs_a_simple_command_passes_with_a_warning() -> None:
    """`ENTRYPOINT exec python train.py` (Docker's own advice for shell form): PID 1 is python on SageMaker."""
    from pytest_sagemaker_contract.image_facts import ImageFacts

    facts = ImageFacts(
        image="x",
        image_id="y",
        entrypoint=("/bin/sh", "-c", "exec python train.py"),
        cmd=None,
        env={},
        user="",
        workdir="/",
        files={},
    )
    outcome = check_exec_form(facts)
    assert outcome.outcome == "passed"
    assert "PID 1 is python" in outcome.message
    assert 'drops the "train"/"serve" argument' in outcome.warnings[0]
    shell_chain = ImageFacts(
        image="x",
        image_id="y",
        entrypoint=("/bin/sh", "-c", "cd /opt && exec python train.py"),
        cmd=None,
        env={},
        user="",
        workdir="/",
        files={},
    )
    assert check_exec_form(shell_chain).outcome == "failed"

"""Verdict-regression harness: the built-in suite's outcome per check, on a fixed list of images.

A refactor of the platform must not change what the suite says about an image. This script builds each
case's image (examples/build.py), runs ``python -m pytest --sm-image IMG --sm-report R`` with fixed, fast
options in a directory without tests, and writes ``{case: {check: outcome}}`` as JSON::

    python scripts/verdicts.py --out verdicts.json                     # record
    python scripts/verdicts.py --compare tests/verdicts/expected.json  # exit 1 and print every difference

Cases run a few at a time (``--jobs``); ``--only NAME`` (repeatable) runs a subset; ``--tree DIR`` runs the
package found in DIR (e.g. ``git archive HEAD | tar -x -C DIR``: a commit's verdicts while the checkout holds
unfinished edits). The whole list takes about five minutes on a 2-CPU machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KMEANS = ROOT / "examples" / "kmeans"
IMAGES = ROOT / "tests" / "images"

#: Every case: fast triggers (SIGTERM on a log line the image prints once its handler is installed).
COMMON = ("--sm-grace=10", "--sm-timeout=300")
KMEANS_ARGS = (
    f"--sm-job={KMEANS / 'job.json'}",
    f"--sm-channel=train={KMEANS / 'data'}",
    "--sm-sigterm-hyperparameter=epochs=200",
    "--sm-stop-on-log=^epoch 2/",
    "--sm-checkpoints",
    "--sm-resume-log=resuming from checkpoint after epoch [0-9]+",  # SM-SPOT-RESTART's evidence on every data path
    "--sm-input-modes=File,FastFile",
    "--sm-instance-count=2",
)


@dataclass(frozen=True)
class Case:
    name: str
    build: str
    args: tuple[str, ...]


CASES = (
    Case("kmeans", "kmeans", KMEANS_ARGS),
    Case("kmeans@engine", "kmeans", (*KMEANS_ARGS, "--sm-data-path=engine")),
    Case("sigterm/python-good", "sigterm/python-good", ("--sm-stop-on-log=^epoch 1/",)),
    Case("sigterm/python-bad", "sigterm/python-bad", ("--sm-stop-on-log=^epoch 1/",)),
    Case("sigterm/shell-good", "sigterm/shell-good", ("--sm-stop-on-log=^step 1/",)),
    Case("sigterm/shell-good@engine", "sigterm/shell-good", ("--sm-stop-on-log=^step 1/", "--sm-data-path=engine")),
    Case("broken/shell-form", "broken/shell-form", ()),
    Case(
        "tests/sigterm-tini-dies",
        str(IMAGES / "sigterm-tini-dies"),
        ("--sm-sigterm-hyperparameter=steps=8", "--sm-stop-on-log=^step 1$"),
    ),
    Case("tests/no-save-handler", str(IMAGES / "no-save-handler"), ("--sm-stop-on-log=^step 1$",)),
)


def build(target: str) -> str:
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "build.py"), target],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"building {target} failed:\n{done.stderr[-2000:]}")
    return done.stdout.strip().splitlines()[-1]


def run_case(case: Case, image: str, tree: Path | None = None) -> dict[str, str]:
    """The suite on one image: check id -> outcome (passed/failed/skipped), from the JSON report."""
    with tempfile.TemporaryDirectory(prefix="sm-verdicts-") as tmp:
        report = Path(tmp) / "report.json"
        argv = [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:randomly",
            "-q",
            f"--sm-image={image}",
            f"--sm-report={report}",
            *COMMON,
            *case.args,
        ]
        env = dict(os.environ)
        if tree is not None:
            env["PYTHONPATH"] = os.pathsep.join(p for p in (str(tree), env.get("PYTHONPATH", "")) if p)
        done = subprocess.run(argv, cwd=tmp, env=env, capture_output=True, text=True, check=False)
        if not report.exists():
            tail = (done.stdout + done.stderr)[-3000:]
            raise SystemExit(f"{case.name}: no report (exit {done.returncode}):\n{tail}")
        document = json.loads(report.read_text())
    return {c["id"]: c["outcome"] for c in document["images"][0]["checks"]}


def differences(expected: dict[str, dict[str, str]], actual: dict[str, dict[str, str]]) -> list[str]:
    lines: list[str] = []
    for case in sorted(set(expected) & set(actual)):
        want, got = expected[case], actual[case]
        for check in sorted(set(want) | set(got)):
            if want.get(check) != got.get(check):
                lines.append(f"{case} {check}: expected {want.get(check)}, got {got.get(check)}")
    return lines


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write the verdicts here (JSON)")
    parser.add_argument("--compare", type=Path, help="expected verdicts (JSON): exit 1 on any difference")
    parser.add_argument("--only", action="append", default=[], help="run only this case (repeatable)")
    parser.add_argument("--jobs", type=int, default=max(1, min(3, os.cpu_count() or 1)))
    parser.add_argument("--tree", type=Path, help="import the package from this directory (a clean export)")
    args = parser.parse_args(argv)
    known = {c.name for c in CASES}
    unknown = sorted(set(args.only) - known)
    if unknown:
        parser.error(f"unknown case(s) {unknown}; known: {sorted(known)}")
    cases = [c for c in CASES if not args.only or c.name in args.only]
    images = {target: build(target) for target in dict.fromkeys(c.build for c in cases)}
    with ThreadPoolExecutor(args.jobs) as pool:
        verdicts = pool.map(lambda c: run_case(c, images[c.build], args.tree), cases)
        results = dict(zip((c.name for c in cases), verdicts, strict=True))
    text = json.dumps(results, indent=2, sort_keys=True) + "\n"
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    else:
        print(text, end="")
    if args.compare is None:
        return 0
    expected = json.loads(args.compare.read_text())
    missing = sorted(set(expected) - set(results)) if not args.only else []
    diff = differences(expected, results) + [f"{m}: expected, not run" for m in missing]
    for line in diff:
        print(line, file=sys.stderr)
    print(f"{len(diff)} difference(s) from {args.compare}", file=sys.stderr)
    return 1 if diff else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

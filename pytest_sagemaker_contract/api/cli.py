"""`sm-contract serve`: the local SageMaker API until SIGINT/SIGTERM, or around one command.

stdout carries only the `export` lines (first, flushed), so `sm-contract serve > env.sh &` then
`. ./env.sh` routes a shell's AWS clients here; everything else goes to stderr.
"""

from __future__ import annotations

import argparse
import shlex
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from ..errors import PlatformError
from ..platform import DEFAULT_GRACE_S
from .local import LocalPlatform
from .server import ApiServer

__all__ = ["main"]

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sm-contract",
        description="Serve the SageMaker training API (with S3, CloudWatch Logs and STS) on the local platform.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="serve")
    serve = commands.add_parser(
        "serve",
        help="serve the local SageMaker API until SIGINT/SIGTERM",
        description="Print `export` lines for AWS_ENDPOINT_URL_* and credentials, then serve CreateTrainingJob, "
        "DescribeTrainingJob, StopTrainingJob, ListTrainingJobs, S3, CloudWatch Logs and STS GetCallerIdentity "
        "until SIGINT/SIGTERM; with `-- COMMAND...`, run that command against it and exit with its status.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=0, help="port to listen on (default: 0, any free port)")
    serve.add_argument("--region", default="us-east-1", help="the region clients are told (default: us-east-1)")
    serve.add_argument(
        "--grace",
        type=float,
        default=DEFAULT_GRACE_S,
        help=f"seconds between SIGTERM and SIGKILL on StopTrainingJob (default: {DEFAULT_GRACE_S:g}, as SageMaker)",
    )
    serve.add_argument("--max-hosts", type=int, default=None, help="most instances one job may ask for")
    serve.add_argument("cmd", nargs=argparse.REMAINDER, help="-- COMMAND [ARGS...] to run against the served API")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    cmd = list(args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd)
    if not 0 <= args.port <= 65535:
        print(f"sm-contract: --port {args.port} is not a port (0-65535)", file=sys.stderr)
        return 2
    if args.grace < 0 or (args.max_hosts is not None and args.max_hosts < 1):
        print("sm-contract: --grace must be >= 0 and --max-hosts >= 1", file=sys.stderr)
        return 2
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in _STOP_SIGNALS}
    local = LocalPlatform(region=args.region, grace_s=args.grace)
    server: ApiServer | None = None
    try:
        try:
            platform = local.start()
            server = ApiServer(platform, args.host, args.port, max_hosts=args.max_hosts).start()
        except (PlatformError, OSError) as exc:
            print(f"sm-contract: cannot serve: {exc}", file=sys.stderr)
            return 1
        for name, value in server.exports().items():
            print(f"export {name}={shlex.quote(value)}")
        sys.stdout.flush()
        print(
            f"sm-contract: serving SageMaker training jobs, CloudWatch Logs and STS at {server.url}, S3 at "
            f"{platform.s3.endpoint_url} (run {local.run_id}); SIGINT or SIGTERM stops it and removes its jobs",
            file=sys.stderr,
            flush=True,
        )
        if cmd:
            return _run(cmd, server, stop)
        stop.wait()
        return 0
    finally:
        if server is not None:
            server.close()
        if local.platform is not None:
            print("sm-contract: stopping: running jobs get SIGTERM, then everything is removed", file=sys.stderr)
            local.close(interrupted=True)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _run(cmd: list[str], server: ApiServer, stop: threading.Event) -> int:
    """Run `cmd` with the served endpoints; a stop signal is passed on to it."""
    try:
        child = subprocess.Popen(cmd, env=server.env())
    except OSError as exc:
        print(f"sm-contract: cannot run {shlex.join(cmd)}: {exc}", file=sys.stderr)
        return 127
    while child.poll() is None:
        if stop.wait(0.2):
            child.terminate()
            return child.wait()
    return child.returncode

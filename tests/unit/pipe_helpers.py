"""One host's layout and a Pipe-mode feeder for it, shared by the pipe and manifest tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pytest_sagemaker_contract.platform.layout import HostLayout
from pytest_sagemaker_contract.platform.pipes import PipeFeeder, PipeOptions, pipe_feeder
from pytest_sagemaker_contract.platform.s3 import S3Server
from pytest_sagemaker_contract.spec import DEFAULT_ROLE_ARN, ChannelSpec


def host(tmp_path: Path) -> HostLayout:
    layout = HostLayout(tmp_path / "algo-1", None)
    layout.create()
    return layout


def feeder_for(s3: S3Server, layout: HostLayout, channel: ChannelSpec, **options: Any) -> PipeFeeder:
    return pipe_feeder(
        s3,
        channel,
        layout.data,
        host_index=0,
        host_count=1,
        role_arn=DEFAULT_ROLE_ARN,
        region="us-east-1",
        options=PipeOptions(**options),
    )

"""Which channels a local directory may stand in for without a copy (the rule alone; the staging runs in
tests/integration/test_local_channels.py)."""

from __future__ import annotations

from pytest_sagemaker_contract.platform.channels import local_staging_allowed
from pytest_sagemaker_contract.spec import ChannelSpec


def test_eligibility_rule() -> None:
    assert local_staging_allowed(ChannelSpec("t", "s3://b/p", input_mode="File"))
    assert local_staging_allowed(ChannelSpec("t", "s3://b/p", input_mode="FastFile"))
    assert not local_staging_allowed(ChannelSpec("t", "s3://b/p", input_mode="Pipe"))
    assert not local_staging_allowed(ChannelSpec("t", "s3://b/p", distribution="ShardedByS3Key"))
    assert not local_staging_allowed(ChannelSpec("t", "s3://b/p", s3_data_type="ManifestFile"))

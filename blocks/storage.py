"""S3 blocks (prefect-aws `AwsCredentials`, `S3Bucket`) built from MPR's S3 settings.

The settings are those of `mpr.storage`: `S3_ENDPOINT_URL` (or `AWS_ENDPOINT_URL`),
`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_DEFAULT_REGION` (or `AWS_REGION`), or an
`AwsCredentials` block named by `MPR_S3_BLOCK`. MPR defines no storage block class of its
own: prefect-aws's are what the Prefect UI and `prefect block` already know.
"""

from __future__ import annotations

import os

from prefect_aws import AwsClientParameters, AwsCredentials, S3Bucket

from mpr.errors import InputError
from mpr.storage import check_root

CREDENTIALS_BLOCK = "mpr-s3"  # what `mpr blocks register --from-env` saves
RESULTS_BLOCK = "mpr-results"


def s3_endpoint() -> str | None:
    return os.environ.get("S3_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL") or None


def s3_region() -> str | None:
    return os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION") or None


def load_block(cls, name: str, setting: str):
    """A saved block, or InputError naming the setting that asked for it."""
    try:
        return cls.load(name, _sync=True)
    except ValueError as exc:  # Prefect's "Unable to find block document named ..."
        raise InputError(f"{setting} {name!r}: no such {cls.__name__} block ({exc})") from None


def env_credentials(with_keys: bool = True) -> AwsCredentials:
    """AwsCredentials from the environment variables.

    with_keys=False leaves key and secret out: boto3 then takes them from the environment
    of whichever process uses the block, and a saved block holds no secret."""
    key = os.environ.get("AWS_ACCESS_KEY_ID") if with_keys else None
    secret = os.environ.get("AWS_SECRET_ACCESS_KEY") if with_keys else None
    return AwsCredentials(aws_access_key_id=key or None, aws_secret_access_key=secret or None,
                          region_name=s3_region(),
                          aws_client_parameters=AwsClientParameters(endpoint_url=s3_endpoint()))


def credentials(with_keys: bool = True) -> AwsCredentials:
    """The `MPR_S3_BLOCK` block when set (as a saved reference), else `env_credentials`."""
    name = os.environ.get("MPR_S3_BLOCK")
    return load_block(AwsCredentials, name, "MPR_S3_BLOCK") if name else env_credentials(with_keys)


def split_s3_url(url: str, setting: str = "MPR_RESULTS") -> tuple[str, str]:
    """(bucket, prefix) of a validated `s3://bucket[/prefix]`."""
    url = check_root(url, setting)
    if not url.startswith("s3://"):
        raise InputError(f"{setting} {url!r}: not an s3:// URL")
    bucket, _, prefix = url[len("s3://"):].partition("/")
    return bucket, prefix.strip("/")


def bucket_block(url: str, creds: AwsCredentials) -> S3Bucket:
    """An (unsaved) S3Bucket for `s3://bucket/prefix`."""
    bucket, prefix = split_s3_url(url)
    return S3Bucket(bucket_name=bucket, bucket_folder=prefix, credentials=creds)

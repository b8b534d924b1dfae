"""Where Prefect keeps stage task results (the checkpoints): a local folder or an S3 bucket.

- `MPR_RESULTS_BLOCK=name`: a saved prefect-aws `S3Bucket` block.
- `MPR_RESULTS=s3://bucket/prefix`: an `S3Bucket` built from MPR's S3 settings
  (`blocks.storage`). Prefect 3.8 refuses an unsaved block as a task's result storage
  ("Result storage configuration must be persisted server-side"), so it is saved under a
  name derived from its location (`mpr-results-<hash>`): the same location always gets
  the same block document, and cached results record that document's id. Built from the
  environment, it holds no key or secret: boto3 reads them from the environment of the
  process that runs (or reads back) the task, as s3fs does for media.
- `MPR_RESULTS=/a/folder`, or nothing: a local folder (default `settings.results_dir()`).
"""

from __future__ import annotations

import hashlib
import os
import posixpath
from pathlib import Path

from prefect.filesystems import WritableFileSystem

from mpr import settings
from mpr.storage import check_root

ResultStorage = Path | WritableFileSystem
_saved: dict[tuple, WritableFileSystem] = {}


def results_url() -> str:
    """MPR_RESULTS validated (local path or s3://bucket/prefix), or the local default."""
    value = os.environ.get("MPR_RESULTS")
    return check_root(value, "MPR_RESULTS") if value else str(settings.results_dir())


def result_storage(save: bool = True) -> ResultStorage:
    """What stage tasks pass to Prefect as `result_storage` (see the module docstring).
    save=False skips saving the S3Bucket (and so the Prefect API): enough to look results up."""
    from blocks.storage import load_block

    block = os.environ.get("MPR_RESULTS_BLOCK")
    if block:
        from prefect_aws import S3Bucket

        return load_block(S3Bucket, block, "MPR_RESULTS_BLOCK")
    url = results_url()
    if not url.startswith("s3://"):
        return Path(url)
    if not save:
        from blocks.storage import bucket_block, credentials

        return bucket_block(url, credentials(with_keys=False))
    return _saved_bucket(url)


def _saved_bucket(url: str) -> WritableFileSystem:
    """The S3Bucket for `url`, saved once per process, location and Prefect API."""
    from prefect.settings import PREFECT_API_URL

    from blocks.storage import bucket_block, credentials

    marker = (url, os.environ.get("MPR_S3_BLOCK"), os.environ.get("S3_ENDPOINT_URL"),
              os.environ.get("AWS_ENDPOINT_URL"), os.environ.get("AWS_DEFAULT_REGION"),
              os.environ.get("AWS_REGION"), PREFECT_API_URL.value())
    if marker not in _saved:
        bucket = bucket_block(url, credentials(with_keys=False))
        digest = hashlib.sha256(repr(marker[:-1]).encode()).hexdigest()[:12]
        bucket.save(f"mpr-results-{digest}", overwrite=True, _sync=True)
        _saved[marker] = bucket
    return _saved[marker]


def result_exists(key: str, storage: ResultStorage | None = None) -> bool:
    """Whether the result (checkpoint) stored under cache key `key` exists."""
    storage = result_storage(save=False) if storage is None else storage
    if isinstance(storage, Path):
        return (storage / key).exists()
    if hasattr(storage, "bucket_name"):  # S3Bucket: a HEAD request, not a download
        from botocore.exceptions import ClientError

        path = posixpath.join(storage.bucket_folder, key) if storage.bucket_folder else key
        try:
            storage.credentials.get_s3_client().head_object(Bucket=storage.bucket_name, Key=path)
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
    try:
        return storage.read_path(key) is not None
    except Exception:  # other block types: Prefect itself treats any read failure as "absent"
        return False

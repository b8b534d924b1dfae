"""`mpr blocks register [--from-env]`: make MPR's block types known to the Prefect API.

Registers every Block class defined in the `blocks` package and prefect-aws's
`AwsCredentials` and `S3Bucket` (as `prefect block register -m prefect_aws` would, for
just those two). With `from_env`, also saves block documents built from the environment:
`aws-credentials/mpr-s3` (S3_ENDPOINT_URL / AWS_*), and `s3-bucket/mpr-results` when
`MPR_RESULTS` is an s3:// URL. Only names are returned; secrets are never printed.
"""

from __future__ import annotations

import importlib
import inspect
import os
import pkgutil

from prefect.blocks.core import Block

from mpr.errors import InputError


def mpr_block_types() -> list[type[Block]]:
    """Block classes defined (not just imported) in the modules of the `blocks` package."""
    import blocks

    found: list[type[Block]] = []
    for info in pkgutil.iter_modules(blocks.__path__):
        module = importlib.import_module(f"blocks.{info.name}")
        found += [obj for obj in vars(module).values()
                  if inspect.isclass(obj) and issubclass(obj, Block) and obj.__module__ == module.__name__]
    return found


def block_types() -> list[type[Block]]:
    from prefect_aws import AwsCredentials, S3Bucket

    return [*mpr_block_types(), AwsCredentials, S3Bucket]


def save_from_env() -> list[str]:
    """Save `mpr-s3` (and `mpr-results` for an s3:// MPR_RESULTS); their `slug/name`s."""
    from blocks.storage import CREDENTIALS_BLOCK, RESULTS_BLOCK, bucket_block, env_credentials
    from mpr.results_storage import results_url

    if not any(os.environ.get(n) for n in ("S3_ENDPOINT_URL", "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID")):
        raise InputError("mpr blocks register --from-env: set S3_ENDPOINT_URL and/or "
                         "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY first")
    creds = env_credentials(with_keys=True)
    creds.save(CREDENTIALS_BLOCK, overwrite=True, _sync=True)
    saved = [f"{creds.get_block_type_slug()}/{CREDENTIALS_BLOCK}"]
    url = results_url()
    if url.startswith("s3://"):
        bucket = bucket_block(url, creds)  # refers to the saved mpr-s3 document, no copy of it
        bucket.save(RESULTS_BLOCK, overwrite=True, _sync=True)
        saved.append(f"{bucket.get_block_type_slug()}/{RESULTS_BLOCK}")
    return saved


def register(from_env: bool) -> list[str]:
    """Register the block types (their slugs), then with `from_env` save the documents."""
    names = []
    for cls in block_types():
        cls.register_type_and_schema(_sync=True)
        names.append(cls.get_block_type_slug())
    return names + (save_from_env() if from_env else [])

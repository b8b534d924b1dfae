"""Prefect block definitions.

- `vlm_server.VlmServer`: where escalate_vlm's `openai_compatible` backend finds a local
  VLM server (base URL, model, optional key); named by `escalate_vlm.server_block`.
- `storage`: prefect-aws `AwsCredentials` / `S3Bucket` built from MPR's S3 settings
  (S3 media and artifacts, and S3 result storage for the stage tasks: `MPR_RESULTS`).
- `register.register(from_env)`: `mpr blocks register [--from-env]`, registers these block
  types with the Prefect API and optionally saves `mpr-s3` / `mpr-results` from the env.
API keys of cloud providers use Prefect's own `Secret` block (`escalate_cloud.api_key_block`).
Dask address blocks arrive with distributed execution.
"""

"""Prefect block definitions.

- `vlm_server.VlmServer`: where escalate_vlm's `openai_compatible` backend finds a local
  VLM server (base URL, model, optional key); named by `escalate_vlm.server_block`.
API keys of cloud providers use Prefect's own `Secret` block (`escalate_cloud.api_key_block`).
Storage (S3) and Dask address blocks arrive with the data layer and distributed execution.
"""

"""Prefect block definitions.

None exist yet: storage (S3), Dask address and credential blocks arrive with the data
layer, distributed execution and escalation work. Today MPR is configured by
environment variables (`MPR_DATA_DIR`, `MPR_ARTIFACTS`) and flow parameters.
"""

"""Pipeline stages (plain functions) and the one generic wrapper that makes them Prefect tasks."""

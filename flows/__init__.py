"""Prefect flows: detect_brands (the pipeline generated from a profile graph)."""

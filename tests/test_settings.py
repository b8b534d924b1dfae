"""Offline, quiet defaults: set when absent, never overriding the user's choice."""

import os

from mpr.settings import OFFLINE_DEFAULTS, apply_offline_defaults


def test_offline_defaults_fill_gaps_only(monkeypatch):
    for name in OFFLINE_DEFAULTS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "true")
    apply_offline_defaults()
    assert os.environ["DO_NOT_TRACK"] == "1"
    assert os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] == "true"

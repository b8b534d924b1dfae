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


def test_malloc_arenas_are_capped_unless_the_user_chose(monkeypatch):
    import sys

    from mpr.settings import limit_malloc_arenas

    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert limit_malloc_arenas() is False  # the user's setting wins
    monkeypatch.delenv("MALLOC_ARENA_MAX")
    assert limit_malloc_arenas() is sys.platform.startswith("linux")  # glibc here (CI too)

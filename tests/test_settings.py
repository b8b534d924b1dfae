"""Offline, quiet defaults: set when absent, never overriding the user's choice."""

import os
import subprocess
import sys

from mpr.settings import OFFLINE_DEFAULTS, apply_offline_defaults


def test_offline_defaults_fill_gaps_only(monkeypatch):
    for name in OFFLINE_DEFAULTS:
        monkeypatch.delenv(name, raising=False)
    # this process's Prefect settings are left as they are (re-reading them is tested below)
    monkeypatch.delitem(sys.modules, "prefect.context", raising=False)
    monkeypatch.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "true")
    apply_offline_defaults()
    assert os.environ["DO_NOT_TRACK"] == "1"
    assert os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] == "true"


def test_ffmpeg_is_started_without_python_in_the_forked_child(monkeypatch):
    """imageio-ffmpeg's preexec_fn ran Python's after-fork handlers in the child, where freeing a
    PyAV frame converter of a dead thread hung for good (mpr.settings): with the defaults, the
    child only execs ffmpeg."""
    from imageio_ffmpeg._utils import _popen_kwargs

    monkeypatch.delenv("IMAGEIO_FFMPEG_NO_PREVENT_SIGINT", raising=False)
    assert _popen_kwargs(prevent_sigint=True)["preexec_fn"] is not None  # imageio-ffmpeg's own way
    monkeypatch.delitem(sys.modules, "prefect.context", raising=False)
    apply_offline_defaults()
    assert _popen_kwargs(prevent_sigint=True)["preexec_fn"] is None


def test_openvino_sends_no_telemetry():
    """Imported after the defaults, OpenVINO's converter gets its telemetry stub: no usage event
    sent (over the network, from a forked process) when the OCR engine loads."""
    code = ("from mpr.settings import apply_offline_defaults\napply_offline_defaults()\n"
            "import openvino\nfrom openvino.tools.ovc import telemetry_utils\nprint(telemetry_utils.tm.__name__)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["openvino.tools.ovc.telemetry_stub"]


def test_defaults_reach_prefect_imported_before_the_flows():
    """A notebook that imports prefect first: Prefect has read its settings already."""
    code = ("import prefect\nfrom prefect.settings import get_current_settings\n"
            "before = get_current_settings().server.ephemeral.startup_timeout_seconds\n"
            "import flows.detect\n"
            "print(before, get_current_settings().server.ephemeral.startup_timeout_seconds)")
    env = {k: v for k, v in os.environ.items() if k not in OFFLINE_DEFAULTS}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["20", "120"]


def test_malloc_is_tuned_unless_the_user_chose(monkeypatch):
    import sys

    from mpr.settings import MALLOC_TUNING, tune_malloc

    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    glibc = sys.platform.startswith("linux")  # here and on CI
    assert tune_malloc() == (["MALLOC_MMAP_THRESHOLD_"] if glibc else [])  # the user's setting wins
    monkeypatch.delenv("MALLOC_ARENA_MAX")
    assert tune_malloc() == (list(MALLOC_TUNING) if glibc else [])


def test_attempt_counts_from_the_environment_are_whole_and_bounded_alike(monkeypatch):
    """MPR_DB_ATTEMPTS and MPR_S3_ATTEMPTS: the same parser, so the same refusals."""
    import pytest

    from mpr.db.session import _attempts
    from mpr.errors import InputError
    from mpr.storage import s3_options

    monkeypatch.delenv("MPR_S3_BLOCK", raising=False)
    monkeypatch.delenv("MPR_DB_ATTEMPTS", raising=False)
    monkeypatch.delenv("MPR_S3_ATTEMPTS", raising=False)
    assert _attempts() == 4 and "config_kwargs" not in s3_options()
    monkeypatch.setenv("MPR_DB_ATTEMPTS", "7")
    monkeypatch.setenv("MPR_S3_ATTEMPTS", "3")
    assert _attempts() == 7 and s3_options()["config_kwargs"]["retries"]["max_attempts"] == 3
    for value, message in (("0", "want 1 to 20"), ("99", "want 1 to 20"), ("two", "not a whole number")):
        for name, read in (("MPR_DB_ATTEMPTS", _attempts), ("MPR_S3_ATTEMPTS", s3_options)):
            monkeypatch.setenv(name, value)
            with pytest.raises(InputError, match=f"^{name} '{value}': {message}$"):
                read()
            monkeypatch.setenv(name, "2")


def test_the_bench_starts_prefects_server_with_the_offline_defaults(monkeypatch):
    """`mpr.bench.start_prefect` called before anything imported `flows` (a script, a notebook): the
    temporary server it starts inherits this environment, so the defaults are set first (without
    them Prefect's server sent telemetry)."""
    import prefect.client.orchestration as orchestration

    from mpr.bench import start_prefect

    for name in OFFLINE_DEFAULTS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delitem(sys.modules, "prefect.context", raising=False)
    seen = {}

    class Client:  # records the environment the server would start with
        def __enter__(self):
            seen.update(os.environ)
            return self

        def __exit__(self, *exc):
            return False

        def hello(self):
            pass

    monkeypatch.setattr(orchestration, "get_client", lambda **kwargs: Client())
    start_prefect()
    assert seen["PREFECT_SERVER_ANALYTICS_ENABLED"] == "false" and seen["DO_NOT_TRACK"] == "1"

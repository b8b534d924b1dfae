"""Media roots, S3 settings, the artifact store and Prefect result storage, against a real S3 server.

S3 is SeaweedFS with authentication on (`tests/s3server.py`); block tests use a throwaway
Prefect API (`prefect_test_harness`: its own SQLite database, never the user's).
"""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest
import s3fs

from mpr import storage
from mpr.errors import InputError, MprError
from mpr.storage import MediaRoot, check_root, safe_key
from tests.s3server import s3_client

# ---- keys and roots --------------------------------------------------------------------


@pytest.mark.parametrize("key", ["", "  ", "../x.mp4", "a/../../x.mp4", "a/..", "/etc/passwd", "~/x.mp4",
                                 "s3://bucket/x.mp4", "file:///x.mp4", "http://host/x.mp4", "c:/x.mp4",
                                 "a\\b.mp4", "a\x00b", ".", "./"])
def test_safe_key_refuses(key):
    with pytest.raises(InputError, match="media key"):
        safe_key(key)


@pytest.mark.parametrize("key, normal", [("a/b.mp4", "a/b.mp4"), ("a//b.mp4", "a/b.mp4"),
                                         ("./a/b.mp4", "a/b.mp4"), ("a/./b.mp4", "a/b.mp4")])
def test_safe_key_normalises(key, normal):
    assert safe_key(key) == normal


def test_check_root_accepts_local_file_and_s3(tmp_path):
    assert check_root(str(tmp_path) + "/") == str(tmp_path)
    assert check_root(f"file://{tmp_path}") == str(tmp_path)
    assert check_root("s3://bucket/some/prefix/") == "s3://bucket/some/prefix"
    assert check_root("s3://bucket") == "s3://bucket"


@pytest.mark.parametrize("url, why", [("ftp://host/x", "unsupported scheme 'ftp'"),
                                      ("http://host/x", "unsupported scheme 'http'"),
                                      ("s3:bucket", "unsupported scheme"), ("s3://", "no bucket"),
                                      ("s3:///", "no bucket"), ("", "empty")])
def test_check_root_refuses(url, why):
    with pytest.raises(InputError, match=why):
        check_root(url, "MPR_MEDIA_IN")


# ---- media roots: a local folder and the real S3 server ------------------------------------


@pytest.fixture(params=["local", "s3"])
def root(request, tmp_path) -> MediaRoot:
    if request.param == "local":
        return MediaRoot(str(tmp_path / "media"), "MPR_MEDIA_IN")
    return MediaRoot(request.getfixturevalue("s3_env").url("mpr-media"), "MPR_MEDIA_IN")


def test_media_root_put_walk_and_keys(root, tmp_path):
    files = {"matches/b/2.mp4": b"22", "matches/a/1.mp4": b"1", "top.mkv": b"333"}
    for key, data in files.items():
        (tmp_path / "src").write_bytes(data)
        assert root.put_file(tmp_path / "src", key) == key
    assert list(root.walk()) == sorted(files)
    assert all(root.exists(k) for k in files) and not root.exists("matches/none.mp4")
    assert [root.size(k) for k in sorted(files)] == [1, 2, 3]
    assert root.uri("matches/a/1.mp4") == f"{root.url}/matches/a/1.mp4"
    assert root.key_of(root.uri("matches/a/1.mp4")) == "matches/a/1.mp4"
    assert root.key_of(root.url + "-other/x.mp4") is None
    assert root.key_of("s3://elsewhere/x.mp4") is None and root.key_of(str(tmp_path / "x.mp4")) is None
    root.get_file("top.mkv", tmp_path / "back.mkv")
    assert (tmp_path / "back.mkv").read_bytes() == b"333"
    with pytest.raises(InputError):
        root.put_file(tmp_path / "src", "../escape.mp4")


def test_media_root_walk_of_an_empty_root(root):
    assert list(root.walk()) == []


def test_wrong_secret_is_refused_with_one_clear_line(s3_env, tmp_path, monkeypatch):
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as raw:  # the server itself enforces auth
        s3_client(s3_env.endpoint, s3_env.key, "not-the-secret").list_objects_v2(Bucket="mpr-media")
    assert raw.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403

    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    s3fs.S3FileSystem.clear_instance_cache()
    root = MediaRoot(s3_env.url("mpr-media"), "MPR_MEDIA_IN")
    (tmp_path / "x.mp4").write_bytes(b"x")
    for attempt in (lambda: list(root.walk()), lambda: root.exists("x.mp4"),
                    lambda: root.put_file(tmp_path / "x.mp4", "x.mp4")):
        with pytest.raises(MprError, match=r"MPR_MEDIA_IN s3://mpr-media/.*: access denied .*AWS_SECRET") as err:
            attempt()
        assert "\n" not in str(err.value) and "not-the-secret" not in str(err.value)


# ---- the artifact store on s3:// -------------------------------------------------------------


def test_artifact_store_round_trip_on_s3(s3_env):
    from mpr.store import open_store

    store = open_store(s3_env.url("mpr-media", "artifacts"))
    image = np.zeros((40, 60, 3), np.uint8)
    image[10:30, 20:40] = (10, 200, 30)
    assert store.put_image("frames/ab/000001.png", image) == "frames/ab/000001.png"
    assert store.exists("frames/ab/000001.png")
    assert np.array_equal(store.get_image("frames/ab/000001.png"), image)  # PNG: lossless
    store.put_image("frames/ab/000002.jpg", image)
    assert np.abs(store.get_image("frames/ab/000002.jpg").astype(int) - image).mean() < 3  # JPEG: close
    with pytest.raises(MprError, match="artifact missing"):
        store.get_bytes("frames/ab/none.png")
    objects = s3_client(s3_env.endpoint, s3_env.key, s3_env.secret).list_objects_v2(
        Bucket="mpr-media", Prefix=f"{s3_env.prefix}/artifacts/")
    assert sorted(o["Key"].rsplit("/", 1)[-1] for o in objects["Contents"]) == ["000001.png", "000002.jpg"]


def test_check_store_passes_a_live_bucket_and_names_a_missing_one(s3_env, tmp_path):
    from mpr.store import check_store

    check_store(s3_env.url("mpr-media", "artifacts"))
    check_store(str(tmp_path / "not-yet"))  # a local folder is made when first written
    with pytest.raises(MprError, match=r"artifact store s3://no-such-bucket/a: bucket 'no-such-bucket' does not exist"):
        check_store("s3://no-such-bucket/a")


# ---- Prefect: blocks, result storage -----------------------------------------------------------


@pytest.fixture(scope="module")
def prefect_api():
    """A throwaway Prefect API (own SQLite DB) for this module; never the user's ~/.prefect."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def test_s3_settings_from_an_aws_credentials_block(s3_env, prefect_api, tmp_path, monkeypatch):
    from prefect_aws import AwsClientParameters, AwsCredentials

    name = unique("mpr-test-s3")
    AwsCredentials(aws_access_key_id=s3_env.key, aws_secret_access_key=s3_env.secret, region_name=s3_env.region,
                   aws_client_parameters=AwsClientParameters(endpoint_url=s3_env.endpoint)).save(name, _sync=True)
    for var in ("S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(var)  # only the block can make this work
    monkeypatch.setenv("MPR_S3_BLOCK", name)
    storage.configure_s3(force=True)
    s3fs.S3FileSystem.clear_instance_cache()
    root = MediaRoot(s3_env.url("mpr-media", "via-block"))
    (tmp_path / "a.mp4").write_bytes(b"abc")
    root.put_file(tmp_path / "a.mp4", "a.mp4")
    assert list(root.walk()) == ["a.mp4"] and root.size("a.mp4") == 3

    monkeypatch.setenv("MPR_S3_BLOCK", "no-such-block")
    with pytest.raises(InputError, match="MPR_S3_BLOCK 'no-such-block': no such AwsCredentials block"):
        storage.configure_s3(force=True)


def test_result_storage_is_local_unless_configured(tmp_path, data_dir, monkeypatch):
    from mpr.results_storage import result_exists, result_storage

    monkeypatch.delenv("MPR_RESULTS_BLOCK", raising=False)
    assert result_storage() == data_dir / "results"
    monkeypatch.setenv("MPR_RESULTS", f"file://{tmp_path}/elsewhere/")
    assert result_storage() == tmp_path / "elsewhere"
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "k1").write_bytes(b"x")
    assert result_exists("k1") and not result_exists("k2")
    for bad, why in [("ftp://host/results", "unsupported scheme 'ftp'"), ("s3://", "no bucket"),
                     ("gs://bucket/results", "unsupported scheme 'gs'")]:
        monkeypatch.setenv("MPR_RESULTS", bad)
        with pytest.raises(InputError, match=f"MPR_RESULTS .*{why}"):
            result_storage()


def test_missing_results_block_is_an_input_error(prefect_api, monkeypatch):
    from mpr.results_storage import result_storage

    monkeypatch.setenv("MPR_RESULTS_BLOCK", "no-such-bucket")
    with pytest.raises(InputError, match="MPR_RESULTS_BLOCK 'no-such-bucket': no such S3Bucket block"):
        result_storage()


def _double(x: int, cache_key: str, calls: list) -> int:
    calls.append(x)
    return 2 * x


def _run_cached_flow(key: str, calls: list) -> tuple[str, int, object]:
    """A tiny flow: one task cached under `key` (MPR's StageKey policy), results in result_storage()."""
    from prefect import flow, task

    from mpr.results_storage import result_storage
    from tasks.wrapper import StageKey

    double = task(_double, name="double", cache_policy=StageKey(), result_storage=result_storage(),
                  persist_result=True)

    @flow(persist_result=False)
    def tiny():
        state = double(21, cache_key=key, calls=calls, return_state=True)
        return state.name, state.result(), state.state_details.task_run_id

    return tiny()


def test_cached_task_results_live_in_s3(s3_env, prefect_api, tmp_path, monkeypatch):
    from prefect.client.orchestration import get_client
    from prefect_aws import S3Bucket

    from mpr import results_storage
    from tasks.wrapper import stage_task

    monkeypatch.delenv("MPR_RESULTS_BLOCK", raising=False)
    monkeypatch.setenv("MPR_RESULTS", s3_env.url("mpr-results", "checkpoints"))
    monkeypatch.setenv("MPR_DATA_DIR", str(tmp_path / "first"))
    storage_block = results_storage.result_storage()
    assert isinstance(storage_block, S3Bucket) and storage_block._block_document_id is not None
    assert storage_block.bucket_name == "mpr-results" and storage_block.bucket_folder == f"{s3_env.prefix}/checkpoints"
    assert storage_block.credentials.aws_secret_access_key is None  # the saved block holds no secret
    assert stage_task("match_brands").result_storage is storage_block

    key, calls = unique("stage-key"), []
    name, value, run_id = _run_cached_flow(key, calls)
    assert (name, value, calls) == ("Completed", 42, [21])
    with get_client(sync_client=True) as client:  # read back through the API, as the UI/another process does
        assert client.read_task_run(run_id).state.result() == 42

    results_storage._saved.clear()  # as a fresh process would
    monkeypatch.setenv("MPR_DATA_DIR", str(tmp_path / "second"))
    name, value, _ = _run_cached_flow(key, calls)
    assert (name, value, calls) == ("Cached", 42, [21])

    s3 = s3_client(s3_env.endpoint, s3_env.key, s3_env.secret)
    assert s3.head_object(Bucket="mpr-results", Key=f"{s3_env.prefix}/checkpoints/{key}")["ContentLength"] > 0
    assert results_storage.result_exists(key) and not results_storage.result_exists(unique("other"))
    assert not (tmp_path / "first" / "results").exists() and not (tmp_path / "second" / "results").exists()


def test_register_block_types(prefect_api):
    from prefect.client.orchestration import get_client

    from blocks.register import register

    names = register(from_env=False)
    assert {"mpr-vlm-server", "aws-credentials", "s3-bucket"} <= set(names)
    with get_client(sync_client=True) as client:
        for slug in names:
            assert client.read_block_type_by_slug(slug).slug == slug


def test_register_from_env_saves_credentials_and_results_bucket(s3_env, prefect_api, capsys, monkeypatch):
    from prefect_aws import AwsCredentials, S3Bucket

    from blocks.register import register

    monkeypatch.setenv("MPR_RESULTS", s3_env.url("mpr-results", "reg"))
    names = register(from_env=True)
    assert names[-2:] == ["aws-credentials/mpr-s3", "s3-bucket/mpr-results"]
    printed = capsys.readouterr()
    assert s3_env.secret not in repr(names) + printed.out + printed.err
    creds = AwsCredentials.load("mpr-s3", _sync=True)
    assert creds.aws_access_key_id == s3_env.key and creds.aws_secret_access_key.get_secret_value() == s3_env.secret
    assert creds.aws_client_parameters.endpoint_url == s3_env.endpoint and creds.region_name == s3_env.region
    bucket = S3Bucket.load("mpr-results", _sync=True)
    assert (bucket.bucket_name, bucket.bucket_folder) == ("mpr-results", f"{s3_env.prefix}/reg")

    # the saved blocks work: the bucket block writes through the real, authenticating server
    bucket.write_path("probe.txt", b"ok")
    head = s3_client(s3_env.endpoint, s3_env.key, s3_env.secret).head_object(
        Bucket="mpr-results", Key=f"{s3_env.prefix}/reg/probe.txt")
    assert head["ContentLength"] == 2
    monkeypatch.setenv("MPR_RESULTS_BLOCK", "mpr-results")
    from mpr.results_storage import result_storage

    assert result_storage().bucket_folder == f"{s3_env.prefix}/reg"


def test_register_from_env_needs_s3_settings(prefect_api, monkeypatch):
    from blocks.register import save_from_env

    for var in ("S3_ENDPOINT_URL", "AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(InputError, match="--from-env: set S3_ENDPOINT_URL"):
        save_from_env()


def test_local_results_need_no_prefect_api(tmp_path, data_dir, monkeypatch):
    """The default (a Path) must not touch the Prefect API: Prefect accepts a Path as is."""
    from tasks.wrapper import stage_task

    monkeypatch.delenv("MPR_RESULTS", raising=False)
    monkeypatch.delenv("MPR_RESULTS_BLOCK", raising=False)
    assert stage_task("match_brands").result_storage == Path(data_dir / "results")
    assert stage_task("match_brands", tmp_path).result_storage == tmp_path

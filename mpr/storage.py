"""Media roots and safe keys: where users keep media (local folders or S3-compatible buckets).

`MPR_MEDIA_IN` (sources) and `MPR_MEDIA_OUT` (what MPR writes, e.g. chunks it made) are
each a local path or `s3://bucket/prefix`. The database stores keys *relative* to their
root, so it moves between a laptop and the cloud unchanged. A key is a '/'-separated
relative path: no '..', no absolute path, no scheme.

S3 endpoint and credentials come from the environment (`S3_ENDPOINT_URL` for
MinIO/SeaweedFS/GCS/R2, or botocore's own `AWS_ENDPOINT_URL`; `AWS_ACCESS_KEY_ID`,
`AWS_SECRET_ACCESS_KEY`, `AWS_DEFAULT_REGION`) or from a Prefect `AwsCredentials` block
named by `MPR_S3_BLOCK`. They are set once as fsspec's `s3` defaults, so every s3://
access in MPR (sources, media roots, artifact store) uses them.
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

import fsspec

from mpr import settings
from mpr.errors import InputError, MprError

SCHEMES = ("s3",)  # besides plain local paths and file://
VIDEO_EXTS = {".mp4", ".mkv", ".avi", ".mov", ".webm", ".flv", ".wmv", ".m4v"}
AUDIO_EXTS = {".mp3", ".wav", ".flac", ".aac", ".ogg", ".m4a"}
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def safe_key(key: str) -> str:
    """A normalised relative key, or InputError naming what is wrong with it."""
    if not isinstance(key, str) or not key.strip():
        raise InputError(f"media key {key!r}: empty")
    if "\x00" in key or "\\" in key:
        raise InputError(f"media key {key!r}: contains a NUL or backslash")
    if _SCHEME.match(key):
        raise InputError(f"media key {key!r}: must be relative to its media root, not a URL")
    if key.startswith("/") or key.startswith("~"):
        raise InputError(f"media key {key!r}: must be relative, not an absolute path")
    parts = PurePosixPath(key).parts
    if ".." in parts:
        raise InputError(f"media key {key!r}: '..' is not allowed")
    normal = posixpath.normpath(key)
    if normal in (".", "") or normal.startswith("../"):
        raise InputError(f"media key {key!r}: does not name a file under the root")
    return normal


def check_root(url: str, name: str = "media root") -> str:
    """A root is a local path, file:// or s3://bucket[/prefix]; anything else is refused."""
    url = (url or "").strip()
    if not url:
        raise InputError(f"{name}: empty")
    match = _SCHEME.match(url)
    if match and not url.startswith("file://"):
        scheme = match.group(0)[:-1].lower()
        if scheme not in SCHEMES or not url.startswith(f"{scheme}://"):
            raise InputError(f"{name} {url!r}: unsupported scheme '{scheme}' (want a local path or s3://bucket/prefix)")
        if not url[len(scheme) + 3:].strip("/"):
            raise InputError(f"{name} {url!r}: no bucket")
    if url.startswith("file://"):
        url = url[len("file://"):]
    if not _SCHEME.match(url):
        url = str(Path(url).expanduser().resolve())
    return url.rstrip("/") or "/"


class MediaRoot:
    """One root (local folder or s3://bucket/prefix) and the relative keys under it."""

    def __init__(self, url: str, name: str = "media root"):
        configure_s3()
        self.url = check_root(url, name)
        self.name = name
        self.fs, self.base = fsspec.core.url_to_fs(self.url)
        self.remote = self.url.startswith("s3://")

    def __repr__(self) -> str:
        return f"MediaRoot({self.url!r})"

    def path(self, key: str) -> str:
        """The fsspec path of a key (validated)."""
        return f"{self.base}/{safe_key(key)}"

    def uri(self, key: str) -> str:
        """The full URL/path of a key, as a source for `detect_brands`."""
        return f"{self.url}/{safe_key(key)}"

    def key_of(self, uri: str) -> str | None:
        """The key of a URL/path under this root, or None when it lies elsewhere."""
        if not _SCHEME.match(uri) or uri.startswith("file://"):
            uri = str(Path(uri.removeprefix("file://")).expanduser().resolve())
        prefix = self.url.rstrip("/") + "/"
        return safe_key(uri[len(prefix):]) if uri.startswith(prefix) else None

    @contextmanager
    def _access(self):
        """Refused access (a wrong S3 secret, an unreadable folder) is one line for the user."""
        try:
            yield
        except PermissionError as exc:
            hint = "; check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or MPR_S3_BLOCK" if self.remote else ""
            raise MprError(f"{self.name} {self.url}: access denied ({exc}){hint}") from exc

    def exists(self, key: str) -> bool:
        with self._access():
            return self.fs.exists(self.path(key))

    def size(self, key: str) -> int:
        with self._access():
            return int(self.fs.size(self.path(key)) or 0)

    def walk(self) -> Iterator[str]:
        """Every file key under the root, recursively, sorted."""
        with self._access():
            if not self.fs.exists(self.base):
                return
            paths = sorted(self.fs.find(self.base))
        base = self.base.rstrip("/") + "/"
        for path in paths:
            if path.startswith(base):
                yield path[len(base):]

    def put_file(self, local: str | Path, key: str) -> str:
        """Upload (or copy) a local file to `key`; readers never see a partial file on S3
        (objects appear whole), and locally the copy is renamed into place."""
        target = self.path(key)
        with self._access():
            if self.remote:
                self.fs.put_file(str(local), target)
            else:
                Path(target).parent.mkdir(parents=True, exist_ok=True)
                partial = f"{target}.part"
                self.fs.put_file(str(local), partial)
                os.replace(partial, target)
        return safe_key(key)

    def get_file(self, key: str, local: str | Path) -> Path:
        with self._access():
            self.fs.get_file(self.path(key), str(local))
        return Path(local)


def media_in() -> MediaRoot:
    return MediaRoot(os.environ.get("MPR_MEDIA_IN") or str(settings.data_dir() / "media-in"), "MPR_MEDIA_IN")


def media_out() -> MediaRoot:
    return MediaRoot(os.environ.get("MPR_MEDIA_OUT") or str(settings.data_dir() / "media-out"), "MPR_MEDIA_OUT")


def media_kind(key: str) -> str | None:
    ext = PurePosixPath(key).suffix.lower()
    return "video" if ext in VIDEO_EXTS else "audio" if ext in AUDIO_EXTS else None


# ---- S3 settings --------------------------------------------------------------------

_configured: tuple | None = None


def s3_options() -> dict:
    """fsspec/s3fs options from the environment, or from the `MPR_S3_BLOCK` AwsCredentials block."""
    block = os.environ.get("MPR_S3_BLOCK")
    options = _block_options(block) if block else _env_options()
    attempts = settings.env_int("MPR_S3_ATTEMPTS", None, 1, 20)
    if attempts:  # botocore's retries with backoff of every S3 call (its default: 5, legacy mode)
        options["config_kwargs"] = {"retries": {"max_attempts": attempts, "mode": "standard"}}
    return options


def _env_options() -> dict:
    options: dict = {}
    endpoint = os.environ.get("S3_ENDPOINT_URL")
    if endpoint:
        options["endpoint_url"] = endpoint
    region = os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION")
    if region:
        options.setdefault("client_kwargs", {})["region_name"] = region
    return options


def _block_options(name: str) -> dict:
    from prefect_aws import AwsCredentials

    try:
        creds = AwsCredentials.load(name)
    except ValueError as exc:
        raise InputError(f"MPR_S3_BLOCK {name!r}: no such AwsCredentials block ({exc})") from None
    options: dict = {}
    if creds.aws_access_key_id:
        options["key"] = creds.aws_access_key_id
    if creds.aws_secret_access_key:
        options["secret"] = creds.aws_secret_access_key.get_secret_value()
    endpoint = creds.aws_client_parameters.endpoint_url
    if endpoint:
        options["endpoint_url"] = str(endpoint)
    if creds.region_name:
        options.setdefault("client_kwargs", {})["region_name"] = creds.region_name
    return options


def configure_s3(force: bool = False) -> None:
    """Make the S3 options fsspec's defaults for `s3://` (once per process and setting)."""
    global _configured
    marker = (os.environ.get("MPR_S3_BLOCK"), os.environ.get("S3_ENDPOINT_URL"),
              os.environ.get("AWS_DEFAULT_REGION"), os.environ.get("AWS_REGION"), os.environ.get("MPR_S3_ATTEMPTS"))
    if _configured == marker and not force:
        return
    options = s3_options()
    fsspec.config.conf["s3"] = options
    _configured = marker

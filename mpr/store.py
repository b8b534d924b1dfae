"""The artifact store: frames, crops and overlays behind fsspec (local folder or s3://)."""

from __future__ import annotations

import hashlib
import inspect
from functools import lru_cache

import cv2
import fsspec
import numpy as np

from mpr.errors import MprError


class ArtifactStore:
    """Keys are relative paths such as `frames/ab12/000003.jpg` under one root URL."""

    def __init__(self, root: str):
        self.root = root.rstrip("/")
        self.fs, self.base = fsspec.core.url_to_fs(self.root)

    def path(self, key: str) -> str:
        return f"{self.base}/{key}"

    def url(self, key: str) -> str:
        return f"{self.root}/{key}"

    def exists(self, key: str) -> bool:
        return self.fs.exists(self.path(key))

    def put_bytes(self, key: str, data: bytes) -> str:
        path = self.path(key)
        self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        self.fs.pipe_file(path, data)
        return key

    def get_bytes(self, key: str) -> bytes:
        try:
            return self.fs.cat_file(self.path(key))
        except FileNotFoundError:
            raise MprError(f"artifact missing from store {self.root}: {key}") from None

    def put_image(self, key: str, image: np.ndarray, quality: int = 95) -> str:
        return self.put_bytes(key, encode_image(key, image, quality))

    def get_image(self, key: str, flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
        return decode_image(key, self.get_bytes(key), flags)


def code_digest(*objects, size: int = 8) -> str:
    """Digest of the source code of modules, classes or functions: part of every key whose
    content that code computes (stage cache keys, memos in the store)."""
    h = hashlib.blake2b(digest_size=size)
    for obj in objects:
        h.update(inspect.getsource(obj).encode())
    return h.hexdigest()


def is_remote(uri: str) -> bool:
    """A URL with a scheme other than file://."""
    return "://" in uri and not uri.startswith("file://")


def encode_image(key: str, image: np.ndarray, quality: int = 95) -> bytes:
    """The bytes `put_image` stores under `key` (its extension picks the format)."""
    ext = "." + key.rsplit(".", 1)[-1]
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if ext in (".jpg", ".jpeg") else []
    ok, buf = cv2.imencode(ext, image, params)
    if not ok:
        raise MprError(f"could not encode image for {key}")
    return buf.tobytes()


def decode_image(key: str, data: bytes, flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    """What `get_image` returns for those bytes."""
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flags)
    if image is None:
        raise MprError(f"artifact is not a readable image: {key}")
    return image


def check_store(root: str) -> None:
    """Fail fast with one line when a remote artifact store cannot be reached or its bucket is
    missing, before a run writes anything. The S3 client has retried with backoff by then
    (botocore, `MPR_S3_ATTEMPTS`); a local folder is created when first written."""
    if not is_remote(root):
        return
    store = open_store(root)
    bucket = store.base.split("/", 1)[0]
    try:
        store.fs.info(bucket)
    except FileNotFoundError:
        raise MprError(f"artifact store {root}: bucket {bucket!r} does not exist") from None
    except Exception as exc:  # botocore's connection errors are not OSErrors
        raise MprError(f"artifact store {root}: unreachable ({exc})") from None


@lru_cache(maxsize=8)
def open_store(root: str) -> ArtifactStore:
    return ArtifactStore(root)

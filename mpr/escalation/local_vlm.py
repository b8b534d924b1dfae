"""A VLM loaded in this process with Hugging Face transformers: escalate_vlm's `transformers` backend.

`model_path` is a local folder written by `save_pretrained` (or a downloaded snapshot) of
an image-text-to-text model whose processor has a chat template: Qwen2.5-VL, SmolVLM,
Idefics3, LLaVA, Gemma 3 and the like. Nothing is downloaded and no remote code runs:
loading is local-files-only. The model is asked exactly as the cloud providers are (same
prompt, same strict JSON validation, same response cache), loads once per process (on the
Dask GPU worker when the run has one) and answers one request at a time. Decoding is
greedy, so answers are repeatable; the one re-ask of a malformed reply samples instead,
since greedy decoding would only repeat it.
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
from pathlib import Path

from mpr.errors import InputError, MprError
from mpr.escalation.providers import Provider
from mpr.loading import load_once
from mpr.settings import project_path

_EDGE = 1 << 16  # fingerprint: bytes read from each end of every file


def resolve_model_folder(model_path: str) -> Path:
    path = project_path(model_path)
    if not path.is_dir():
        raise InputError(f"escalate_vlm: model folder not found: {model_path}")
    return path.resolve()


def model_fingerprint(folder: Path) -> str:
    """Cheap content digest of a model folder: each file's name, size and first and last 64 KiB.
    Replaced or fine-tuned weights change it (their last tensor differs) without reading gigabytes."""
    h = hashlib.blake2b(digest_size=6)
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and ".cache" not in p.parts):
        size = path.stat().st_size
        h.update(f"{path.relative_to(folder)}\0{size}\0".encode())
        with path.open("rb") as f:
            h.update(f.read(_EDGE))
            if size > 2 * _EDGE:
                f.seek(-_EDGE, os.SEEK_END)
                h.update(f.read())
    return h.hexdigest()


def model_key(model_path: str | None) -> str:
    """What the stage's cache key holds about the model: its fingerprint where the folder is
    visible here, else its path (it may exist only on the GPU host)."""
    if not model_path:
        return ""
    try:
        return model_fingerprint(resolve_model_folder(model_path))
    except InputError:
        return f"path:{model_path}"


@load_once(maxsize=2)
def load_model(folder: str, device: str, dtype: str):
    """(model, processor) on `device`; one per process and configuration."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # belt and braces: local_files_only already stops downloads
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    try:
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor
    except ImportError as exc:
        raise MprError(f"escalate_vlm backend transformers needs torch and transformers "
                       f"(pip install 'mpr[vlm]'): {exc}") from None
    device = ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise MprError(f"escalate_vlm: device {device} asked for, but torch sees no CUDA GPU here")
    if dtype == "auto":
        dtype = "bfloat16" if device.startswith("cuda") else "float32"
    try:
        processor = AutoProcessor.from_pretrained(folder, local_files_only=True)
        model = AutoModelForImageTextToText.from_pretrained(folder, dtype=getattr(torch, dtype),
                                                            local_files_only=True)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        reason = str(exc).strip().split(". ")[0].splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MprError(f"escalate_vlm: cannot load a transformers VLM from {folder}: {reason}") from None
    if not getattr(processor, "chat_template", None):
        raise MprError(f"escalate_vlm: the model in {folder} has no chat template")
    return model.to(device).eval(), processor


class TransformersProvider(Provider):
    """The `Provider` interface over an in-process model: no network, no cost, no retries."""

    def __init__(self, model_path: str, device: str = "auto", dtype: str = "auto", max_new_tokens: int = 512):
        folder = resolve_model_folder(model_path)
        # The fingerprint is part of the name: the response cache and the report's resolver tell weights apart.
        super().__init__("transformers", f"{folder.name}@{model_fingerprint(folder)}", max_retries=0,
                         backoff_s=0.0, max_output_tokens=max_new_tokens, price_in=0.0, price_out=0.0)
        self._model, self._processor = load_model(str(folder), device, dtype)
        self._lock = threading.Lock()  # one generation at a time: the model holds the whole device
        self._last = threading.local()

    def _send(self, parts):
        import torch

        resample = getattr(self._last, "parts", None) is parts  # `ask` re-sends the same parts after a malformed reply
        self._last.parts = parts
        inputs = self._processor.apply_chat_template(chat_messages(parts), add_generation_prompt=True, tokenize=True,
                                                     return_dict=True, return_tensors="pt")
        inputs = inputs.to(self._model.device, dtype=self._model.dtype)  # casts only the floating-point tensors
        sampling = {"do_sample": True, "temperature": 0.7, "top_p": 0.95} if resample else {"do_sample": False}
        with self._lock, torch.inference_mode():
            out = self._model.generate(**inputs, max_new_tokens=self.max_output_tokens, **sampling)
        prompt_len = inputs["input_ids"].shape[1]
        new = out[0, prompt_len:]
        return self._processor.decode(new, skip_special_tokens=True), int(prompt_len), int(new.shape[0])

    def _classify(self, exc):
        import torch

        return ("fail", None) if isinstance(exc, torch.OutOfMemoryError) else None  # this batch only


def chat_messages(parts: list[str | bytes]) -> list[dict]:
    """The prompt as one user turn of a chat: text parts and images (JPEG bytes), in order."""
    from PIL import Image

    content = [{"type": "text", "text": p} if isinstance(p, str) else
               {"type": "image", "image": Image.open(io.BytesIO(p)).convert("RGB")} for p in parts]
    return [{"role": "user", "content": content}]


"""VlmServer: where escalate_vlm's `openai_compatible` backend finds the local VLM server."""

from __future__ import annotations

from prefect.blocks.core import Block
from pydantic import Field, SecretStr


class VlmServer(Block):
    """An OpenAI-compatible VLM server on the GPU host (vLLM, Ollama, llama.cpp server)."""

    _block_type_name = "MPR VLM Server"

    base_url: str = Field(description="e.g. http://gpu-host:8000/v1")
    model: str = Field("", description="model name as the server knows it")
    api_key: SecretStr | None = Field(None, description="only if the server checks one")

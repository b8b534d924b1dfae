"""VLM providers against a local fake server speaking each vendor's wire protocol.

The fake answers like the real APIs (bodies shaped after each SDK's response types) and
records every request, so the tests check what the SDKs really send: path, model, token
limit, images, brand list and auth header. Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np
import pytest

from mpr.escalation.providers import (PROVIDERS, Answer, MalformedReply, ProviderError, Query, Usage, build_prompt,
                                      estimate_cost, make_provider, parse_answers)

KEY = "sk-test-SECRET-0123456789"
MODELS = {"anthropic": "claude-haiku-4-5", "gemini": "gemini-2.5-flash", "openai": "gpt-4o-mini",
          "groq": "meta-llama/llama-4-scout-17b-16e-instruct", "openai_compatible": "qwen2.5-vl-7b"}
PROTOCOL = {"anthropic": "anthropic", "gemini": "gemini", "openai": "openai", "groq": "openai",
            "openai_compatible": "openai"}
BRANDS = ["Coca-Cola", "Adidas", "Emirates"]


def jpeg(seed: int) -> bytes:
    image = np.random.default_rng(seed).integers(0, 255, (16, 24, 3), dtype=np.uint8)
    ok, buf = cv2.imencode(".jpg", image)
    assert ok
    return buf.tobytes()


QUERIES = [Query("c1", jpeg(1), "COCA COLA"), Query("c2", jpeg(2)), Query("c3", jpeg(3), "emirates")]
GOOD = {"answers": [{"id": "c1", "brand": "Coca-Cola", "confidence": 0.93},
                    {"id": "c2", "brand": None, "confidence": 0.2},
                    {"id": "c3", "brand": "EMIRATES", "confidence": 0.8}]}
EXPECTED = [Answer("c1", "Coca-Cola", 0.93), Answer("c2", None, 0.2), Answer("c3", "Emirates", 0.8)]


# --- the fake server ---

def ok_body(protocol: str, model: str, text: str, tokens_in: int = 1200, tokens_out: int = 60) -> dict:
    if protocol == "anthropic":  # anthropic.types.Message
        return {"id": "msg_01XFDUDYJgAACzvnptvVoYEL", "type": "message", "role": "assistant", "model": model,
                "content": [{"type": "text", "text": text}], "stop_reason": "end_turn", "stop_sequence": None,
                "usage": {"input_tokens": tokens_in, "output_tokens": tokens_out, "cache_creation_input_tokens": 0,
                          "cache_read_input_tokens": 0, "service_tier": "standard"}}
    if protocol == "gemini":  # google.genai.types.GenerateContentResponse, camelCase on the wire
        return {"candidates": [{"content": {"parts": [{"text": text}], "role": "model"}, "finishReason": "STOP",
                                "index": 0}],
                "usageMetadata": {"promptTokenCount": tokens_in, "candidatesTokenCount": tokens_out - 10,
                                  "thoughtsTokenCount": 10, "totalTokenCount": tokens_in + tokens_out,
                                  "promptTokensDetails": [{"modality": "TEXT", "tokenCount": tokens_in - 774},
                                                          {"modality": "IMAGE", "tokenCount": 774}]},
                "modelVersion": model, "responseId": "mJx3aPaBE4mZ1dkP4uW2iAs"}
    return {"id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG", "object": "chat.completion", "created": 1741570283,
            "model": model, "system_fingerprint": "fp_06737a9306",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text, "refusal": None,
                                                 "annotations": []},
                         "logprobs": None, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": tokens_in, "completion_tokens": tokens_out,
                      "total_tokens": tokens_in + tokens_out,
                      "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                      "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0}}}


GEMINI_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}
ANTHROPIC_TYPE = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                  404: "not_found_error", 429: "rate_limit_error", 500: "api_error", 529: "overloaded_error"}


def error_body(protocol: str, status: int, message: str = "", code: str | None = None) -> dict:
    message = message or f"error {status}"
    if protocol == "anthropic":
        return {"type": "error", "error": {"type": ANTHROPIC_TYPE.get(status, "api_error"), "message": message},
                "request_id": "req_011CSHoEeqs5C35K2UUqR7Fy"}
    if protocol == "gemini":
        return {"error": {"code": status, "message": message, "status": GEMINI_STATUS.get(status, "UNKNOWN")}}
    return {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}}


class FakeAPI:
    """Plays scripted responses, then good answers; records (path, headers, json body) per request."""

    def __init__(self):
        self.requests: list[tuple[str, dict, dict]] = []
        self.script: list[tuple[int, object, dict, float]] = []  # status, body (dict or raw text), headers, delay
        self.protocol, self.model, self.reply = "openai", "", json.dumps(GOOD)
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                fake.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}, json.loads(body)))
                status, payload, headers, delay = fake.next_response(self.path)
                time.sleep(delay)
                data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    for name, value in {"content-type": "application/json", **headers}.items():
                        self.send_header(name, value)
                    self.send_header("content-length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
                    pass

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, args=(0.01,), daemon=True).start()

    def expected_path(self) -> str:
        return {"anthropic": "/v1/messages", "openai": "/v1/chat/completions",
                # google-genai 3.4 talks to API version v1 (not v1beta) under a custom base_url
                "gemini": f"/v1/models/{self.model}:generateContent"}[self.protocol]

    def next_response(self, path: str) -> tuple[int, object, dict, float]:
        if path != self.expected_path():
            return 404, error_body(self.protocol, 404, f"no route {path}"), {}, 0.0
        if self.script:
            return self.script.pop(0)
        return 200, ok_body(self.protocol, self.model, self.reply), {}, 0.0

    def then(self, status: int = 200, text: str | None = None, body: object = None, headers: dict | None = None,
             delay: float = 0.0) -> FakeAPI:
        if body is None:
            body = ok_body(self.protocol, self.model, text) if status == 200 else error_body(self.protocol, status)
        self.script.append((status, body, headers or {}, delay))
        return self

    def base_url(self) -> str:
        root = f"http://127.0.0.1:{self.port}"
        return f"{root}/v1" if self.protocol == "openai" else root


@pytest.fixture
def fake():
    api = FakeAPI()
    yield api
    api.httpd.shutdown()
    api.httpd.server_close()


@pytest.fixture(params=PROVIDERS)
def provider(request, fake):
    """A provider of each kind pointed at the fake, with tiny backoffs so retries take milliseconds."""
    name = request.param
    fake.protocol, fake.model = PROTOCOL[name], MODELS[name]
    prov = make_provider(name, MODELS[name], KEY, base_url=fake.base_url(), timeout_s=2.0, max_retries=3,
                         backoff_s=0.001, max_output_tokens=321)
    yield prov
    prov.close()


# --- per provider, over the wire ---

def prompt_text(name: str, body: dict) -> str:
    if name == "gemini":
        return "\n".join(p.get("text", "") for c in body["contents"] for p in c["parts"])
    return "\n".join(c["text"] for m in body["messages"] for c in m["content"] if c["type"] == "text")


def images(name: str, body: dict) -> list[str]:
    """The base64 of every image in the request, checking each provider's content-block shape."""
    if name == "gemini":
        parts = [p["inlineData"] for c in body["contents"] for p in c["parts"] if "inlineData" in p]
        assert all(p["mime_type"] == "image/jpeg" for p in parts)
        return [p["data"] for p in parts]
    blocks = [c for m in body["messages"] for c in m["content"] if c["type"] != "text"]
    if name == "anthropic":
        assert all(b["type"] == "image" and b["source"]["type"] == "base64"
                   and b["source"]["media_type"] == "image/jpeg" for b in blocks)
        return [b["source"]["data"] for b in blocks]
    prefix = "data:image/jpeg;base64,"
    assert all(b["type"] == "image_url" and b["image_url"]["url"].startswith(prefix) for b in blocks)
    return [b["image_url"]["url"].removeprefix(prefix) for b in blocks]


def test_good_answer_and_request_shape(provider, fake):
    answers, usage = provider.ask(QUERIES, BRANDS)

    assert answers == EXPECTED  # "EMIRATES" normalised to the canonical spelling; null kept as None
    assert (usage.calls, usage.input_tokens, usage.output_tokens) == (1, 1200, 60)
    assert (usage.retries, usage.malformed, usage.failed) == (0, 0, 0)
    assert usage.cost_usd == pytest.approx(estimate_cost(provider.model, 1200, 60))
    assert (usage.cost_usd > 0) == (provider.name != "openai_compatible")  # a local model has no price
    (path, headers, body), = fake.requests
    assert path == fake.expected_path()
    name = provider.name
    if name == "gemini":
        assert headers["x-goog-api-key"] == KEY
        assert body["generationConfig"] == {"maxOutputTokens": 321, "responseMimeType": "application/json"}
    else:
        assert body["model"] == provider.model
        # anthropic 2.x sends the key as a bearer token; older SDKs used x-api-key
        assert headers.get("authorization") == f"Bearer {KEY}" or headers.get("x-api-key") == KEY
    if name == "anthropic":
        assert body["max_tokens"] == 321
    elif name == "openai_compatible":
        assert (body["max_tokens"], body["temperature"]) == (321, 0)
    elif name in ("openai", "groq"):
        assert body["max_completion_tokens"] == 321 and "max_tokens" not in body
    if PROTOCOL[name] == "openai":
        assert body["response_format"] == {"type": "json_object"}
    # google-genai sends the URL-safe base64 alphabet (protobuf JSON accepts both)
    decode = base64.urlsafe_b64decode if name == "gemini" else base64.b64decode
    assert [decode(data) for data in images(name, body)] == [q.image for q in QUERIES]
    text = prompt_text(name, body)
    assert json.dumps(BRANDS) in text and '"c1"' in text and '"COCA COLA"' in text and '"answers"' in text


def test_429_retried_then_success(provider, fake):
    fake.then(429, headers={"retry-after": "0"})
    answers, usage = provider.ask(QUERIES, BRANDS)
    assert answers == EXPECTED
    assert (usage.calls, usage.retries, usage.failed) == (1, 1, 0)
    assert len(fake.requests) == 2


def test_5xx_retried(provider, fake):
    fake.then(529 if provider.name == "anthropic" else 503).then(500)
    answers, usage = provider.ask(QUERIES, BRANDS)
    assert answers == EXPECTED and (usage.retries, usage.calls) == (2, 1)


def test_retries_exhausted_fail_the_batch(provider, fake):
    for _ in range(4):
        fake.then(500)
    answers, usage = provider.ask(QUERIES, BRANDS)
    assert answers == [] and (usage.retries, usage.calls, usage.failed) == (3, 0, 1)
    assert len(fake.requests) == 4


def test_timeout_retried(fake):
    for name in ("anthropic", "gemini", "openai"):
        fake.protocol, fake.model, fake.requests = name, MODELS[name], []
        prov = make_provider(name, MODELS[name], KEY, base_url=fake.base_url(), timeout_s=0.3, backoff_s=0.001)
        fake.then(200, json.dumps(GOOD), delay=1.0)
        answers, usage = prov.ask(QUERIES, BRANDS)
        assert answers == EXPECTED and (usage.retries, usage.calls) == (1, 1), name


@pytest.mark.parametrize("name", ["anthropic", "gemini", "openai_compatible"])
def test_connection_error_retried_then_failed(name):
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    prov = make_provider(name, MODELS[name], KEY, base_url=f"http://127.0.0.1:{port}/v1", max_retries=2,
                         backoff_s=0.001)
    answers, usage = prov.ask(QUERIES, BRANDS)
    assert answers == [] and (usage.retries, usage.calls, usage.failed) == (2, 0, 1)


def test_retry_after_honoured(fake):
    fake.protocol, fake.model = "openai", MODELS["openai"]
    prov = make_provider("openai", MODELS["openai"], KEY, base_url=fake.base_url(), backoff_s=0.001)
    fake.then(429, headers={"retry-after": "0.4"})
    start = time.monotonic()
    answers, usage = prov.ask(QUERIES, BRANDS)
    assert answers == EXPECTED and usage.retries == 1 and time.monotonic() - start >= 0.4


def test_malformed_reasked_once_then_success(provider, fake):
    fake.then(200, "Sure! The first crop shows Coca-Cola.")
    answers, usage = provider.ask(QUERIES, BRANDS)
    assert answers == EXPECTED
    assert (usage.calls, usage.malformed, usage.failed, usage.retries) == (2, 1, 0, 0)
    assert usage.input_tokens == 2400  # both responses are billed
    assert fake.requests[0][2] == fake.requests[1][2]  # the same question again


def test_malformed_twice_leaves_batch_unresolved(provider, fake):
    fake.then(200, '{"answers": [{"id": "c1", "brand": "Coca-Cola"}]}').then(200, "[]")
    answers, usage = provider.ask(QUERIES, BRANDS)
    assert answers == [] and (usage.calls, usage.malformed, usage.failed) == (2, 2, 1)


def test_brand_not_in_list_is_malformed(provider, fake):
    wrong = json.dumps({"answers": [{"id": "c1", "brand": "Pepsi", "confidence": 0.9}]})
    fake.then(200, wrong).then(200, wrong)
    answers, usage = provider.ask(QUERIES, BRANDS)
    assert answers == [] and (usage.malformed, usage.failed) == (2, 1)


@pytest.mark.parametrize("status", [401, 403])
def test_auth_error_raises_without_the_key(provider, fake, status):
    # OpenAI's real 401 echoes (a masked) key; here the whole key, to prove it never reaches our message.
    fake.then(status, body=error_body(fake.protocol, status, f"Incorrect API key provided: {KEY}", "invalid_api_key"))
    with pytest.raises(ProviderError) as info:
        provider.ask(QUERIES, BRANDS)
    message = str(info.value)
    assert message.startswith(f"{provider.name}: ") and f"HTTP {status}" in message
    assert KEY not in message and KEY not in repr(info.value) and KEY not in repr(provider)
    assert KEY not in "".join(traceback.format_exception(info.value))
    assert len(fake.requests) == 1  # not retried


def test_other_4xx_fails_the_batch_without_retry(provider, fake):
    fake.then(400)
    answers, usage = provider.ask(QUERIES, BRANDS)
    assert answers == [] and (usage.failed, usage.retries, usage.calls) == (1, 0, 0)
    assert len(fake.requests) == 1


def test_unknown_model_raises(provider, fake):
    fake.then(404)
    with pytest.raises(ProviderError, match="not found"):
        provider.ask(QUERIES, BRANDS)


def test_gemini_invalid_key_is_an_auth_error(fake):
    fake.protocol, fake.model = "gemini", MODELS["gemini"]
    prov = make_provider("gemini", MODELS["gemini"], KEY, base_url=fake.base_url(), backoff_s=0.001)
    # What the Gemini API really answers to a bad key: 400 INVALID_ARGUMENT with reason API_KEY_INVALID.
    fake.then(400, body={"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.",
                                   "status": "INVALID_ARGUMENT",
                                   "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                                                "reason": "API_KEY_INVALID", "domain": "googleapis.com"}]}})
    with pytest.raises(ProviderError, match="authentication failed"):
        prov.ask(QUERIES, BRANDS)


def test_openai_insufficient_quota_is_not_retried(fake):
    fake.protocol, fake.model = "openai", MODELS["openai"]
    prov = make_provider("openai", MODELS["openai"], KEY, base_url=fake.base_url(), backoff_s=0.001)
    fake.then(429, body=error_body("openai", 429, "You exceeded your current quota", "insufficient_quota"))
    with pytest.raises(ProviderError, match="billing"):
        prov.ask(QUERIES, BRANDS)
    assert len(fake.requests) == 1


def test_openai_compatible_without_key_and_fenced_reply(fake):
    fake.protocol, fake.model = "openai", MODELS["openai_compatible"]
    fake.reply = f"```json\n{json.dumps(GOOD)}\n```"
    prov = make_provider("openai_compatible", fake.model, None, base_url=fake.base_url())
    answers, usage = prov.ask(QUERIES, BRANDS)
    assert answers == EXPECTED and usage.cost_usd == 0.0  # a local model has no price
    assert fake.requests[0][1]["authorization"] == "Bearer not-needed"


def test_groq_splits_batches_over_five_images(fake):
    fake.protocol, fake.model = "openai", MODELS["groq"]
    queries = [Query(f"q{i}", jpeg(i)) for i in range(7)]
    prov = make_provider("groq", fake.model, KEY, base_url=fake.base_url())
    fake.then(200, json.dumps({"answers": [{"id": f"q{i}", "brand": "Adidas", "confidence": 0.7} for i in range(5)]}))
    fake.then(200, json.dumps({"answers": [{"id": f"q{i}", "brand": None, "confidence": 0.1} for i in (5, 6)]}))
    answers, usage = prov.ask(queries, BRANDS)
    assert [a.id for a in answers] == [q.id for q in queries] and usage.calls == 2
    assert [len(images("groq", body)) for _, _, body in fake.requests] == [5, 2]


# --- no network needed ---

def test_make_provider_checks_its_arguments():
    with pytest.raises(ValueError, match="unknown provider"):
        make_provider("mistral", "m", KEY)
    with pytest.raises(ValueError, match="base_url"):
        make_provider("openai_compatible", "m", None)
    with pytest.raises(ProviderError, match="no API key"):
        make_provider("anthropic", "claude-haiku-4-5", None)
    groq = make_provider("groq", MODELS["groq"], KEY)
    assert str(groq._client.base_url).startswith("https://api.groq.com/openai/v1")
    assert repr(groq) == f"OpenAIProvider(name='groq', model='{MODELS['groq']}')"


def test_parse_answers_validation():
    ids = {"c1", "c2"}
    assert parse_answers('{"answers": [{"id": "c1", "brand": " adidas ", "confidence": 1}]}', ids, BRANDS) == [
        Answer("c1", "Adidas", 1.0)]
    assert parse_answers('{"answers": []}', ids, BRANDS) == []
    assert parse_answers('```\n{"answers": [{"id": "c2", "brand": null, "confidence": 0}]}\n```', ids, BRANDS) == [
        Answer("c2", None, 0.0)]
    bad = ['', 'null', '[]', '{"answer": []}', 'Here: {"answers": []}',
           '{"answers": [{"id": "c9", "brand": null, "confidence": 0.5}]}',  # unknown id
           '{"answers": [{"id": "c1", "brand": null, "confidence": 0.5},'
           ' {"id": "c1", "brand": null, "confidence": 0.5}]}',  # repeated id
           '{"answers": [{"id": "c1", "brand": "Nike", "confidence": 0.5}]}',  # not in the list
           '{"answers": [{"id": "c1", "brand": "Adidas", "confidence": 1.5}]}',
           '{"answers": [{"id": "c1", "brand": "Adidas", "confidence": "0.5"}]}',
           '{"answers": [{"id": "c1", "brand": "Adidas", "confidence": true}]}',
           '{"answers": [{"id": "c1", "brand": "Adidas"}]}']
    for text in bad:
        with pytest.raises(MalformedReply):
            parse_answers(text, ids, BRANDS)


def test_prompt_lists_brands_ids_ocr_and_images():
    parts = build_prompt(QUERIES, BRANDS)
    text = "\n".join(p for p in parts if isinstance(p, str))
    assert [p for p in parts if isinstance(p, bytes)] == [q.image for q in QUERIES]
    assert json.dumps(BRANDS) in text and "null" in text
    assert 'Crop id: "c2"' in text and text.count("OCR text:") == 2  # c2 has none


def test_cost_and_usage():
    assert estimate_cost("gpt-4o-mini", 1_000_000, 1_000_000) == pytest.approx(0.75)
    assert estimate_cost("claude-haiku-4-5-20251001", 1000, 0) == pytest.approx(0.001)  # dated id
    assert estimate_cost("models/gemini-2.5-flash", 0, 1_000_000) == pytest.approx(2.5)
    assert estimate_cost("my-local-model", 10**6, 10**6) == 0.0
    assert estimate_cost("my-local-model", 10**6, 10**6, price_in=1.0, price_out=2.0) == pytest.approx(3.0)
    assert estimate_cost("gpt-4o-mini", 10**6, 0, price_in=1.0) == pytest.approx(1.0)
    total = Usage(calls=1, input_tokens=5, cost_usd=0.5) + Usage(calls=2, retries=1, failed=1, cost_usd=0.25)
    assert total.as_dict() == {"calls": 3, "input_tokens": 5, "output_tokens": 0, "retries": 1, "malformed": 0,
                               "failed": 1, "cost_usd": 0.75}
    assert "image" not in repr(QUERIES[0])  # no JPEG bytes in logs
